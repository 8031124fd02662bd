"""
CPU inference at the node's settings: eager PyTorch, TorchScript, torch.compile, ONNX Runtime.

The two things the node runs: the per-frame backbone (one frame, batch 1, on every
arriving frame) and the decision (``forward_features`` over the Table II test clips
of cached features, batch = number of clips). Every backend runs on one thread, as the
node does (``torch_threads: 1``; ONNX Runtime intra- and inter-op threads 1), on the
same inputs; outputs are checked against eager PyTorch; the time to get it ready
(trace, compile, export + session) is reported apart. The backends take turns call by
call (a change of the machine's load hits all of them); min / median / max per
backend, the load average before and after each workload, and a ratio is marked as
noise when the medians differ by less than the spread of either.
"""

import os
import sys
import tempfile
import time
from typing import Callable, Dict, List

from bench_models import bench_checkpoint
from machine import machine_line, ratio_line
import numpy as np
from pitch_predictor.kinect import WINDOW
from pitch_predictor.models.checkpoint import build_model_from_checkpoint, load_checkpoint
from pitch_predictor.models.sampling import test_clip_indices
import torch
from torch import nn

REPEATS = {'fast': 40, 'paper': 8}


class Decision(nn.Module):
    """``forward_features`` as a module (what export and compile need)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(K, T, C, h, w) cached features -> logits (K, 9)."""
        return self.model.forward_features(feats)


class Backbone(nn.Module):
    """The per-frame backbone as a module."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> features (N, C, h, w)."""
        return self.model.backbone(frames)


def backends(module: nn.Module, example: torch.Tensor, tmp: str, tag: str) -> Dict[str, dict]:
    """Prepare eager, compiled and ONNX Runtime versions; time and check each."""
    import onnxruntime

    out = {}
    with torch.inference_mode():
        reference = module(example)
    out['eager'] = {'ready_s': 0.0, 'run': lambda: _no_grad(module, example), 'diff': 0.0}

    t0 = time.perf_counter()
    try:
        with torch.no_grad():
            traced = torch.jit.trace(module, (example,), check_trace=False)
            result = traced(example)
        out['torchscript'] = {'ready_s': time.perf_counter() - t0,
                              'run': lambda: _no_grad(traced, example),
                              'diff': float((result - reference).abs().max())}
    except Exception as exc:  # noqa: BLE001 - a benchmark reports, never stops
        out['torchscript'] = {'error': f'{type(exc).__name__}: {str(exc)[:200]}'}

    t0 = time.perf_counter()
    try:
        compiled = torch.compile(module)
        with torch.no_grad():
            result = compiled(example)
        out['torch.compile'] = {'ready_s': time.perf_counter() - t0,
                                'run': lambda: _no_grad(compiled, example),
                                'diff': float((result - reference).abs().max())}
    except Exception as exc:  # noqa: BLE001 - a benchmark reports, never stops
        out['torch.compile'] = {'error': f'{type(exc).__name__}: {str(exc)[:200]}'}

    t0 = time.perf_counter()
    path = os.path.join(tmp, f'{tag}.onnx')
    try:
        torch.onnx.export(module, (example,), path, input_names=['x'], output_names=['y'],
                          dynamo=False, opset_version=17)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(path, options,
                                               providers=['CPUExecutionProvider'])
        feed = {'x': example.numpy()}
        result = session.run(None, feed)[0]
        out['onnxruntime'] = {'ready_s': time.perf_counter() - t0,
                              'run': lambda: session.run(None, feed),
                              'diff': float(np.abs(result - reference.numpy()).max())}
    except Exception as exc:  # noqa: BLE001
        out['onnxruntime'] = {'error': f'{type(exc).__name__}: {str(exc)[:200]}'}
    return out


def _no_grad(module: Callable, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module(x)


def interleaved(runs: Dict[str, Callable], repeat: int) -> Dict[str, List[float]]:
    """Call every run once per round, ``repeat`` rounds after two warm-up rounds; ms."""
    times: Dict[str, List[float]] = {name: [] for name in runs}
    for round_ in range(repeat + 2):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            if round_ >= 2:
                times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def main() -> int:
    """Measure and print the backend table and ratios."""
    torch.set_num_threads(1)  # the node's torch_threads default
    print("# CPU inference at the node's settings (1 thread): eager, TorchScript, "
          'torch.compile, ONNX Runtime')
    print(machine_line())
    import onnxruntime
    print(f'onnxruntime {onnxruntime.__version__}')
    print('\n| model | workload | backend | ready (s) | min / median / max ms | '
          'max abs diff vs eager | load before, after |')
    print('|---|---|---|---|---|---|---|')
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in ('fast', 'paper'):
            path, label = bench_checkpoint(tmp, size)
            ckpt = load_checkpoint(path)
            model = build_model_from_checkpoint(ckpt, torch.device('cpu')).eval()
            s = ckpt.preprocess.output_size
            torch.manual_seed(0)
            frame = torch.randn(1, 3, s, s)
            with torch.inference_mode():
                feats = model.backbone(torch.randn(WINDOW, 3, s, s))
            clips = torch.as_tensor(np.stack(test_clip_indices(ckpt.sampling_method)))
            clip_feats = feats[clips].contiguous()
            workloads = (
                ('backbone, 1 frame', Backbone(model).eval(), frame),
                (f'decision, {clip_feats.shape[0]} clips x {clip_feats.shape[1]} frames',
                 Decision(model).eval(), clip_feats),
            )
            for w, (workload, module, example) in enumerate(workloads):
                found = backends(module, example, tmp, f'{size}{w}')
                ready = {b: i for b, i in found.items() if 'error' not in i}
                for backend, info in found.items():
                    if 'error' in info:
                        print(f'| {label} | {workload} | {backend} | failed: {info["error"]} |'
                              ' | | |')
                load_before = os.getloadavg()[0]
                times = interleaved({b: i['run'] for b, i in ready.items()}, REPEATS[size])
                load_after = os.getloadavg()[0]
                eager = times['eager']
                for backend, values in times.items():
                    info = ready[backend]
                    print(f'| {label} | {workload} | {backend} | {info["ready_s"]:.1f} | '
                          f'{min(values):.2f} / {float(np.median(values)):.2f} / '
                          f'{max(values):.2f} | {info["diff"]:.1e} | '
                          f'{load_before:.1f}, {load_after:.1f} |')
                    if backend != 'eager':
                        gap = abs(float(np.median(eager)) - float(np.median(values)))
                        spread = min(max(eager) - min(eager), max(values) - min(values))
                        note = '' if gap > spread else ', noise: medians within the spread'
                        ratios.append((f'{workload.split(",")[0]} median, eager / {backend} '
                                       f'({size} model, 1 thread{note})',
                                       float(np.median(eager)) / float(np.median(values))))
            del model
    print('\n(ratio > 1: the alternative backend is faster than eager PyTorch)\n')
    for what, value in ratios:
        print(ratio_line(what, value))
    return 0


if __name__ == '__main__':
    sys.exit(main())
