"""
Pose GRU: an RGB-only network in two stages, the image's pose as the bottleneck.

1. Per frame (``backbone``): AlexNet layers 1-6 of the 2D-ConvGRU (the same per-frame
   layers, widths and normalisation) and a linear ``pose`` head: the frame's 25 joints in
   the image, as the positions of the ``image`` joint features
   (:func:`pitch_predictor.models.joints.image_joint_features`: normalised image
   coordinates relative to the reference SpineBase, in projected torso lengths). The
   output is ``(N, 25, 3)``: those positions as pseudo-joints ``(u, v, 1)`` (a point at
   depth 1 projects to ``(u, v)``, so the image features of the pseudo-joints are the
   predicted positions, re-centred on the clip's first frame).
2. Per clip (``forward_features``): a skeleton GRU with ``image`` features over the
   clip's pseudo-joints (``joints``, a :class:`pitch_predictor.models.peers.SkeletonGRU`).

It sees only the colour image at run time. It is trained in two steps
(``training/pose_gru.py``): the 2D-ConvGRU with pose supervision (``pose_loss_weight``)
gives the per-frame layers and the pose head; the GRU is trained on the poses they
predict for every cached frame. The node caches ``encode_frames`` (the pseudo-joints, 75
numbers a frame) like any RGB model's features.
"""

from typing import Any, Sequence

from pitch_predictor.kinect import NUM_BLOCKS, NUM_JOINTS
from pitch_predictor.models.networks import (
    alexnet_layers, alexnet_map_size, FAST_CONFIG, PitchNet)
from pitch_predictor.models.peers import SkeletonGRU
import torch
from torch import nn

POSE_GRU_DEFAULTS = {
    'input_size': 224, 'channels': [96, 256, 384, 384], 'negative_slope': 0.1, 'lrn': True,
    'batch_norm': False, 'hidden': 128, 'layers': 2, 'dropout': 0.2,
    'num_classes': NUM_BLOCKS,
}
POSE_GRU_FAST = {key: FAST_CONFIG[key] for key in ('input_size', 'lrn', 'batch_norm')}
POSE_GRU_FAST['channels'] = list(FAST_CONFIG['channels'][:4])


class PoseGRU(PitchNet):
    """See the module docstring: per-frame pose from the image, a GRU over the poses."""

    input_kind = 'rgb'
    streamable = False

    def __init__(self, *, input_size: int, channels: Sequence[int], negative_slope: float,
                 lrn: bool, batch_norm: bool, hidden: int, layers: int, dropout: float,
                 num_classes: int) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f'channels needs 4 widths (conv1-3, layer 6), got {channels}')
        self.input_size = int(input_size)
        size = alexnet_map_size(self.input_size)
        self.features = alexnet_layers(channels, 1, negative_slope, lrn, batch_norm)
        self.pose = nn.Linear(channels[3] * size * size, NUM_JOINTS * 2)
        self.joints = SkeletonGRU(hidden=hidden, layers=layers, dropout=dropout,
                                  num_classes=num_classes, features='image')
        self.feature_shape = (NUM_JOINTS, 3)

    def predict_pose(self, frames: torch.Tensor) -> torch.Tensor:
        """Return every frame's joints in the image ``(N, 3, S, S) -> (N, 25, 2)``."""
        return self.pose(self.features(frames).flatten(1)).view(-1, NUM_JOINTS, 2)

    def backbone(self, frames: torch.Tensor) -> torch.Tensor:
        """Per frame: the predicted pose as pseudo-joints ``(N, 25, 3)`` = ``(u, v, 1)``."""
        uv = self.predict_pose(frames)
        # uv * 0 + 1, not ones_like: the exporter would fold that into a fixed batch size.
        return torch.cat([uv, uv[..., :1] * 0.0 + 1.0], dim=-1)

    def forward_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 9)`` from the clips' pseudo-joints ``(B, T, 25, 3)``."""
        return self.joints(feats)


def pose_gru_alexnet(**config: Any) -> PitchNet:
    """Build the two-stage RGB-only pose GRU (see the module docstring)."""
    return PoseGRU(**config)
