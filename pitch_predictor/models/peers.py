"""
Peer models to compare against: 3D CNNs from torchvision's video ResNets and a skeleton GRU.

- ``r3d_18``, ``mc3_18``, ``r2plus1d_18``: torchvision.models.video's 18-layer networks,
  trained from scratch (no weights are ever downloaded). The default config reproduces
  torchvision's layout exactly (same parameter names and counts); ``widths`` and
  ``blocks`` make the narrow fast variants. They have no per-frame backbone: ``backbone``
  is the identity and ``forward_features`` takes the clip.
- ``skeleton_gru``: a GRU over the 25 Kinect joints of every frame (``input_kind``
  'joints'); config ``features``: 'centred' (pitcher-centred body frame, velocities,
  validity; the fast preset), 'centred_velocity' (its velocities and validity only) or
  'spinebase' (relative to the first frame's SpineBase in camera axes: the original
  peer, and the meaning of a config without the key).
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

from pitch_predictor.kinect import NUM_BLOCKS, NUM_JOINTS
from pitch_predictor.models.joints import (
    CHANNELS, IMAGE_CHANNELS, init_feature_state, joint_input_width, joint_inputs,
    joint_inputs_step, SPINE_BASE, spinebase_joint_inputs)
from pitch_predictor.models.networks import PitchNet
import torch
from torch import nn
from torchvision.models.video.resnet import (
    BasicBlock, Conv2Plus1D, Conv3DNoTemporal, Conv3DSimple)

JOINT_FEATURES = (*CHANNELS, *IMAGE_CHANNELS, 'spinebase')

VIDEO_DEFAULTS = {
    'input_size': 224,
    'widths': [64, 128, 256, 512],
    'blocks': [2, 2, 2, 2],
    'num_classes': NUM_BLOCKS,
}
VIDEO_FAST = {'input_size': 112, 'widths': [16, 32, 64, 128], 'blocks': [1, 1, 1, 1]}

_CONV_MAKERS = {
    'r3d_18': [Conv3DSimple] * 4,
    'mc3_18': [Conv3DSimple] + [Conv3DNoTemporal] * 3,
    'r2plus1d_18': [Conv2Plus1D] * 4,
}


def _stem(kind: str, width: int) -> nn.Sequential:
    if kind == 'r2plus1d_18':
        # torchvision's (2+1)D stem: 45 spatial filters for a 64-wide first stage.
        middle = max(1, width * 45 // 64)
        return nn.Sequential(
            nn.Conv3d(3, middle, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(middle), nn.ReLU(inplace=True),
            nn.Conv3d(middle, width, (3, 1, 1), stride=1, padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(width), nn.ReLU(inplace=True))
    return nn.Sequential(
        nn.Conv3d(3, width, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
        nn.BatchNorm3d(width), nn.ReLU(inplace=True))


class VideoResNetPeer(PitchNet):
    """torchvision's VideoResNet layout with configurable stage widths and block counts."""

    def __init__(self, kind: str, *, input_size: int, widths: Sequence[int],
                 blocks: Sequence[int], num_classes: int) -> None:
        super().__init__()
        if len(widths) != 4 or len(blocks) != 4:
            raise ValueError(f'{kind}: widths and blocks need 4 values each, got '
                             f'{widths} and {blocks}')
        self.input_size = int(input_size)
        self.feature_shape = (3, self.input_size, self.input_size)
        self.stem = _stem(kind, widths[0])
        inplanes = widths[0]
        for index, (maker, planes, count) in enumerate(zip(_CONV_MAKERS[kind], widths, blocks)):
            stride = 1 if index == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes:
                downsample = nn.Sequential(
                    nn.Conv3d(inplanes, planes, 1, stride=maker.get_downsample_stride(stride),
                              bias=False),
                    nn.BatchNorm3d(planes))
            layers: List[nn.Module] = [BasicBlock(inplanes, planes, maker, stride, downsample)]
            layers += [BasicBlock(planes, planes, maker) for _ in range(1, count)]
            setattr(self, f'layer{index + 1}', nn.Sequential(*layers))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(inplanes, num_classes)
        # torchvision's initialisation.
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def backbone(self, frames: torch.Tensor) -> torch.Tensor:
        """Identity: 3D CNNs have no per-frame part."""
        return frames

    def forward_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 9)`` from clips ``(B, T, 3, S, S)``."""
        x = self.stem(feats.transpose(1, 2))  # (B, 3, T, S, S): channels before time
        for index in range(1, 5):
            x = getattr(self, f'layer{index}')(x)
        return self.fc(self.avgpool(x).flatten(1))


def r3d_18(**config: Any) -> PitchNet:
    """Build torchvision's R3D-18 (3D convolutions throughout), untrained."""
    return VideoResNetPeer('r3d_18', **config)


def mc3_18(**config: Any) -> PitchNet:
    """Build torchvision's MC3-18 (3D convolutions in stage 1, 2D in stages 2-4), untrained."""
    return VideoResNetPeer('mc3_18', **config)


def r2plus1d_18(**config: Any) -> PitchNet:
    """Build torchvision's R(2+1)D-18 (factorised spatial and temporal convs), untrained."""
    return VideoResNetPeer('r2plus1d_18', **config)


class SkeletonGRU(PitchNet):
    """
    A GRU over Kinect joints: ``forward(joints (B, T, 25, 3)) -> logits (B, 9)``.

    ``features`` chooses the per-frame GRU inputs (see :mod:`pitch_predictor.models.joints`):

    - ``'centred'``: the pitcher-centred body frame of the clip's reference frame (origin,
      heading and scale of the pitcher at rest), velocities and a validity mask per joint
      (25 x 7 inputs): the camera's placement and the pitcher's size drop out;
    - ``'centred_velocity'``: the same without the positions (velocity and validity,
      25 x 4 inputs);
    - ``'metric'``, ``'metric_velocity'``: the same two in metres (origin and heading
      only, no division by the torso length: absolute release height and speed stay);
    - ``'image'``, ``'image_velocity'``: what the colour camera sees of the joints (their
      pinhole projection without depth, positions and changes or changes only; an
      analysis of the RGB networks' ceiling, not a deployment choice);
    - ``'spinebase'`` (the original peer, and what a config without the key means): camera
      axes in metres relative to the first frame's SpineBase, NaN joints as zeros (75).

    Parts: ``gru`` (the encoder; its last output is the clip's vector, :meth:`encode`),
    ``dropout`` and ``output`` (the 9-way head). The two-stream networks use this module
    as their skeleton branch, so a ``skeleton_gru`` checkpoint loads into one.
    """

    input_kind = 'joints'

    def __init__(self, *, hidden: int, layers: int, dropout: float, num_classes: int,
                 features: str = 'spinebase') -> None:
        super().__init__()
        if features not in JOINT_FEATURES:
            raise ValueError(f'skeleton features must be one of {JOINT_FEATURES}, got '
                             f'{features!r}')
        self.joint_features = features
        self.feature_shape = (NUM_JOINTS, 3)
        per_joint = 3 if features == 'spinebase' else joint_input_width(features)
        inputs = NUM_JOINTS * per_joint
        self.gru = nn.GRU(inputs, hidden, num_layers=layers, batch_first=True,
                          dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden, num_classes)

    def backbone(self, frames: torch.Tensor) -> torch.Tensor:
        """Identity: joints need no per-frame network."""
        return frames

    def forward_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits from joints ``(B, T, 25, 3)``."""
        return self.forward(feats)

    def inputs(self, joints: torch.Tensor) -> torch.Tensor:
        """GRU inputs ``(B, T, F)`` from joints ``(B, T, 25, 3)`` (NaN = missing)."""
        if joints.dim() != 4 or tuple(joints.shape[2:]) != (NUM_JOINTS, 3):
            raise ValueError(f'skeleton_gru expects joints (B, T, {NUM_JOINTS}, 3), got '
                             f'{tuple(joints.shape)}')
        if self.joint_features == 'spinebase':
            return spinebase_joint_inputs(joints)
        return joint_inputs(joints, self.joint_features)

    def encode(self, joints: torch.Tensor) -> torch.Tensor:
        """Return the clip's vector ``(B, hidden)``: the GRU's last output."""
        outputs, _ = self.gru(self.inputs(joints))
        return outputs[:, -1]

    def classify(self, vector: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 9)`` from :meth:`encode`'s vector."""
        return self.output(self.dropout(vector))

    def forward(self, joints: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 9)`` from joints ``(B, T, 25, 3)`` in metres."""
        return self.classify(self.encode(joints))

    def init_encoder_state(self, batch: int, device: Optional[torch.device] = None
                           ) -> Dict[str, Any]:
        """Return the encoder state before a clip's first frame (for :meth:`encode_step`)."""
        return {'hidden': torch.zeros(self.gru.num_layers, batch, self.gru.hidden_size,
                                      device=device),
                'features': init_feature_state(batch, device),
                'origin': None}

    def encode_step(self, joints: torch.Tensor, state: Dict[str, Any]
                    ) -> Tuple[torch.Tensor, Dict[str, Any]]:
        """
        Advance by one frame's joints ``(B, 25, 3)``; return (vector so far, new state).

        After T steps the vector equals :meth:`encode` of those T frames.
        """
        origin = state['origin']
        features = state['features']
        if self.joint_features != 'spinebase':
            inputs, features = joint_inputs_step(joints, features, self.joint_features)
        else:
            clean = torch.nan_to_num(joints.float())
            if origin is None:
                origin = clean[:, SPINE_BASE:SPINE_BASE + 1]
            inputs = (clean - origin).flatten(1)
        output, hidden = self.gru(inputs.unsqueeze(1), state['hidden'])
        return output[:, 0], {'hidden': hidden, 'features': features, 'origin': origin}


SKELETON_DEFAULTS = {'hidden': 128, 'layers': 2, 'dropout': 0.2, 'num_classes': NUM_BLOCKS,
                     'features': 'spinebase'}
SKELETON_FAST = {'hidden': 64, 'features': 'centred'}


def skeleton_gru(**config: Any) -> PitchNet:
    """Build a 2-layer GRU over the 25 Kinect joints of every frame."""
    return SkeletonGRU(**config)
