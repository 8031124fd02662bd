"""
Costs of the networks: parameters, forward time per clip, training speed, memory per frame.

Prints, for every registered network at the paper size (224 input) and the fast size
(112 input, ``registry.fast_config``), whatever it takes as input (``input_kind``: 'rgb'
clips, 'joints' sequences, or both for the two-stream 'rgb+joints' networks):

- parameter counts;
- forward time of one test clip (10 frames, batch 1, eval, no autograd), on 2 torch
  threads and on 1 (median and best of several runs; the best is the figure least
  disturbed by other processes on the machine);
- fast training: seconds per epoch of the paper's split (432 clips x 10 frames, batch 16,
  forward + backward + Adam step), extrapolated from a few batches, and the per-frame
  backbone time on one thread (what the node pays per arriving frame);
- training memory per added frame of one ConvGRU layer at 224 input: the bytes of the
  tensors autograd saves for the backward pass (each storage once, parameters excluded),
  measured at two sequence lengths; the difference divided by the added frames is the
  cost per frame. Rows: the paper's comparison (3 -> 64 channels, 3x3, on the 224x224
  frame itself; the paper quotes about 24, 152 and 304 MB), Table I's layer 7
  (384 -> 256 on the 13x13 map of a 224 input) and the whole paper-size networks.

    python bench/model_costs.py            # everything (a few minutes on 2 cores)
    python bench/model_costs.py --quick    # fast sizes and the layer memory rows only
"""

import argparse
import statistics
from typing import Callable, List, Tuple

from machine import machine_line, ratio_line, saved_bytes, time_call
from pitch_predictor.models.convgru import ConvGRU
from pitch_predictor.models.registry import (
    build_model, fast_config, list_models, model_config_defaults)
import torch
from torch import nn
import torch.nn.functional as F

MB = 1e6
CLIP_FRAMES = 10
EPOCH_CLIPS = 432
BATCH = 16


def config_for(name: str, size: str) -> dict:
    """Return the paper-size or fast config of ``name``."""
    return model_config_defaults(name) if size == 'paper' else fast_config(name)


def input_kind(name: str) -> str:
    """Return the ``input_kind`` of network ``name`` (built on the meta device: free)."""
    with torch.device('meta'):
        return build_model(name, **fast_config(name)).input_kind


def count_parameters(name: str, size: str) -> int:
    """Count parameters without allocating them (the model is built on the meta device)."""
    with torch.device('meta'):
        model = build_model(name, **config_for(name, size))
    return sum(p.numel() for p in model.parameters())


def example_input(model: nn.Module, frames: int, batch: int = 1) -> Tuple[torch.Tensor, ...]:
    """
    Return ``model``'s positional inputs for a random batch: ``model(*inputs)``.

    'rgb': (clips,); 'joints': (joint sequences,); 'rgb+joints': (clips, joints) of the
    same frames.
    """
    kind = model.input_kind
    joints = torch.randn(batch, frames, 25, 3)
    if kind == 'joints':
        return (joints,)
    size = model.input_size
    clips = torch.randn(batch, frames, 3, size, size)
    if kind == 'rgb+joints':
        return clips, joints
    if kind != 'rgb':
        raise ValueError(f'{model.name}: unknown input_kind {kind!r}')
    return (clips,)


def timed(fn: Callable[[], object], repeat: int) -> Tuple[float, float]:
    """Return (median, best) wall seconds of ``repeat`` calls after one warm-up call."""
    times = time_call(fn, repeat, warmup=1)
    return statistics.median(times), min(times)


def forward_times(names: List[str], sizes: List[str]) -> None:
    """Print the forward time of one 10-frame test clip per network and size."""
    print('\n## Forward time of one test clip (10 frames, batch 1, eval, no grad)')
    print('(the node runs 1 thread; on a machine with load above its cores the 2-thread '
          'column measures OpenMP threads spinning against the load, not the model)')
    print(f'{"model":20s} {"size":6s} {"2 threads median/best":>24s} '
          f'{"1 thread median/best":>22s}')
    threads = torch.get_num_threads()
    for size in sizes:
        for name in names:
            torch.manual_seed(0)
            model = build_model(name, **config_for(name, size)).eval()
            inputs = example_input(model, CLIP_FRAMES)
            repeat = 3 if size == 'paper' else 10
            row = []
            for count in (2, 1):
                torch.set_num_threads(count)
                with torch.no_grad():
                    median, best = timed(lambda m=model, x=inputs: m(*x), repeat)
                row.append(f'{median * 1e3:9.1f} / {best * 1e3:7.1f} ms')
            torch.set_num_threads(threads)
            print(f'{name:20s} {size:6s} {row[0]:>24s} {row[1]:>22s}')
            del model


def fast_training(names: List[str], batches: int) -> None:
    """Print fast-size seconds per training epoch and per-frame backbone time."""
    print(f'\n## Fast size: one training epoch ({EPOCH_CLIPS} clips x {CLIP_FRAMES} frames, '
          f'batch {BATCH}, forward + backward + Adam) from {batches} timed batches, on 2 '
          'and on 1 torch thread (median / best); per-frame backbone inference on 1 thread')
    steps = -(-EPOCH_CLIPS // BATCH)
    threads = torch.get_num_threads()
    for name in names:
        torch.manual_seed(0)
        model = build_model(name, **fast_config(name))
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-4)
        inputs = example_input(model, CLIP_FRAMES, BATCH)
        labels = torch.randint(0, 9, (BATCH,))

        def step(m=model, o=optimiser, x=inputs, y=labels) -> None:
            o.zero_grad()
            F.cross_entropy(m(*x), y).backward()
            o.step()

        row = []
        for count in (2, 1):
            torch.set_num_threads(count)
            median, best = timed(step, batches)
            row.append(f'{median * steps:6.1f} / {best * steps:5.1f} s')
        backbone = '-'
        # A per-frame backbone: AlexNet models and the two-stream networks' RGB branch
        # (the 3D CNNs' backbone is the identity, a joints model has none).
        if hasattr(model, 'features') or model.input_kind == 'rgb+joints':
            model.eval()
            frame = torch.randn(1, 3, model.input_size, model.input_size)
            with torch.no_grad():
                b_median, b_best = timed(lambda m=model, f=frame: m.backbone(f), 50)
            backbone = f'{b_median * 1e3:.2f} / {b_best * 1e3:.2f} ms'
        torch.set_num_threads(threads)
        print(f'{name:20s} epoch 2 threads {row[0]}, 1 thread {row[1]};  '
              f'backbone/frame {backbone}')


def per_frame_mb(layer: nn.Module, frame_shape: Tuple[int, ...], lengths: Tuple[int, int],
                 sequence: bool = True) -> float:
    """Return MB of saved activations per added frame, from two sequence lengths."""
    params = list(layer.parameters())
    sizes = []
    for steps in lengths:
        x = torch.randn(1, steps, *frame_shape)

        def run(x=x) -> torch.Tensor:
            if sequence:
                return layer(x)
            return layer(x.flatten(0, 1))

        sizes.append(saved_bytes(run, params))
    return (sizes[1] - sizes[0]) / (lengths[1] - lengths[0]) / MB


def memory_per_frame(paper_models: bool) -> None:
    """Print training memory per added frame for single layers and whole networks."""
    print('\n## Training memory per added frame (autograd saved tensors + output, batch 1)')
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.LeakyReLU(0.1))
    rows = [
        ('paper comparison: conv 3x3x64 + leaky ReLU, 3x224x224 frame', conv, (3, 224, 224),
         False, 24),
        ('paper comparison: 1D-ConvGRU 3x3, 3->64, 224x224', ConvGRU(
            3, 64, spatial_size=(224, 224)), (3, 224, 224), True, 152),
        ('paper comparison: 2D-ConvGRU 3x3, 3->64, 224x224', ConvGRU(
            3, 64, bidirectional=True, spatial_size=(224, 224)), (3, 224, 224), True, 304),
        ('Table I layer 7: 1D-ConvGRU 384->256 on 13x13', ConvGRU(
            384, 256, spatial_size=(13, 13)), (384, 13, 13), True, None),
        ('Table I layer 7: 2D-ConvGRU 384->256 on 13x13', ConvGRU(
            384, 256, bidirectional=True, spatial_size=(13, 13)), (384, 13, 13), True, None),
    ]
    results = {}
    for label, layer, shape, sequence, paper in rows:
        lengths = (2, 4) if shape[-1] == 224 else (10, 20)
        value = per_frame_mb(layer, shape, lengths, sequence)
        results[label] = value
        quoted = f'   (paper: about {paper} MB)' if paper else ''
        print(f'{label:62s} {value:8.2f} MB/frame{quoted}')
    if paper_models:
        for name in ('convgru1d_alexnet', 'convgru2d_alexnet', 'convgru2d2_alexnet'):
            torch.manual_seed(0)
            model = build_model(name)
            value = per_frame_mb(model, (3, 224, 224), (2, 4))
            print(f'{"whole network, paper size: " + name:62s} {value:8.2f} MB/frame')
            del model
    one = results['paper comparison: 1D-ConvGRU 3x3, 3->64, 224x224']
    two = results['paper comparison: 2D-ConvGRU 3x3, 3->64, 224x224']
    print(ratio_line('training memory per frame, 2D / 1D ConvGRU layer (224x224, 64 ch)',
                     two / one))


def main() -> None:
    """Measure and print the model costs."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true',
                        help='fast sizes and layer memory only (no paper-size timing)')
    parser.add_argument('--batches', type=int, default=3,
                        help='timed training batches per fast model')
    args = parser.parse_args()
    print(machine_line())
    names = list_models()
    print('\n## Parameters')
    print(f'{"model":20s} {"paper size (224)":>18s} {"fast size (112)":>16s}')
    for name in names:
        print(f'{name:20s} {count_parameters(name, "paper"):18,d} '
              f'{count_parameters(name, "fast"):16,d}')
    kinds = {name: input_kind(name) for name in names}
    rgb = [n for n in names if kinds[n] == 'rgb']
    others = [n for n in names if kinds[n] != 'rgb']  # two-stream and joints models
    forward_times(rgb + others, ['fast'] if args.quick else ['fast', 'paper'])
    fast_training([n for n in rgb if n.endswith('alexnet')] + ['r3d_18'] + others,
                  args.batches)
    memory_per_frame(paper_models=not args.quick)


if __name__ == '__main__':
    main()
