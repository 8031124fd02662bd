"""
Decision latency: cached per-frame features against recomputing them at decision time.

When a 40-frame window completes, the node runs only the recurrent layers and the head
(``PredictorCore.clip_probabilities``) over backbone features it computed and cached as
each frame arrived. The alternative, a pipeline on pre-cut clips like the paper's,
computes every frame's CNN features at decision time: from the stored crops
(test transform + backbone for all 40 frames), or from the raw camera frames (crop as
well). All three give the same probabilities (checked); only the wait differs. The fast
model (the shipped one when present) and the paper-size model (random weights), CPU,
one torch thread (the node's setting). A two-stream model gets the window's joints
beside its features on every path. A joints-only shipped model (``skeleton_gru``) has
no CNN features to recompute: its decision from the window's joints is timed alone, and
the comparison runs on a random fast RGB model instead. The three paths take turns call
by call; min / median / max per path, the load before and after, and a ratio is marked
as noise when the medians differ by less than the spread of either.
"""

import os
import sys
import tempfile
import time
from typing import Dict, List

from bench_models import bench_checkpoint
from machine import machine_line, ratio_line
import numpy as np
from pitch_predictor.kinect import NUM_JOINTS, WINDOW
from pitch_predictor.models.preprocessing import crop_frames
from pitch_predictor.runtime.core import PredictorCore
import torch

REPEATS = {'fast': 30, 'paper': 8}


def window_joints(rng: np.random.Generator) -> np.ndarray:
    """Return random joints (40, 25, 3) in metres about 2.2 m in front of the camera."""
    joints = rng.normal(0.0, 0.3, (WINDOW, NUM_JOINTS, 3)).astype(np.float32)
    joints[..., 2] += 2.2
    return joints


def measure_joints(core: PredictorCore, repeat: int) -> List[float]:
    """Time a joints-only model's decision from one random window's joints."""
    joints = torch.from_numpy(window_joints(np.random.default_rng(0)))
    times = []
    for round_ in range(repeat + 1):
        t0 = time.perf_counter()
        core.clip_probabilities(joints)
        if round_:
            times.append(time.perf_counter() - t0)
    return times


def measure(core: PredictorCore, repeat: int) -> Dict[str, List[float]]:
    """Time the three decision paths on one random window; check they agree."""
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (WINDOW, 540, 960, 3), dtype=np.uint8)
    joints = window_joints(rng) if core.two_stream else None  # beside the RGB features
    crops = crop_frames(raw, core.preprocess)
    cached = list(core.window_features_from_crops(crops))

    def from_cache() -> np.ndarray:
        return core.clip_probabilities(torch.stack(cached), joints=joints)

    def from_crops() -> np.ndarray:
        return core.clip_probabilities(core.window_features_from_crops(crops), joints=joints)

    def from_raw() -> np.ndarray:
        return core.clip_probabilities(
            core.window_features_from_crops(crop_frames(raw, core.preprocess)), joints=joints)

    reference = from_cache()
    for fn in (from_crops, from_raw):
        diff = float(np.abs(fn() - reference).max())
        if diff > 1e-4:
            raise AssertionError(f'{fn.__name__} disagrees with the cached path by {diff}')
    paths = (('cached', from_cache), ('crops', from_crops), ('raw', from_raw))
    times: Dict[str, List[float]] = {name: [] for name, _ in paths}
    for round_ in range(repeat + 1):
        for name, fn in paths:  # interleaved: a change of load hits every path
            t0 = time.perf_counter()
            fn()
            if round_:
                times[name].append(time.perf_counter() - t0)
    return times


def ms(values: List[float], q: float) -> float:
    """Percentile of seconds, in ms."""
    return float(np.percentile(np.asarray(values) * 1e3, q))


def spread_note(a: List[float], b: List[float]) -> str:
    """Say when two medians differ by less than the spread of either."""
    gap = abs(float(np.median(a)) - float(np.median(b)))
    spread = min(max(a) - min(a), max(b) - min(b))
    return '' if gap > spread else ', noise: medians within the spread'


def main() -> int:
    """Measure and print the latency table and ratios."""
    torch.set_num_threads(1)  # the node's torch_threads default
    print('# Decision latency: cached features vs recomputing CNN features at decision time')
    print(machine_line())
    print('\n| model | sampling | path | min / median / max ms | load before, after |')
    print('|---|---|---|---|---|')
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in ('fast', 'paper'):
            path, label = bench_checkpoint(tmp, size)
            core = PredictorCore(path, device='cpu', notify=lambda key, message: None)
            if core.input_kind == 'joints':
                load = os.getloadavg()[0]
                v = np.asarray(measure_joints(core, REPEATS[size])) * 1e3
                print(f'| {label} | method {core.sampling_method} | decision from the '
                      f'window joints (no CNN features) | {v.min():.1f} / '
                      f'{float(np.median(v)):.1f} / {v.max():.1f} | '
                      f'{load:.1f}, {os.getloadavg()[0]:.1f} |')
                path, label = bench_checkpoint(tmp, size, prefer_shipped=False)
                core = PredictorCore(path, device='cpu', notify=lambda key, message: None)
            load = os.getloadavg()[0]
            times = measure(core, REPEATS[size])
            load_after = os.getloadavg()[0]
            results[size] = times
            names = {'cached': 'cached features (the node)',
                     'crops': 'recompute from stored crops',
                     'raw': 'recompute from 960x540 camera frames'}
            for key, name in names.items():
                v = np.asarray(times[key]) * 1e3
                print(f'| {label} | method {core.sampling_method} | {name} | '
                      f'{v.min():.1f} / {float(np.median(v)):.1f} / {v.max():.1f} | '
                      f'{load:.1f}, {load_after:.1f} |')
            del core
    print()
    for size in ('fast', 'paper'):
        t = results[size]
        cached = ms(t['cached'], 50)
        print(ratio_line(f'decision latency median, recompute from crops / cached ({size} '
                         f'model, 1 thread{spread_note(t["crops"], t["cached"])})',
                         ms(t['crops'], 50) / cached))
        print(ratio_line(f'decision latency median, recompute from camera frames / cached '
                         f'({size} model, 1 thread{spread_note(t["raw"], t["cached"])})',
                         ms(t['raw'], 50) / cached))
    return 0


if __name__ == '__main__':
    sys.exit(main())
