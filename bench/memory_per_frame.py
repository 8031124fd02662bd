"""
Memory per added frame against sequence length (the paper's stated limitation).

The paper (Section VI) says that adding one 3x224x224 frame costs about 24 MB for a
plain 3x3x64 conv layer, 152 MB for a 1D-ConvGRU layer and 304 MB for a 2D-ConvGRU
layer of the same size. Here, for the same three layers (3 -> 64 channels, 3x3, on
224x224 frames, batch 1) and for the whole models, the memory that training must hold
per sequence is measured as the bytes autograd saves for the backward pass (every
tensor kept by the graph, each storage counted once, weights excluded), at sequence
lengths T = 5, 10, 20, 40. The slope over T is the memory per added frame.

At run time the node holds no autograd graph: per added frame it keeps only the
frame's cached backbone features (and the decision's transient activations, which do
not grow with the buffer). That is printed against the training cost.
"""

import sys
from typing import Dict, List

from machine import machine_line, ratio_line, saved_bytes
import numpy as np
from pitch_predictor.models.convgru import ConvGRU
import torch
from torch import nn

LENGTHS = (5, 10, 20, 40)  # whole fast models
# Single 224x224 layers: a bi-directional 64-channel ConvGRU keeps ~180 MB per frame, so
# the layer rows stop at 12 frames (the growth is linear; the slope is what counts).
LAYER_LENGTHS = (2, 4, 8, 12)
MB = 1e6


def slope_mb(lengths, values_bytes) -> float:
    """Least-squares MB per added frame."""
    return float(np.polyfit(np.asarray(lengths, float), np.asarray(values_bytes) / MB, 1)[0])


class PerFrameConv(nn.Module):
    """A plain 3x3 conv applied to every frame of a (B, T, C, H, W) sequence."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, T, K, H, W)."""
        return self.conv(x.flatten(0, 1)).unflatten(0, x.shape[:2])


def measure_layer(layer: nn.Module, size: int, channels: int = 3) -> List[int]:
    """Return the saved bytes of one training forward at each sequence length."""
    out = []
    params = list(layer.parameters())
    for t in LAYER_LENGTHS:
        x = torch.randn(1, t, channels, size, size, requires_grad=True)
        out.append(saved_bytes(lambda x=x: layer(x), params))
    return out


def layer_rows() -> Dict[str, float]:
    """Measure the paper's three layer kinds; print a table; return MB per frame."""
    torch.manual_seed(0)
    layers = {
        'conv 3x3x64': PerFrameConv(3, 64),
        '1D-ConvGRU 3x3x64 (forward)': ConvGRU(3, 64, kernel_size=3),
        '2D-ConvGRU 3x3x64 (bi-directional)': ConvGRU(
            3, 64, kernel_size=3, bidirectional=True),
    }
    paper = {'conv 3x3x64': 24, '1D-ConvGRU 3x3x64 (forward)': 152,
             '2D-ConvGRU 3x3x64 (bi-directional)': 304}
    print('\nOne layer on 3x224x224 frames, batch 1, training (autograd-saved tensors):\n')
    print('| layer | ' + ' | '.join(f'T={t} (MB)' for t in LAYER_LENGTHS)
          + ' | MB per added frame | paper (MB) |')
    print('|---|' + '---|' * (len(LAYER_LENGTHS) + 2))
    slopes = {}
    for name, layer in layers.items():
        values = measure_layer(layer, 224)
        slopes[name] = slope_mb(LAYER_LENGTHS, values)
        print(f'| {name} | ' + ' | '.join(f'{v / MB:.0f}' for v in values)
              + f' | {slopes[name]:.1f} | {paper[name]} |')
    return slopes


def model_rows() -> Dict[str, tuple]:
    """Whole networks (random weights): training per frame vs the node's feature cache."""
    try:
        from pitch_predictor.models.registry import build_model, fast_config, model_config_defaults
    except ImportError as exc:
        print(f'\n(whole-model rows skipped: {exc})')
        return {}
    print('\nWhole networks, batch 1: training (autograd-saved tensors) against the node at '
          'run time (one cached backbone feature map per frame, no graph):\n')
    print('| model | config | ' + ' | '.join(f'T={t} (MB)' for t in LENGTHS)
          + ' | training MB per added frame | node cache MB per added frame |')
    print('|---|---|' + '---|' * (len(LENGTHS) + 2))
    runs = [('convgru1d_alexnet', 'fast', fast_config('convgru1d_alexnet')),
            ('convgru2d_alexnet', 'fast', fast_config('convgru2d_alexnet')),
            ('convgru2d_alexnet', 'paper', model_config_defaults('convgru2d_alexnet'))]
    found = {}
    for name, label, config in runs:
        size = int(config.get('input_size', 112))
        try:
            torch.manual_seed(0)
            model = build_model(name, **config)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports, never stops
            print(f'| {name} | {label} | skipped: {exc} |')
            continue
        model.train()
        params = list(model.parameters())
        values = []
        for t in LENGTHS:
            x = torch.randn(1, t, 3, size, size)
            values.append(saved_bytes(lambda x=x, m=model: m(x), params))
        with torch.inference_mode():
            feats = model.backbone(torch.randn(1, 3, size, size))
        cache = feats.numel() * feats.element_size() / MB
        train = slope_mb(LENGTHS, values)
        found[f'{name} ({label}, {size}x{size})'] = (train, cache)
        print(f'| {name} | {label} {size}x{size} | '
              + ' | '.join(f'{v / MB:.0f}' for v in values)
              + f' | {train:.2f} | {cache:.3f} |')
        del model, params
    return found


def main() -> int:
    """Run the measurement and print tables and ratios."""
    torch.set_grad_enabled(True)
    print('# Memory per added frame against sequence length')
    print(machine_line(timed=False))
    slopes = layer_rows()
    conv, gru1, gru2 = slopes.values()
    models = model_rows()
    print()
    print(ratio_line('1D-ConvGRU / conv layer, memory per added 224x224 frame '
                     '(paper 152/24 = 6.33)', gru1 / conv))
    print(ratio_line('2D-ConvGRU / 1D-ConvGRU layer, memory per added frame '
                     '(paper 304/152 = 2.00)', gru2 / gru1))
    for name, (train, cache) in models.items():
        print(ratio_line(f'{name} training / node feature cache, memory per added frame',
                         train / cache))
    return 0


if __name__ == '__main__':
    sys.exit(main())
