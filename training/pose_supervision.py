"""
Pose supervision: the skeleton as a training-time target for an RGB-only network.

The RGB ConvGRU gets the grid column and not the row (issue 13), yet the camera's 2D view
of the joints holds the row (docs/training.md, "What limits the RGB networks"): the
images carry the information, the network does not learn to find the arm in them from a
few hundred clips. Here every training frame's Kinect joints, projected into the image
(:func:`pitch_predictor.models.joints.image_joint_features`: normalised image
coordinates relative to the clip's reference SpineBase, in projected torso lengths),
are regressed from the frame's backbone features by a linear :class:`PoseProbe`:

    loss = CE(logits, block) + pose_loss_weight * MSE(probe(backbone(frame)), pose)

over the joints in view. The probe exists only during training (in ``state.pt`` for
resuming, not in ``model.pt``): the exported network, the node and its latency are
those of the plain RGB model, and it needs no skeleton at run time. The joints are the
unaugmented ones of the same sampled frames (the image augmentation is a shared crop
shift and colour jitter, which relative image coordinates do not see).
"""

from typing import Tuple

from pitch_predictor.kinect import NUM_JOINTS
from pitch_predictor.models.joints import image_joint_features
import torch
from torch import nn


class PoseProbe(nn.Module):
    """A linear map from one frame's backbone features to its 25 projected joints (u, v)."""

    def __init__(self, inputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(inputs, NUM_JOINTS * 2)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """``(N, C, h, w) -> (N, 25, 2)``."""
        return self.linear(feats.flatten(1)).view(-1, NUM_JOINTS, 2)


def make_pose_probe(model: nn.Module, input_size: int) -> PoseProbe:
    """
    Return a probe sized to ``model.backbone``'s per-frame output.

    Refuses networks without a per-frame backbone map (joints-only, 3D CNNs, two-stream)
    and the motion input, whose backbone is conv1 alone.
    """
    kind = getattr(model, 'input_kind', 'rgb')
    if kind != 'rgb' or not hasattr(model, 'recurrent') or getattr(model, 'motion', False):
        raise ValueError('pose_loss_weight needs an RGB ConvGRU network without the motion '
                         f'input (got {type(model).__name__}, input {kind})')
    with torch.no_grad():
        was = model.training
        model.eval()
        out = model.backbone(torch.zeros(1, 3, input_size, input_size))
        model.train(was)
    return PoseProbe(int(out[0].numel()))


def pose_targets(joints: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return (positions ``(B, T, 25, 2)``, in-view mask ``(B, T, 25, 1)``) of raw joints."""
    features = image_joint_features(joints)
    return features[..., :2], features[..., 4:5]


def pose_supervised_loss(model: nn.Module, probe: PoseProbe, clips: torch.Tensor,
                         joints: torch.Tensor, labels: torch.Tensor, weight: float,
                         label_smoothing: float = 0.0
                         ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (logits, loss, pose MSE) of a batch: clips ``(B, T, 3, S, S)``, joints."""
    batch, steps = clips.shape[:2]
    feats = model.backbone(clips.flatten(0, 1))
    logits = model.forward_features(feats.unflatten(0, (batch, steps)))
    target, seen = pose_targets(joints)
    pred = probe(feats).view(batch, steps, NUM_JOINTS, 2).float()
    mse = (((pred - target) ** 2) * seen).sum() / (2.0 * seen.sum()).clamp(min=1.0)
    ce = nn.functional.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    return logits, ce + weight * mse, mse.detach()
