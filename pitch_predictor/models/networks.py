"""
The paper's four networks (Table I) and their fusions (the registry is ``registry.py``).

Every RGB network is three named parts:

- ``backbone``: the per-frame layers before the first recurrent layer, ``(N, 3, S, S) ->
  (N, C, h, w)``: AlexNet layers 1-5 (conv 11x11/4 96, LRN, maxpool, conv 5x5 256, LRN,
  maxpool, conv 3x3 384) plus layer 6's conv where it is a plain conv (1D/2D-ConvGRU) and
  layers 6-7 for the GRU baseline. Features can be computed once per frame and cached.
- the recurrent part (ConvGRU layers 6-7 or the 2-layer GRU) and the fusion,
- ``head``: dropout, FC, leaky ReLU, dropout, FC, leaky ReLU, FC to 9 classes.

``forward(clips (B, T, 3, S, S)) == forward_features(backbone(frames) as (B, T, C, h, w))``.

Fusions of the last ConvGRU layer's states (bi: forward h_t, backward h^_t):

- ``last_flat``: flatten h_T (bi: (h^_1 + h_T) / 2),
- ``mean_flat``: flatten the mean over t of h_t (bi: of (h_t + h^_t) / 2),
- ``last_avg``: global average pool of the last_flat map,
- ``flat``: late fusion, the head on every step's flattened state, logits averaged.

The ConvGRU networks' ``motion`` option (an extension, issue 13): every sampled frame's
input is its normalised image and its difference to the previous sampled frame of the
clip (zero for the first), 6 channels into conv1. As conv1 is linear, ``W [x_t, x_t -
x_p] = (W_i + W_d) x_t - W_d x_p``: the ``backbone`` is then conv1's two linear maps of
the frame alone, ``(W_i + W_d) x_t + b`` and ``W_d x_t`` (cacheable per frame), and
``forward_features`` forms ``own_t - diff_{t-1}`` (``own_0 - diff_0`` for the first frame)
over the clip and runs the rest of the per-frame layers, the ConvGRU and the head.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from pitch_predictor.kinect import NUM_BLOCKS
from pitch_predictor.models.convgru import combine_directions, ConvGRU
import torch
from torch import nn
import torch.nn.functional as F

FUSIONS = ('last_flat', 'mean_flat', 'last_avg', 'flat')

ALEXNET_DEFAULTS: Dict[str, Any] = {
    'input_size': 224,
    # conv1, conv2, conv3 (layers 1-5), layer 6, layer 7: the original AlexNet widths.
    'channels': [96, 256, 384, 384, 256],
    'fc_sizes': [4096, 4096],
    'dropout': 0.8,
    'negative_slope': 0.1,
    'lrn': True,
    'batch_norm': False,
    'fusion': 'last_flat',
    'gru_kernel_size': 3,
    'gru_hidden_kernel_size': 1,
    'per_position_bias': True,
    'num_classes': NUM_BLOCKS,
}

# The small configuration for CPU training, CI, the demo and the shipped model (input 112,
# 6x6 maps). Shared by the four AlexNet-family networks; ``registry.fast_config(name)``
# gives the complete fast config of any registered network (peers included).
FAST_CONFIG: Dict[str, Any] = {
    'input_size': 112,
    'channels': [32, 64, 96, 96, 64],
    'fc_sizes': [256, 256],
    'dropout': 0.5,
    # PyTorch's CPU LRN took about two thirds of a fast training step; the paper sizes
    # keep it.
    'lrn': False,
    # From scratch on a CPU, BatchNorm after every per-frame conv left the initial
    # loss plateau in about half the epochs (measured: 10-12 vs 18-20).
    'batch_norm': True,
}


class NotStreamableError(RuntimeError):
    """The model cannot run one frame at a time (bi-directional or no recurrent state)."""


@dataclass
class StreamState:
    """Recurrent state carried between ``step_features`` calls (opaque to callers)."""

    hidden: List[Any]
    total: Optional[torch.Tensor] = None  # running sum for mean_flat / flat fusions
    steps: int = 0
    extra: Dict[str, Any] = field(default_factory=dict)


class PitchNet(nn.Module):
    """
    Base class of every registered model: the interface training, evaluation and the node use.

    Attributes: ``name`` and ``config`` (registry name and full build config),
    ``input_kind`` ('rgb' or 'joints'), ``input_size`` (S of the network input),
    ``streamable`` (``init_state``/``step_features`` work), ``feature_shape`` (C, h, w).
    """

    input_kind = 'rgb'
    streamable = False

    def __init__(self) -> None:
        super().__init__()
        self.name = ''
        self.config: Dict[str, Any] = {}
        self.input_size = 0
        self.feature_shape: Tuple[int, ...] = ()

    def backbone(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame layers ``(N, 3, S, S) -> (N, C, h, w)``."""
        raise NotImplementedError

    def forward_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 9)`` from backbone features ``(B, T, C, h, w)``."""
        raise NotImplementedError

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """
        Everything that depends on one frame alone ``(N, 3, S, S) -> (N, ...)``.

        A stream computes it once per arriving frame and caches it; :meth:`forward_encoded`
        and :meth:`step_encoded` take it. Default: the backbone features.
        """
        return self.backbone(frames)

    def forward_encoded(self, encoded: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 9)`` from :meth:`encode_frames` of every clip frame ``(B, T, ...)``."""
        return self.forward_features(encoded, *inputs)

    def step_encoded(self, encoded: torch.Tensor, *inputs: Any) -> Tuple[torch.Tensor, Any]:
        """:meth:`step_features` from one frame's :meth:`encode_frames` ``(B, ...)``."""
        return self.step_features(encoded, *inputs)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 9)`` from clips ``(B, T, 3, S, S)``."""
        if clips.dim() != 5:
            raise ValueError(f'{self.name}: expected clips (B, T, 3, H, W), got '
                             f'{tuple(clips.shape)}')
        batch, steps = clips.shape[:2]
        feats = self.backbone(clips.flatten(0, 1))
        return self.forward_features(feats.unflatten(0, (batch, steps)))

    def init_state(self, batch: int, device: Optional[torch.device] = None) -> StreamState:
        """Return the state before the first frame (streaming models only)."""
        raise NotStreamableError(f'{self.name} cannot run one frame at a time')

    def step_features(self, feat: torch.Tensor, state: StreamState
                      ) -> Tuple[torch.Tensor, StreamState]:
        """Advance by one frame's features ``(B, C, h, w)``; return (logits now, state)."""
        raise NotStreamableError(f'{self.name} cannot run one frame at a time')


def alexnet_map_size(input_size: int) -> int:
    """Return the side of AlexNet's conv3 map (13 at 224, 6 at 112)."""
    size = (input_size + 2 * 2 - 11) // 4 + 1  # conv1 11x11, stride 4, padding 2
    size = (size - 3) // 2 + 1  # maxpool 3/2 (conv2 keeps the size)
    size = (size - 3) // 2 + 1  # maxpool 3/2 (conv3 keeps the size)
    if size < 1:
        raise ValueError(f'input_size {input_size} is too small for the AlexNet layers')
    return size


def alexnet_layers(channels: Sequence[int], extra_convs: int, negative_slope: float,
                   lrn: bool, batch_norm: bool = False, in_channels: int = 3) -> nn.Sequential:
    """
    Return AlexNet layers 1-5 plus ``extra_convs`` 3x3 convs (layers 6, 7).

    ``batch_norm`` (an extension, off in the paper's config) puts a BatchNorm2d between
    every conv and its activation; the conv then has no bias. In eval mode it is a fixed
    per-channel affine map, so cached per-frame features stay valid. ``in_channels``:
    conv1's input channels (3; 6 for the ``motion`` input: image and frame difference).
    """
    c1, c2, c3 = channels[:3]

    def conv(cin: int, cout: int, kernel: int, **kwargs: Any) -> List[nn.Module]:
        if batch_norm:
            return [nn.Conv2d(cin, cout, kernel, bias=False, **kwargs), nn.BatchNorm2d(cout)]
        return [nn.Conv2d(cin, cout, kernel, **kwargs)]

    def act() -> nn.Module:
        return nn.LeakyReLU(negative_slope, inplace=True)

    def norm() -> nn.Module:
        # AlexNet's LRN constants (Krizhevsky et al. 2012).
        return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0) if lrn else nn.Identity()

    layers: List[nn.Module] = [
        *conv(in_channels, c1, 11, stride=4, padding=2), act(), norm(),
        nn.MaxPool2d(3, stride=2),
        *conv(c1, c2, 5, padding=2), act(), norm(),
        nn.MaxPool2d(3, stride=2),
        *conv(c2, c3, 3, padding=1), act(),
    ]
    width = c3
    for out in channels[3:3 + extra_convs]:
        layers += [*conv(width, out, 3, padding=1), act()]
        width = out
    return nn.Sequential(*layers)


def classifier_head(in_features: int, fc_sizes: Sequence[int], num_classes: Optional[int],
                    dropout: float, negative_slope: float) -> nn.Sequential:
    """Return dropout -> FC -> leaky ReLU per FC size, then FC to ``num_classes`` (if any)."""
    layers: List[nn.Module] = []
    width = in_features
    for size in fc_sizes:
        layers += [nn.Dropout(dropout), nn.Linear(width, size),
                   nn.LeakyReLU(negative_slope, inplace=True)]
        width = size
    if num_classes is not None:
        layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class ConvGRUAlexNet(PitchNet):
    """
    AlexNet layers 1-5, a conv or ConvGRU layer 6, a ConvGRU layer 7, fusion, FC head.

    ``recurrent``: (hidden channels, bi-directional) per ConvGRU layer; the layers before
    them (up to layer 6) are per-frame convs in the backbone.

    ``motion``: conv1 takes the frame and its difference to the clip's previous sampled
    frame (see the module doc): ``backbone`` is then conv1's linear part only, ``(N, 3, S,
    S) -> (N, 2 * c1, m, m)``, and the rest of the per-frame layers run in
    ``forward_features``, which needs the clip's frames in order.
    """

    def __init__(self, *, input_size: int, channels: Sequence[int], fc_sizes: Sequence[int],
                 dropout: float, negative_slope: float, lrn: bool, batch_norm: bool,
                 fusion: str, gru_kernel_size: int, gru_hidden_kernel_size: int,
                 per_position_bias: bool, num_classes: int, recurrent_layers: int,
                 bidirectional: bool, motion: bool = False) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f'unknown fusion {fusion!r}; choose one of {FUSIONS}')
        if len(channels) != 5:
            raise ValueError(f'channels needs 5 widths (conv1-3, layers 6-7), got {channels}')
        self.fusion = fusion
        self.input_size = int(input_size)
        size = alexnet_map_size(self.input_size)
        per_frame = 5 - recurrent_layers  # conv layers 1-3 plus plain layer-6 conv
        self.motion = bool(motion)
        self.features = alexnet_layers(channels, per_frame - 3, negative_slope, lrn, batch_norm,
                                       in_channels=6 if self.motion else 3)
        width = channels[per_frame - 1]
        self.map_size = size
        self.feature_shape = (width, size, size)
        if self.motion:
            conv1_size = (self.input_size + 2 * 2 - 11) // 4 + 1
            self.feature_shape = (2 * channels[0], conv1_size, conv1_size)
        self.recurrent = nn.ModuleList()
        for hidden in channels[per_frame:]:
            self.recurrent.append(ConvGRU(
                width, hidden, gru_kernel_size, gru_hidden_kernel_size,
                bidirectional=bidirectional,
                spatial_size=(size, size) if per_position_bias else None))
            width = hidden
        self.streamable = not bidirectional
        head_inputs = width if fusion == 'last_avg' else width * size * size
        self.head = classifier_head(head_inputs, fc_sizes, num_classes, dropout,
                                    negative_slope)

    def backbone(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame layers ``(N, 3, S, S) -> (N, C, h, w)`` (``motion``: conv1's linear maps)."""
        if not self.motion:
            return self.features(frames)
        # One conv: output channels [own = (W_i + W_d) x + b, diff = W_d x].
        conv = self.features[0]
        image_weight, diff_weight = conv.weight[:, :3], conv.weight[:, 3:]
        weight = torch.cat([image_weight + diff_weight, diff_weight])
        bias = None if conv.bias is None else torch.cat([conv.bias, torch.zeros_like(conv.bias)])
        return F.conv2d(frames, weight, bias, conv.stride, conv.padding)

    def _motion_features(self, feats: torch.Tensor) -> torch.Tensor:
        """
        Per-frame features ``(B, T, C, n, n)`` of a motion model from its backbone output.

        ``feats`` ``(B, T, 2 * c1, m, m)``: conv1 of [x_t, x_t - x_{t-1}] is ``own_t -
        diff_{t-1}``, and ``own_0 - diff_0`` (a zero difference) for the first frame.
        """
        own, diff = feats.chunk(2, dim=2)
        previous = torch.cat([diff[:, :1], diff[:, :-1]], dim=1)
        x = self.features[1:]((own - previous).flatten(0, 1))
        return x.unflatten(0, tuple(feats.shape[:2]))

    def _fuse_vector(self, last: torch.Tensor) -> torch.Tensor:
        if self.fusion == 'last_avg':
            return last.mean(dim=(-2, -1))
        return last.flatten(1)

    def forward_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 9)`` from backbone features ``(B, T, C, h, w)``."""
        x = self._motion_features(feats) if self.motion else feats
        for layer in self.recurrent[:-1]:
            x = layer(x)
        return self._logits(*self.recurrent[-1].directions(x))

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """
        Backbone features and the first ConvGRU layer's input gates, per frame.

        ``(N, 3, S, S) -> (N, D * 3K, n, n)`` (:meth:`ConvGRU.frame_gates`): the input
        convolution is most of a decision's work and depends on the frame alone.
        A ``motion`` model's per-frame part is its :meth:`backbone` (conv1's linear maps):
        everything after conv1 depends on the clip's previous frame.
        """
        if self.motion:
            return self.backbone(frames)
        return self.recurrent[0].frame_gates(self.backbone(frames))

    def forward_encoded(self, encoded: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 9)`` from :meth:`encode_frames` of every clip frame ``(B, T, ...)``."""
        if self.motion:
            return self.forward_features(encoded)
        states = self.recurrent[0].directions_from_gates(encoded)
        if len(self.recurrent) == 1:
            return self._logits(*states)
        x = combine_directions(*states)
        for layer in self.recurrent[1:-1]:
            x = layer(x)
        return self._logits(*self.recurrent[-1].directions(x))

    def _logits(self, forward_states: torch.Tensor,
                backward_states: Optional[torch.Tensor]) -> torch.Tensor:
        """Fusion and head over the last ConvGRU layer's states ``(B, T, K, n, n)``."""
        if self.fusion in ('last_flat', 'last_avg'):
            last = forward_states[:, -1]
            if backward_states is not None:
                # The backward direction has seen the whole clip at t = 1.
                last = (last + backward_states[:, 0]) / 2.0
            return self.head(self._fuse_vector(last))
        states = combine_directions(forward_states, backward_states)
        # Step by step, summed in time order as step_features does: streaming then gives
        # bit-identical results.
        steps = states.shape[1]
        if self.fusion == 'mean_flat':
            total = states[:, 0]
            for t in range(1, steps):
                total = total + states[:, t]
            return self.head((total / steps).flatten(1))
        total = self.head(states[:, 0].flatten(1))
        for t in range(1, steps):
            total = total + self.head(states[:, t].flatten(1))
        return total / steps

    def init_state(self, batch: int, device: Optional[torch.device] = None) -> StreamState:
        """Return the zero state before the first frame (forward-only models)."""
        if not self.streamable:
            raise NotStreamableError(f'{self.name or "this model"} is bi-directional: it needs '
                                     'the whole clip and cannot run one frame at a time')
        size = self.map_size
        return StreamState(hidden=[layer.initial_state(batch, size, size, device)
                                   for layer in self.recurrent])

    def step_features(self, feat: torch.Tensor, state: StreamState
                      ) -> Tuple[torch.Tensor, StreamState]:
        """
        Advance by one frame's backbone features ``(B, C, h, w)``.

        Returns (logits for the frames seen so far, new state); after T steps the logits
        equal ``forward_features`` of those T frames. A ``motion`` model keeps the previous
        frame's conv1 difference map in ``state.extra``.
        """
        if not self.streamable:
            raise NotStreamableError(f'{self.name or "this model"} is bi-directional')
        x = feat
        diff = None
        if self.motion:
            own, diff = feat.chunk(2, dim=1)
            x = self.features[1:](own - state.extra.get('motion_previous', diff))
        hidden = []
        for layer, previous in zip(self.recurrent, state.hidden):
            x = layer.step(x, previous)
            hidden.append(x)
        logits, new_state = self._step_logits(x, hidden, state)
        if diff is not None:
            new_state.extra = {'motion_previous': diff}
        return logits, new_state

    def step_encoded(self, encoded: torch.Tensor, state: StreamState
                     ) -> Tuple[torch.Tensor, StreamState]:
        """:meth:`step_features` from one frame's :meth:`encode_frames` ``(B, 3K, n, n)``."""
        if not self.streamable:
            raise NotStreamableError(f'{self.name or "this model"} is bi-directional')
        if self.motion:
            return self.step_features(encoded, state)
        x = self.recurrent[0].step_gates(encoded, state.hidden[0])
        hidden = [x]
        for layer, previous in zip(self.recurrent[1:], state.hidden[1:]):
            x = layer.step(x, previous)
            hidden.append(x)
        return self._step_logits(x, hidden, state)

    def _step_logits(self, x: torch.Tensor, hidden: List[torch.Tensor], state: StreamState
                     ) -> Tuple[torch.Tensor, StreamState]:
        """Logits for the frames seen so far from the last layer's new state ``x``."""
        steps = state.steps + 1
        if self.fusion in ('last_flat', 'last_avg'):
            return self.head(self._fuse_vector(x)), StreamState(hidden, None, steps)
        if self.fusion == 'mean_flat':
            total = x if state.total is None else state.total + x
            return self.head((total / steps).flatten(1)), StreamState(hidden, total, steps)
        logits = self.head(x.flatten(1))
        total = logits if state.total is None else state.total + logits
        return total / steps, StreamState(hidden, total, steps)


class GRUAlexNet(PitchNet):
    """
    The GRU AlexNet baseline: AlexNet convs 1-7 and FC 9-10 per frame, a 2-layer GRU.

    Fusion ``flat`` (the paper's): the output layer on every step's GRU output, logits
    averaged over time; ``last_flat``: on the last step; ``mean_flat``: on the mean output.
    """

    streamable = True

    def __init__(self, *, input_size: int, channels: Sequence[int], fc_sizes: Sequence[int],
                 dropout: float, negative_slope: float, lrn: bool, batch_norm: bool,
                 fusion: str, gru_hidden: int, gru_layers: int, num_classes: int) -> None:
        super().__init__()
        if fusion not in ('flat', 'last_flat', 'mean_flat'):
            raise ValueError(f'gru_alexnet fusion must be flat, last_flat or mean_flat, got '
                             f'{fusion!r} (there is no map to average pool)')
        if len(channels) != 5:
            raise ValueError(f'channels needs 5 widths (conv1-3, layers 6-7), got {channels}')
        self.fusion = fusion
        self.input_size = int(input_size)
        size = alexnet_map_size(self.input_size)
        self.features = alexnet_layers(channels, 2, negative_slope, lrn, batch_norm)
        self.feature_shape = (channels[4], size, size)
        self.frame_fc = classifier_head(channels[4] * size * size, fc_sizes, None, dropout,
                                        negative_slope)
        self.gru = nn.GRU(fc_sizes[-1], gru_hidden, num_layers=gru_layers, batch_first=True)
        self.output = nn.Linear(gru_hidden, num_classes)

    def backbone(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame conv layers 1-7 ``(N, 3, S, S) -> (N, C, h, w)``."""
        return self.features(frames)

    def forward_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 9)`` from backbone features ``(B, T, C, h, w)``."""
        batch, steps = feats.shape[:2]
        vectors = self.frame_fc(feats.flatten(2).flatten(0, 1)).unflatten(0, (batch, steps))
        outputs, _ = self.gru(vectors)
        if self.fusion == 'last_flat':
            return self.output(outputs[:, -1])
        if self.fusion == 'mean_flat':
            return self.output(outputs.mean(dim=1))
        return self.output(outputs).mean(dim=1)

    def init_state(self, batch: int, device: Optional[torch.device] = None) -> StreamState:
        """Return the zero GRU state before the first frame."""
        hidden = torch.zeros(self.gru.num_layers, batch, self.gru.hidden_size, device=device)
        return StreamState(hidden=[hidden])

    def step_features(self, feat: torch.Tensor, state: StreamState
                      ) -> Tuple[torch.Tensor, StreamState]:
        """Advance by one frame's features ``(B, C, h, w)``; return (logits now, state)."""
        vector = self.frame_fc(feat.flatten(1)).unsqueeze(1)
        output, hidden = self.gru(vector, state.hidden[0])
        output = output[:, 0]
        steps = state.steps + 1
        if self.fusion == 'last_flat':
            return self.output(output), StreamState([hidden], None, steps)
        if self.fusion == 'mean_flat':
            total = output if state.total is None else state.total + output
            return self.output(total / steps), StreamState([hidden], total, steps)
        logits = self.output(output)
        total = logits if state.total is None else state.total + logits
        return total / steps, StreamState([hidden], total, steps)


def _ungroup(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Turn a grouped conv weight (the original 2-GPU AlexNet) into a dense one."""
    groups = in_channels // weight.shape[1]
    out_per_group = weight.shape[0] // groups
    dense = weight.new_zeros(weight.shape[0], in_channels, *weight.shape[2:])
    for g in range(groups):
        rows = slice(g * out_per_group, (g + 1) * out_per_group)
        cols = slice(g * weight.shape[1], (g + 1) * weight.shape[1])
        dense[rows, cols] = weight[rows]
    return dense


# torchvision's AlexNet (``torchvision.models.alexnet``): the output widths of its five
# convs, ``features.0, 3, 6, 8, 10``. Built with ``channels=TORCHVISION_ALEXNET_CHANNELS``,
# a network's per-frame convs (conv1-3 and the plain layer-6/7 convs) have the shapes of
# that file's, so its ImageNet weights load; the Table I widths are 96/256/384/384/256.
TORCHVISION_ALEXNET_CHANNELS: Tuple[int, ...] = (64, 192, 384, 256, 256)


def read_alexnet_convs(path: str) -> List[Tuple[str, torch.Tensor, Optional[torch.Tensor]]]:
    """
    Return the conv layers of a local AlexNet weight file: ``[(name, weight, bias)]``.

    ``path``: a plain state dict saved with ``torch.save`` (or a dict holding one under
    'state_dict'), read with ``torch.load(..., weights_only=True)``: tensors only, no code
    runs. The convs are its 4-D ``features.N.weight`` entries (torchvision's names), in
    order of N, each with its ``features.N.bias`` if present. Anything else (a pickled
    model, another network's names, no conv weights) raises ``ValueError``.
    """
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise ValueError(f'{path}: no such file') from None
    except Exception as exc:  # an unpickling error names the first global it refused
        raise ValueError(f'{path}: not a plain state dict of tensors (read with '
                         f'weights_only=True, no code is run): {exc}') from None
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']
    if not isinstance(state, dict):
        raise ValueError(f'{path}: holds a {type(state).__name__}, not a state dict')

    def layer(key: str) -> Optional[int]:
        parts = key.split('.') if isinstance(key, str) else []
        ok = (len(parts) == 3 and parts[0] == 'features' and parts[1].isdigit()
              and parts[2] == 'weight' and isinstance(state[key], torch.Tensor)
              and state[key].dim() == 4)
        return int(parts[1]) if ok else None

    found = sorted((layer(k), k) for k in state if layer(k) is not None)
    if not found:
        raise ValueError(f'{path}: no AlexNet conv weights (features.N.weight, 4-D); its '
                         f'keys start {sorted(state)[:4]}')
    return [(key[:-len('.weight')], state[key], state.get(key[:-len('weight')] + 'bias'))
            for _, key in found]


def load_imagenet_alexnet(model: nn.Module, path: str) -> List[str]:
    """
    Copy ImageNet AlexNet conv weights from a local file into ``model``'s per-frame convs.

    ``path``: see :func:`read_alexnet_convs` (torchvision's names
    ``features.{0,3,6,8,10}.weight/bias``; nothing is downloaded, no code is run). Its
    convs are copied in order into the model's backbone convs (layers 1-5, and 6-7 where
    they are plain convs); grouped weights (the original two-GPU AlexNet) are expanded to
    dense ones. The shapes must match: build the model with
    ``channels=TORCHVISION_ALEXNET_CHANNELS`` for torchvision's file. A file with fewer
    convs than the model's backbone, or of another shape, raises ``ValueError``. Returns
    the names of the filled model parameters (a BatchNorm model's convs have no bias).
    """
    if getattr(model, 'motion', False):
        raise ValueError(f'{path}: a motion model has a 6-channel conv1 (image and frame '
                         'difference); ImageNet AlexNet weights are for 3 channels')
    sources = read_alexnet_convs(path)
    features = getattr(model, 'features', None)
    if features is None:
        raise ValueError(f'{type(model).__name__} has no per-frame AlexNet layers '
                         '(features) to load ImageNet weights into')
    convs = [(n, m) for n, m in features.named_modules() if isinstance(m, nn.Conv2d)]
    if len(sources) < len(convs):
        raise ValueError(f"{path}: {len(sources)} conv layers, the model's backbone has "
                         f'{len(convs)}: not an AlexNet file for this model')
    widths = tuple(int(w.shape[0]) for _, w, _ in sources)
    loaded = []
    with torch.no_grad():
        for (name, conv), (source, weight, bias) in zip(convs, sources):
            if weight.shape[1] != conv.in_channels and conv.in_channels % weight.shape[1] == 0:
                weight = _ungroup(weight, conv.in_channels)
            if weight.shape != conv.weight.shape:
                raise ValueError(
                    f'{path}: {source}.weight has shape {tuple(weight.shape)}, in the model '
                    f'features.{name}.weight is {tuple(conv.weight.shape)}; build the model '
                    f'with the channel widths of the file (its convs: {widths}; '
                    f"torchvision's AlexNet: {TORCHVISION_ALEXNET_CHANNELS})")
            conv.weight.copy_(weight)
            loaded.append(f'features.{name}.weight')
            if bias is not None and conv.bias is not None:
                conv.bias.copy_(bias)
                loaded.append(f'features.{name}.bias')
    return loaded


# ------------------------------------------------ the builders (registry.py lists them)

CONVGRU_DEFAULTS = dict(ALEXNET_DEFAULTS)
# Frame differences as a second input (issue 13): off in the paper's and the fast config.
CONVGRU_DEFAULTS['motion'] = False


def convgru1d_alexnet(**config: Any) -> PitchNet:
    """Table I 1D-ConvGRU AlexNet: conv layer 6, forward ConvGRU layer 7 (streamable)."""
    return ConvGRUAlexNet(recurrent_layers=1, bidirectional=False, **config)


def convgru2d_alexnet(**config: Any) -> PitchNet:
    """Table I 2D-ConvGRU AlexNet: conv layer 6, bi-directional ConvGRU layer 7."""
    return ConvGRUAlexNet(recurrent_layers=1, bidirectional=True, **config)


def convgru2d2_alexnet(**config: Any) -> PitchNet:
    """Table I 2D-2ConvGRU AlexNet: bi-directional ConvGRU layers 6 and 7."""
    return ConvGRUAlexNet(recurrent_layers=2, bidirectional=True, **config)


GRU_DEFAULTS = {key: value for key, value in ALEXNET_DEFAULTS.items()
                if not key.startswith('gru_') and key != 'per_position_bias'}
GRU_DEFAULTS.update(fusion='flat', gru_hidden=1024, gru_layers=2)
GRU_FAST = {**FAST_CONFIG, 'gru_hidden': 128}


def gru_alexnet(**config: Any) -> PitchNet:
    """Table I GRU AlexNet: per-frame AlexNet + FC 4096 x2, 2-layer GRU 1024, flat fusion."""
    return GRUAlexNet(**config)
