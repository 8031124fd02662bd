"""
CPU inference: eager PyTorch against torch.compile and against ONNX Runtime.

The two things the node runs: the per-frame backbone (one frame, batch 1, on every
arriving frame) and the decision (``forward_features`` over the Table II test clips
of cached features, batch = number of clips). Each backend gets the same inputs; its
outputs are checked against eager PyTorch; the time to get it ready (compile, export +
session) is reported apart from the steady-state latency. Same thread count for all
(torch's default here; ONNX Runtime's intra-op threads set to match), plus eager
PyTorch on one thread.
"""

import os
import sys
import tempfile
import time
from typing import Callable, Dict

from bench_models import bench_checkpoint
from machine import machine_line, ratio_line, time_call
import numpy as np
from pitch_predictor.checkpoint import build_model_from_checkpoint, load_checkpoint
from pitch_predictor.kinect import WINDOW
from pitch_predictor.sampling import test_clip_indices
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
    # On a busy machine torch's OpenMP threads spin waiting for each other, which can
    # make small per-frame operations many times slower: one thread shows that cost.
    out['eager, 1 thread'] = {'ready_s': 0.0, 'run': lambda: _no_grad(module, example),
                              'diff': 0.0, 'threads': 1}

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
        options.intra_op_num_threads = torch.get_num_threads()
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


def main() -> int:
    """Measure and print the backend table and ratios."""
    print('# CPU inference: eager PyTorch vs torch.compile vs ONNX Runtime')
    print(machine_line())
    import onnxruntime
    print(f'onnxruntime {onnxruntime.__version__}')
    print('\n| model | workload | backend | ready (s) | p50 ms | p95 ms | max abs diff vs eager |')
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
                eager = None
                for backend, info in found.items():
                    if 'error' in info:
                        print(f'| {label} | {workload} | {backend} | failed: {info["error"]} |'
                              ' | | |')
                        continue
                    threads = torch.get_num_threads()
                    torch.set_num_threads(info.get('threads', threads))
                    times = np.asarray(time_call(info['run'], REPEATS[size])) * 1e3
                    torch.set_num_threads(threads)
                    p50 = float(np.percentile(times, 50))
                    if backend == 'eager':
                        eager = p50
                    else:
                        ratios.append((f'{workload.split(",")[0]} p50, eager / {backend} '
                                       f'({size} model)', eager / p50))
                    print(f'| {label} | {workload} | {backend} | {info["ready_s"]:.1f} | '
                          f'{p50:.2f} | {float(np.percentile(times, 95)):.2f} | '
                          f'{info["diff"]:.1e} |')
            del model
    print('\n(ratio > 1: the alternative backend is faster than eager PyTorch)\n')
    for what, value in ratios:
        print(ratio_line(what, value))
    return 0


if __name__ == '__main__':
    sys.exit(main())
