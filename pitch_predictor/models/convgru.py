"""
Convolutional GRU of the paper (Section III-A, equations (1)-(8)).

For t = 1..T, h_0 = 0, ``*`` convolution and ``.`` the Hadamard product::

    z_t = sigmoid(W_zx * x_t + W_zh * h_{t-1} + b_z)          (1)
    r_t = sigmoid(W_rx * x_t + W_rh * h_{t-1} + b_r)          (2)
    o_t = tanh(W_ox * x_t + W_oh * (r_t . h_{t-1}) + b_o)     (3)
    h_t = z_t . h_{t-1} + (1 - z_t) . o_t                     (4)

The paper prints ``z_t . x_t`` in (4); x_t and h_t have different channel counts, so it
is read as h_{t-1} (the standard GRU of Cho et al.). The backward direction runs the same
equations from t = T down to 1 with its own weights; the bi-directional output at t is
(h_t + h^_t) / 2.
"""

from typing import Optional, Sequence, Tuple, Union

import torch
from torch import nn

SpatialSize = Optional[Union[int, Sequence[int]]]


def _pair(value: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(value, int):
        return value, value
    height, width = value
    return int(height), int(width)


class ConvGRUCell(nn.Module):
    """
    One direction of a ConvGRU: equations (1)-(4) for one time step.

    Parameter layout (``C`` input channels, ``K`` hidden channels):

    - ``input_conv.weight`` ``(3K, C, d, d)``: W_zx, W_rx, W_ox stacked in that order
      along the output channels (no bias: the bias is separate, below).
    - ``hidden_conv.weight`` ``(2K, K, k, k)``: W_zh, W_rh stacked.
    - ``candidate_conv.weight`` ``(K, K, k, k)``: W_oh, applied to r_t . h_{t-1}.
    - ``bias`` ``(3K, n_h, n_w)``: b_z, b_r, b_o, one value per channel and spatial
      position of the n_h x n_w hidden map (the paper's n x n bias), when ``spatial_size``
      is given; otherwise ``(3K, 1, 1)``, one value per channel.

    ``d`` = ``kernel_size`` (the paper: 3), ``k`` = ``hidden_kernel_size`` (the paper: 1).
    The input convolution uses ``padding`` 'same' (n = N) or 'valid' (n = N - d + 1),
    stride 1; the hidden convolutions always keep the size ('same').
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3,
                 hidden_kernel_size: int = 1, spatial_size: SpatialSize = None,
                 padding: str = 'same') -> None:
        super().__init__()
        if padding not in ('same', 'valid'):
            raise ValueError(f"ConvGRUCell padding must be 'same' or 'valid', got {padding!r}")
        for name, size in (('kernel_size', kernel_size),
                           ('hidden_kernel_size', hidden_kernel_size)):
            if size % 2 != 1:
                raise ValueError(f'ConvGRUCell {name} must be odd, got {size}')
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.padding = padding
        pad = kernel_size // 2 if padding == 'same' else 0
        hidden_pad = hidden_kernel_size // 2
        self.input_conv = nn.Conv2d(in_channels, 3 * hidden_channels, kernel_size,
                                    padding=pad, bias=False)
        self.hidden_conv = nn.Conv2d(hidden_channels, 2 * hidden_channels,
                                     hidden_kernel_size, padding=hidden_pad, bias=False)
        self.candidate_conv = nn.Conv2d(hidden_channels, hidden_channels,
                                        hidden_kernel_size, padding=hidden_pad, bias=False)
        self.spatial_size = None if spatial_size is None else _pair(spatial_size)
        bias_shape = (3 * hidden_channels,) + (self.spatial_size or (1, 1))
        self.bias = nn.Parameter(torch.zeros(bias_shape))

    def hidden_size(self, height: int, width: int) -> Tuple[int, int]:
        """Return the hidden map size for an input map of ``height`` x ``width``."""
        if self.padding == 'same':
            return height, width
        shrink = self.input_conv.kernel_size[0] - 1
        return height - shrink, width - shrink

    def initial_state(self, batch: int, height: int, width: int,
                      device: Optional[torch.device] = None,
                      dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """Return h_0 = 0 for ``batch`` inputs of ``height`` x ``width``."""
        n_h, n_w = self.hidden_size(height, width)
        return torch.zeros(batch, self.hidden_channels, n_h, n_w, device=device, dtype=dtype)

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        """Return W_x * x + b for any number of frames ``(N, C, H, W) -> (N, 3K, n, n)``."""
        gates = self.input_conv(x)
        if self.spatial_size is not None and tuple(gates.shape[-2:]) != self.spatial_size:
            raise ValueError(
                f'ConvGRU per-position bias is for {self.spatial_size[0]}x'
                f'{self.spatial_size[1]} maps, got {gates.shape[-2]}x{gates.shape[-1]}: '
                'build the network for this input size')
        return gates + self.bias

    def step(self, gates: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Apply equations (1)-(4) given ``input_gates(x_t)`` and h_{t-1}; return h_t."""
        gate_z, gate_r, gate_o = gates.chunk(3, dim=1)
        hidden_z, hidden_r = self.hidden_conv(hidden).chunk(2, dim=1)
        update = torch.sigmoid(gate_z + hidden_z)
        reset = torch.sigmoid(gate_r + hidden_r)
        candidate = torch.tanh(gate_o + self.candidate_conv(reset * hidden))
        return update * hidden + (1.0 - update) * candidate

    def forward(self, x: torch.Tensor, hidden: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One time step: x_t ``(B, C, H, W)`` and h_{t-1} (None: zeros) -> h_t."""
        if hidden is None:
            hidden = self.initial_state(x.shape[0], x.shape[-2], x.shape[-1], x.device,
                                        x.dtype)
        return self.step(self.input_gates(x), hidden)

    def run_gates(self, gates: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """
        Run over precomputed ``input_gates`` of every frame ``(B, T, 3K, n, n)``.

        Returns h_t for every t ``(B, T, K, n, n)``, as :meth:`run` does on the frames:
        W_x * x_t + b does not depend on the state, so a stream computes it once per
        frame (the node caches it) and a decision runs only the hidden convolutions.
        """
        batch, steps = gates.shape[:2]
        hidden = gates.new_zeros(batch, self.hidden_channels, *gates.shape[-2:])
        outputs = [None] * steps
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        for t in order:
            hidden = self.step(gates[:, t], hidden)
            outputs[t] = hidden
        return torch.stack(outputs, dim=1)

    def run(self, x: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """
        Run over a sequence ``(B, T, C, H, W)`` -> h_t for every t ``(B, T, K, n, n)``.

        ``reverse``: run from t = T down to 1 (h_{T+1} = 0); the result is still indexed
        by t, so ``out[:, t]`` is the backward state at frame t.
        """
        batch, steps = x.shape[:2]
        hidden = self.initial_state(batch, x.shape[-2], x.shape[-1], x.device, x.dtype)
        outputs = [None] * steps
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        for t in order:
            # Frame by frame, like streaming: the same kernels run on the same shapes, so
            # one-frame-at-a-time results equal the whole-sequence ones bit for bit.
            hidden = self.step(self.input_gates(x[:, t]), hidden)
            outputs[t] = hidden
        return torch.stack(outputs, dim=1)


class ConvGRU(nn.Module):
    """
    A ConvGRU layer over sequences, forward-only or bi-directional.

    ``forward(x)``: ``(B, T, C, H, W)`` -> ``(B, T, K, n, n)``, the forward states h_t, or
    for a bi-directional layer (h_t + h^_t) / 2 (equations (5)-(8)).
    ``directions(x)`` returns the two directions separately (the fusions need h^_1).
    ``step(x_t, h)`` runs the forward direction one frame at a time (streaming).
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3,
                 hidden_kernel_size: int = 1, bidirectional: bool = False,
                 spatial_size: SpatialSize = None, padding: str = 'same') -> None:
        super().__init__()
        self.bidirectional = bidirectional
        self.hidden_channels = hidden_channels

        def make_cell() -> ConvGRUCell:
            return ConvGRUCell(in_channels, hidden_channels, kernel_size, hidden_kernel_size,
                               spatial_size, padding)

        self.forward_cell = make_cell()
        self.backward_cell = make_cell() if bidirectional else None

    def directions(self, x: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Return (forward states, backward states or None), each ``(B, T, K, n, n)``."""
        if x.dim() != 5:
            raise ValueError(f'ConvGRU expects (B, T, C, H, W), got {tuple(x.shape)}')
        forward_states = self.forward_cell.run(x)
        if self.backward_cell is None:
            return forward_states, None
        return forward_states, self.backward_cell.run(x, reverse=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the per-step outputs ``(B, T, K, n, n)`` (bi: mean of both directions)."""
        return combine_directions(*self.directions(x))

    def frame_gates(self, x: torch.Tensor) -> torch.Tensor:
        """
        Input gates of every direction for frames ``(N, C, H, W) -> (N, D * 3K, n, n)``.

        W_zx, W_rx, W_ox * x_t + b of equations (1)-(3), forward direction first (D = 2
        for a bi-directional layer). They depend on the frame alone: a stream computes
        them once per frame; :meth:`directions_from_gates` runs the rest.
        """
        gates = [self.forward_cell.input_gates(x)]
        if self.backward_cell is not None:
            gates.append(self.backward_cell.input_gates(x))
        return torch.cat(gates, dim=1)

    def directions_from_gates(self, gates: torch.Tensor
                              ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """:meth:`directions` from :meth:`frame_gates` of every frame ``(B, T, D * 3K, n, n)``."""
        width = 3 * self.hidden_channels
        forward_states = self.forward_cell.run_gates(gates[:, :, :width])
        if self.backward_cell is None:
            return forward_states, None
        return forward_states, self.backward_cell.run_gates(gates[:, :, width:], reverse=True)

    def step_gates(self, gates: torch.Tensor, hidden: Optional[torch.Tensor] = None
                   ) -> torch.Tensor:
        """:meth:`step` from the frame's :meth:`frame_gates` ``(B, 3K, n, n)``."""
        if self.bidirectional:
            raise RuntimeError('a bi-directional ConvGRU needs the whole sequence; '
                               'it cannot run one frame at a time')
        if hidden is None:
            hidden = gates.new_zeros(gates.shape[0], self.hidden_channels, *gates.shape[-2:])
        return self.forward_cell.step(gates, hidden)

    def initial_state(self, batch: int, height: int, width: int,
                      device: Optional[torch.device] = None) -> torch.Tensor:
        """Return the zero state for streaming ``batch`` inputs of ``height`` x ``width``."""
        return self.forward_cell.initial_state(batch, height, width, device)

    def step(self, x: torch.Tensor, hidden: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Advance the forward direction by one frame ``(B, C, H, W)``; return h_t."""
        if self.bidirectional:
            raise RuntimeError('a bi-directional ConvGRU needs the whole sequence; '
                               'it cannot run one frame at a time')
        return self.forward_cell(x, hidden)


def combine_directions(forward_states: torch.Tensor,
                       backward_states: Optional[torch.Tensor]) -> torch.Tensor:
    """Return the layer output: the forward states, or (h_t + h^_t) / 2 (bi-directional)."""
    if backward_states is None:
        return forward_states
    return (forward_states + backward_states) / 2.0
