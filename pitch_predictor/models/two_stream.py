"""
Two-stream networks: the paper's RGB ConvGRU AlexNet and a skeleton GRU, fused.

``two_stream_2d`` (RGB branch: the 2D-ConvGRU AlexNet, bi-directional) and
``two_stream_1d`` (the forward-only 1D-ConvGRU AlexNet: streamable) are built from
named parts:

- ``rgb``: a :class:`~pitch_predictor.models.networks.ConvGRUAlexNet` (per-frame ``backbone``,
  ConvGRU layer 7, fusion of its states into one vector, ``rgb.head``),
- ``joints``: a :class:`~pitch_predictor.models.peers.SkeletonGRU` over the joints of the same
  sampled frames (forward-only GRU; its last output is the skeleton vector,
  ``joints.output`` its 9-way head); config ``joint_features`` ('centred',
  'centred_velocity' or 'spinebase', see the SkeletonGRU), ``joint_hidden``,
  ``joint_layers``, ``joint_dropout``,
- the fusion of the two branches (config ``fusion_mode``) and, for ``'features'``, a
  shared ``head``.

``fusion_mode``:

- ``'features'``: the RGB branch's fused vector (before its head) concatenated with the
  skeleton vector, then a shared ``head`` (the RGB network's FC head on the wider input).
  ``rgb.head`` is then a single linear layer on the RGB vector and ``joints.output`` the
  skeleton head: both only give the auxiliary per-branch logits.
- ``'late'``: each branch keeps its own full 9-way head (``rgb.head`` exactly as in the
  RGB-only network, ``joints.output`` as in ``skeleton_gru``); the output is
  ``late_weight * log_softmax(rgb) + (1 - late_weight) * log_softmax(joints)``.
  ``late_weight`` is a fixed config value (not learned: change it with
  :meth:`TwoStreamNet.set_late_weight`, e.g. after a search on validation data; the
  config, and so the checkpoint, records it). Separately trained RGB-only and
  ``skeleton_gru`` checkpoints load into the branches (:func:`load_branch_weights`;
  ``training.fuse.late_fusion_from_checkpoints`` assembles the whole model).

Inputs: clips ``(B, T, 3, S, S)`` (or their backbone features ``(B, T, C, h, w)``) and
joints ``(B, T, 25, 3)``, raw Kinect camera space in metres as the cache and the node hold
them, NaN for a missing joint or frame. The skeleton branch masks what is missing (see
:mod:`pitch_predictor.models.joints`): the logits are finite whatever is missing, even when
every joint is.

Auxiliary losses: :meth:`TwoStreamNet.forward_branches` returns the fused logits and both
branches' own logits from one pass; ``rgb_branch_logits(feats)`` and
``joint_branch_logits(joints)`` compute one branch alone.

The ConvGRU fusion (config ``fusion``) must give one vector: ``last_flat`` (default),
``mean_flat`` or ``last_avg``; the per-step ``flat`` fusion is refused. ImageNet AlexNet
weights go into the RGB branch: ``load_imagenet_alexnet(model.rgb, path)``.

The skeleton branch's body frame is measured on each clip's first frame with a skeleton
(:mod:`pitch_predictor.models.joints`), the rest pose when the clip starts at the window's start
(Table II methods 1-5, the test clips of 6-7 that start at frame 0); a clip that starts
mid-motion takes its heading and scale from that moment.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from pitch_predictor.models.networks import (
    ALEXNET_DEFAULTS, classifier_head, ConvGRUAlexNet, FAST_CONFIG, PitchNet, StreamState)
from pitch_predictor.models.peers import SkeletonGRU
import torch
from torch import nn
import torch.nn.functional as F

FUSION_MODES = ('features', 'late')
TWO_STREAM_FUSIONS = ('last_flat', 'mean_flat', 'last_avg')

TWO_STREAM_DEFAULTS: Dict[str, Any] = {
    **ALEXNET_DEFAULTS,
    'fusion_mode': 'features',
    'late_weight': 0.5,
    'joint_features': 'centred',
    'joint_hidden': 128,
    'joint_layers': 2,
    'joint_dropout': 0.2,
}
TWO_STREAM_FAST: Dict[str, Any] = {**FAST_CONFIG, 'joint_hidden': 64}


@dataclass
class BranchOutputs:
    """Logits ``(B, 9)`` of the fused network and of each branch alone."""

    logits: torch.Tensor
    rgb_logits: torch.Tensor
    joint_logits: torch.Tensor


class TwoStreamNet(PitchNet):
    """
    RGB ConvGRU AlexNet + skeleton GRU; see the module docstring for the parts and modes.

    ``forward(clips, joints)`` == ``forward_features(backbone(frames), joints)``; streaming
    (forward-only RGB branch): ``init_state`` and ``step_features(feat, joints, state)``.
    """

    input_kind = 'rgb+joints'

    def __init__(self, *, bidirectional: bool, fusion_mode: str, late_weight: float,
                 joint_features: str, joint_hidden: int, joint_layers: int,
                 joint_dropout: float, **rgb_config: Any) -> None:
        super().__init__()
        if fusion_mode not in FUSION_MODES:
            raise ValueError(f'unknown fusion_mode {fusion_mode!r}; choose one of '
                             f'{FUSION_MODES}')
        if rgb_config['fusion'] not in TWO_STREAM_FUSIONS:
            raise ValueError(f'two-stream fusion (of the ConvGRU states) must be one of '
                             f'{TWO_STREAM_FUSIONS}, got {rgb_config["fusion"]!r}')
        self.fusion_mode = fusion_mode
        self.late_weight = float(late_weight)
        self.rgb = ConvGRUAlexNet(recurrent_layers=1, bidirectional=bidirectional,
                                  **rgb_config)
        self.joints = SkeletonGRU(hidden=joint_hidden, layers=joint_layers,
                                  dropout=joint_dropout, num_classes=rgb_config['num_classes'],
                                  features=joint_features)
        self.input_size = self.rgb.input_size
        self.feature_shape = self.rgb.feature_shape
        self.streamable = self.rgb.streamable
        size = self.feature_shape[1]
        hidden = self.rgb.recurrent[-1].hidden_channels
        self.rgb_vector_size = hidden if rgb_config['fusion'] == 'last_avg' \
            else hidden * size * size
        self.head: Optional[nn.Module] = None
        if fusion_mode == 'features':
            self.rgb.head = nn.Linear(self.rgb_vector_size, rgb_config['num_classes'])
            self.head = classifier_head(
                self.rgb_vector_size + joint_hidden, rgb_config['fc_sizes'],
                rgb_config['num_classes'], rgb_config['dropout'],
                rgb_config['negative_slope'])

    # ----------------------------------------------------------- parts

    def backbone(self, frames: torch.Tensor) -> torch.Tensor:
        """Run the RGB branch's per-frame layers ``(N, 3, S, S) -> (N, C, h, w)`` (cacheable)."""
        return self.rgb.backbone(frames)

    def rgb_vector(self, feats: torch.Tensor) -> torch.Tensor:
        """Return the RGB branch's fused vector ``(B, D)`` from features ``(B, T, C, h, w)``."""
        return self._rgb_vector(*self.rgb.recurrent[0].directions(feats))

    def _rgb_vector(self, forward_states: torch.Tensor,
                    backward_states: Optional[torch.Tensor]) -> torch.Tensor:
        """Return the RGB branch's fused vector from its ConvGRU states ``(B, T, K, n, n)``."""
        if self.rgb.fusion in ('last_flat', 'last_avg'):
            last = forward_states[:, -1]
            if backward_states is not None:
                last = (last + backward_states[:, 0]) / 2.0
            return self.rgb._fuse_vector(last)
        states = forward_states
        if backward_states is not None:
            states = (forward_states + backward_states) / 2.0
        # Summed in time order, as the streaming step does.
        total = states[:, 0]
        for t in range(1, states.shape[1]):
            total = total + states[:, t]
        return (total / states.shape[1]).flatten(1)

    def joint_vector(self, joints: torch.Tensor) -> torch.Tensor:
        """Return the skeleton branch's vector ``(B, H)`` from joints ``(B, T, 25, 3)``."""
        return self.joints.encode(joints)

    def fuse(self, rgb_vector: torch.Tensor, joint_vector: torch.Tensor) -> BranchOutputs:
        """Fused and per-branch logits from the two branch vectors."""
        rgb_logits = self.rgb.head(rgb_vector)
        joint_logits = self.joints.classify(joint_vector)
        if self.fusion_mode == 'features':
            logits = self.head(torch.cat([rgb_vector, joint_vector], dim=1))
        else:
            logits = (self.late_weight * F.log_softmax(rgb_logits, dim=-1)
                      + (1.0 - self.late_weight) * F.log_softmax(joint_logits, dim=-1))
        return BranchOutputs(logits, rgb_logits, joint_logits)

    def set_late_weight(self, weight: float) -> None:
        """Set the RGB branch's weight of late fusion (kept in ``config`` for checkpoints)."""
        self.late_weight = float(weight)
        if self.config:
            self.config['late_weight'] = float(weight)

    # ----------------------------------------------------------- whole clips

    def _check(self, feats: torch.Tensor, joints: torch.Tensor) -> None:
        if joints.dim() != 4 or joints.shape[:2] != feats.shape[:2]:
            raise ValueError(
                f'{self.name or "two-stream"}: joints must be (B, T, 25, 3) for the same '
                f'B, T as the frames {tuple(feats.shape[:2])}, got {tuple(joints.shape)}')

    def forward_branches(self, feats: torch.Tensor, joints: torch.Tensor) -> BranchOutputs:
        """All logits from features ``(B, T, C, h, w)`` and joints ``(B, T, 25, 3)``."""
        self._check(feats, joints)
        return self.fuse(self.rgb_vector(feats), self.joint_vector(joints))

    def forward_features(self, feats: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 9)`` from features ``(B, T, C, h, w)`` and joints ``(B, T, 25, 3)``."""
        return self.forward_branches(feats, joints).logits

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Return the RGB branch's per-frame part: backbone and ConvGRU input gates."""
        return self.rgb.encode_frames(frames)

    def forward_encoded(self, encoded: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 9)`` from :meth:`encode_frames` ``(B, T, ...)`` and joints."""
        (joints,) = inputs
        self._check(encoded, joints)
        rgb_vector = self._rgb_vector(*self.rgb.recurrent[0].directions_from_gates(encoded))
        return self.fuse(rgb_vector, self.joint_vector(joints)).logits

    def forward(self, clips: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 9)`` from clips ``(B, T, 3, S, S)`` and joints ``(B, T, 25, 3)``."""
        if clips.dim() != 5:
            raise ValueError(f'{self.name}: expected clips (B, T, 3, H, W), got '
                             f'{tuple(clips.shape)}')
        batch, steps = clips.shape[:2]
        feats = self.backbone(clips.flatten(0, 1)).unflatten(0, (batch, steps))
        return self.forward_features(feats, joints)

    def rgb_branch_logits(self, feats: torch.Tensor) -> torch.Tensor:
        """Return the RGB branch's own logits ``(B, 9)`` from features ``(B, T, C, h, w)``."""
        return self.rgb.head(self.rgb_vector(feats))

    def joint_branch_logits(self, joints: torch.Tensor) -> torch.Tensor:
        """Return the skeleton branch's own logits ``(B, 9)`` from joints ``(B, T, 25, 3)``."""
        return self.joints(joints)

    # ----------------------------------------------------------- streaming

    def init_state(self, batch: int, device: Optional[torch.device] = None) -> StreamState:
        """Return the state before the first frame (two_stream_1d only)."""
        rgb_state = self.rgb.init_state(batch, device)  # raises NotStreamableError if bi
        return StreamState(hidden=rgb_state.hidden,
                           extra={'joints': self.joints.init_encoder_state(batch, device)})

    def step_features(self, feat: torch.Tensor, joints: torch.Tensor, state: StreamState
                      ) -> Tuple[torch.Tensor, StreamState]:
        """
        Advance by one frame: features ``(B, C, h, w)`` and joints ``(B, 25, 3)``.

        Returns (logits for the frames seen so far, new state); after T steps the logits
        equal ``forward_features`` of those T frames.
        """
        outputs, state = self.step_branches(feat, joints, state)
        return outputs.logits, state

    def step_branches(self, feat: torch.Tensor, joints: torch.Tensor, state: StreamState
                      ) -> Tuple[BranchOutputs, StreamState]:
        """:meth:`step_features` with the per-branch logits too."""
        if not self.streamable:
            self.rgb.init_state(1)  # raises the RGB branch's NotStreamableError
        return self._step_branches(self.rgb.recurrent[0].step(feat, state.hidden[0]), joints,
                                   state)

    def step_encoded(self, encoded: torch.Tensor, *inputs: Any
                     ) -> Tuple[torch.Tensor, StreamState]:
        """:meth:`step_features` from one frame's :meth:`encode_frames` and joints, state."""
        joints, state = inputs
        if not self.streamable:
            self.rgb.init_state(1)  # raises the RGB branch's NotStreamableError
        hidden = self.rgb.recurrent[0].step_gates(encoded, state.hidden[0])
        outputs, state = self._step_branches(hidden, joints, state)
        return outputs.logits, state

    def _step_branches(self, rgb_hidden: torch.Tensor, joints: torch.Tensor,
                       state: StreamState) -> Tuple[BranchOutputs, StreamState]:
        hidden: List[Any] = [rgb_hidden]
        steps = state.steps + 1
        total = state.total
        if self.rgb.fusion == 'mean_flat':
            total = hidden[0] if total is None else total + hidden[0]
            rgb_vector = (total / steps).flatten(1)
        else:
            rgb_vector = self.rgb._fuse_vector(hidden[0])
        joint_vector, joint_state = self.joints.encode_step(joints, state.extra['joints'])
        return (self.fuse(rgb_vector, joint_vector),
                StreamState(hidden, total, steps, {'joints': joint_state}))


def _rgb_config(config: Dict[str, Any]) -> Dict[str, Any]:
    return {key: config[key] for key in ALEXNET_DEFAULTS}


def _two_stream_config(config: Dict[str, Any]) -> Dict[str, Any]:
    return {key: config[key] for key in TWO_STREAM_DEFAULTS if key not in ALEXNET_DEFAULTS}


def two_stream_2d(**config: Any) -> PitchNet:
    """2D-ConvGRU AlexNet (bi-directional) + skeleton GRU, fused (``fusion_mode``)."""
    return TwoStreamNet(bidirectional=True, **_two_stream_config(config),
                        **_rgb_config(config))


def two_stream_1d(**config: Any) -> PitchNet:
    """1D-ConvGRU AlexNet (forward-only, streamable) + skeleton GRU, fused."""
    return TwoStreamNet(bidirectional=False, **_two_stream_config(config),
                        **_rgb_config(config))


# Registry name -> (builder, the RGB-only network whose weights fit its RGB branch).
TWO_STREAM_MODELS = {
    'two_stream_2d': (two_stream_2d, 'convgru2d_alexnet'),
    'two_stream_1d': (two_stream_1d, 'convgru1d_alexnet'),
}


# ----------------------------------------------------------- branch weights

def load_branch_weights(model: TwoStreamNet,
                        rgb_state_dict: Optional[Dict[str, torch.Tensor]] = None,
                        joints_state_dict: Optional[Dict[str, torch.Tensor]] = None
                        ) -> List[str]:
    """
    Copy separately trained weights into the branches; return the filled parameter names.

    ``rgb_state_dict``: of the RGB-only network of the same RGB config
    (``convgru2d_alexnet`` for two_stream_2d, ``convgru1d_alexnet`` for two_stream_1d);
    ``joints_state_dict``: of a ``skeleton_gru`` with the same hidden, layers and features.
    In ``'late'`` mode everything loads, heads included. In ``'features'`` mode the RGB
    head's weights are skipped (there ``rgb.head`` is a linear probe of another shape);
    the skeleton head loads. Any other mismatch raises ``ValueError``.
    """
    loaded: List[str] = []
    for prefix, branch, state in (('rgb', model.rgb, rgb_state_dict),
                                  ('joints', model.joints, joints_state_dict)):
        if state is None:
            continue
        state = dict(state)
        if prefix == 'rgb' and model.fusion_mode == 'features':
            state = {k: v for k, v in state.items() if not k.startswith('head.')}
            target = {k for k in branch.state_dict() if not k.startswith('head.')}
        else:
            target = set(branch.state_dict())
        missing, unexpected = sorted(target - set(state)), sorted(set(state) - target)
        if missing or unexpected:
            raise ValueError(f'{prefix} branch weights do not fit: missing {missing[:4]}, '
                             f'unexpected {unexpected[:4]}')
        own = branch.state_dict()
        wrong = [k for k in state if own[k].shape != state[k].shape]
        if wrong:
            raise ValueError(
                f'{prefix} branch weights do not fit: {wrong[0]} is '
                f'{tuple(state[wrong[0]].shape)} in the file, {tuple(own[wrong[0]].shape)} '
                'in the model; build the two-stream model with the branch configs of the '
                'checkpoints')
        branch.load_state_dict(state, strict=False)
        loaded += [f'{prefix}.{k}' for k in sorted(state)]
    return loaded
