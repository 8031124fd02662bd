"""
Node ingest cost per frame: what the node spends on each arriving camera frame.

Per frame, the node converts the message (bgr8 -> RGB), and the core crops it to the
model's geometry, computes the start detector's image signature and runs the backbone
once (the features are cached for the decision). Measured in-process on the node's own
code (``runtime.messages`` + ``PredictorCore.ingest_frame``, skeletons paired), at the
Kinect's qHD (960x540) and full HD (1920x1080) sizes, with the fast model (the shipped
one when present) and the paper-size model (random weights). A 30 Hz camera leaves
33.3 ms per frame.
"""

import array
import sys
import tempfile
import time
from types import SimpleNamespace
from typing import Dict, List

from bench_models import bench_checkpoint
from machine import machine_line, ratio_line
import numpy as np
from pitch_predictor.kinect import FPS, NUM_JOINTS
from pitch_predictor.preprocessing import crop_frames, test_transform
from pitch_predictor.runtime.core import PredictorCore
from pitch_predictor.runtime.messages import image_msg_to_rgb
from pitch_predictor.start_detector import image_signature
import torch

FRAMES = 70
SIZES = ((960, 540), (1920, 1080))
FRAME_BUDGET_MS = 1000.0 / FPS


def bgr8_message(rgb: np.ndarray, stamp_ns: int) -> SimpleNamespace:
    """Return a duck-typed sensor_msgs/Image as rclpy delivers it (data as array.array)."""
    height, width = rgb.shape[:2]
    stamp = SimpleNamespace(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp), height=height, width=width,
                           encoding='bgr8', is_bigendian=0, step=width * 3,
                           data=array.array('B', rgb[..., ::-1].tobytes()))


def percentile_ms(values: List[float], q: float) -> float:
    """Percentile of seconds, in ms."""
    return float(np.percentile(np.asarray(values) * 1e3, q))


def measure(core: PredictorCore, width: int, height: int) -> Dict[str, float]:
    """Time conversion + ingest over FRAMES frames, and the ingest's parts separately."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(8)]
    rest = rng.normal(0.0, 0.5, (NUM_JOINTS, 3)).astype(np.float32) + [0, 0, 3.0]
    period = int(1e9 / FPS)
    convert, ingest = [], []
    for i in range(FRAMES):
        stamp = (i + 1) * period
        msg = bgr8_message(frames[i % len(frames)], stamp)
        t0 = time.perf_counter()
        rgb = image_msg_to_rgb(msg)
        t1 = time.perf_counter()
        core.ingest_joints(stamp, rest)
        core.ingest_frame(stamp, rgb)
        t2 = time.perf_counter()
        if i >= 10:  # warm-up
            convert.append(t1 - t0)
            ingest.append(t2 - t1)
    parts = {'crop': [], 'signature': [], 'backbone': []}
    cfg = core.preprocess
    for i in range(40):
        rgb = frames[i % len(frames)]
        t0 = time.perf_counter()
        crop = crop_frames(rgb, cfg)[0]
        t1 = time.perf_counter()
        image_signature(crop, core.config.detector)
        t2 = time.perf_counter()
        with torch.inference_mode():
            core.model.backbone(test_transform(crop[None], cfg, core.device))
        t3 = time.perf_counter()
        parts['crop'].append(t1 - t0)
        parts['signature'].append(t2 - t1)
        parts['backbone'].append(t3 - t2)
    total = [c + g for c, g in zip(convert, ingest)]
    return {
        'convert': percentile_ms(convert, 50),
        'crop': percentile_ms(parts['crop'], 50),
        'signature': percentile_ms(parts['signature'], 50),
        'backbone': percentile_ms(parts['backbone'], 50),
        'total_p50': percentile_ms(total, 50),
        'total_p95': percentile_ms(total, 95),
    }


def main() -> int:
    """Measure and print the ingest table and ratios."""
    print('# Node ingest cost per frame')
    print(machine_line())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        print('\n| model | frame | convert | crop | signature | backbone | ingest total p50 '
              '| p95 | share of 33.3 ms |')
        print('|---|---|---|---|---|---|---|---|---|')
        for size in ('fast', 'paper'):
            path, label = bench_checkpoint(tmp, size)
            # Decisions go to the node's worker thread, not the callback: drop them here.
            core = PredictorCore(path, device='cpu', submit=lambda job: None,
                                 notify=lambda key, message: None)
            for width, height in SIZES:
                r = measure(core, width, height)
                results[size, width] = r
                print(f'| {label} | {width}x{height} | {r["convert"]:.2f} | {r["crop"]:.2f} | '
                      f'{r["signature"]:.2f} | {r["backbone"]:.2f} | {r["total_p50"]:.2f} | '
                      f'{r["total_p95"]:.2f} | {r["total_p50"] / FRAME_BUDGET_MS:.0%} |')
            del core
    print('\n(all times in ms per frame; p50 unless marked; "convert" = bgr8 message to RGB '
          'array, "ingest total" = convert + PredictorCore.ingest_frame with pairing and '
          'start detection)\n')
    fast540, fast1080 = results['fast', 960]['total_p50'], results['fast', 1920]['total_p50']
    paper540 = results['paper', 960]['total_p50']
    print(ratio_line('ingest per frame, 1920x1080 / 960x540 (fast model)', fast1080 / fast540))
    print(ratio_line('ingest per frame, paper model / fast model (960x540)',
                     paper540 / fast540))
    print(ratio_line('frame period 33.3 ms / ingest per frame (fast model, 960x540): '
                     'real-time headroom', FRAME_BUDGET_MS / fast540))
    print(ratio_line('frame period 33.3 ms / ingest per frame (paper model, 960x540): '
                     'real-time headroom', FRAME_BUDGET_MS / paper540))
    return 0


if __name__ == '__main__':
    sys.exit(main())
