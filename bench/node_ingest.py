"""
Node ingest cost per frame: what the node spends on each arriving camera frame.

Per frame, the core views the bgr8 message's pixels, crops them to the model's geometry
and converts the crop to RGB, computes the start detector's image signature and runs
the backbone once (the features are cached for the decision). Measured in-process on
the node's own code path (``PredictorCore.ingest_image_msg`` with
``image_msg_to_pixels``, skeletons paired) at the node's settings (one torch thread,
its default ``inference_backend``; ONNX Runtime and eager alongside), at the Kinect's
qHD (960x540) and full HD (1920x1080) sizes, with the node's default model, a two-stream
``two_stream_2d`` (fast config, random weights: speed does not depend on them) and the
paper-size model. The parts are timed separately on the same frames. A 30 Hz camera
leaves 33.3 ms per frame; the target is a mean <= 3 ms at 960x540.
"""

import array
import os
import sys
import tempfile
import time
from types import SimpleNamespace
from typing import Dict, List

from bench_models import bench_checkpoint
import cv2
from machine import machine_line, ratio_line
import numpy as np
from pitch_predictor.kinect import FPS, NUM_JOINTS
from pitch_predictor.models.checkpoint import save_checkpoint
from pitch_predictor.models.preprocessing import crop_frames, fast_preprocess, test_transform
from pitch_predictor.models.registry import build_model, fast_config
from pitch_predictor.runtime.core import PredictorCore
from pitch_predictor.runtime.messages import image_msg_to_pixels
from pitch_predictor.start_detector import image_signature
import torch

FRAMES = 210
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
    messages = [bgr8_message(f, 0) for f in frames]
    total = []
    core.reset('bench')
    for i in range(FRAMES):
        stamp = (i + 1) * period
        msg = messages[i % len(messages)]
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        core.ingest_joints(stamp, rest)
        t0 = time.perf_counter()
        core.ingest_image_msg(msg, image_msg_to_pixels)
        if i >= 10:  # warm-up
            total.append(time.perf_counter() - t0)
    # The parts, on the same frames (the sum leaves out pairing and the detector step).
    parts = {'view + crop + convert crop': [], 'signature': [], 'transform': [],
             'backbone': []}
    cfg = core.preprocess
    for i in range(100):
        msg = messages[i % len(messages)]
        t0 = time.perf_counter()
        crop = cv2.cvtColor(crop_frames(image_msg_to_pixels(msg).array, cfg)[0],
                            cv2.COLOR_BGR2RGB)
        t1 = time.perf_counter()
        image_signature(crop, core.config.detector)
        t2 = time.perf_counter()
        with torch.inference_mode():
            x = test_transform(crop[None], cfg, core.device)
            t3 = time.perf_counter()
            core.encoder.frame_features(x)
        t4 = time.perf_counter()
        for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            parts[key].append(value)
    out = {key: percentile_ms(values, 50) for key, values in parts.items()}
    out.update(total_mean=float(np.mean(total)) * 1e3, total_p95=percentile_ms(total, 95))
    return out


def two_stream_checkpoint(directory: str) -> str:
    """Save a fast two_stream_2d with random weights (the coming default); return its path."""
    torch.manual_seed(0)
    config = fast_config('two_stream_2d')
    model = build_model('two_stream_2d', **config)
    path = f'{directory}/two_stream_2d_fast_random.pt'
    save_checkpoint(path, model, model_name='two_stream_2d', model_config=model.config,
                    preprocess=fast_preprocess(), sampling_method=2,
                    meta={'bench': 'random init'})
    return path


def main() -> int:
    """Measure and print the ingest table and ratios."""
    torch.set_num_threads(1)  # the node's torch_threads default
    print('# Node ingest cost per frame (node settings: 1 torch thread)')
    print(machine_line())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        print('\n| model | backend | frame | view + crop + convert | signature | transform '
              '| backbone | ingest mean | ingest p95 | share of 33.3 ms | load |')
        print('|---|---|---|---|---|---|---|---|---|---|---|')
        models = [bench_checkpoint(tmp, 'fast'),
                  (two_stream_checkpoint(tmp), 'two_stream_2d fast config, random weights'),
                  bench_checkpoint(tmp, 'paper')]
        for size, (path, label) in zip(('fast', 'two_stream', 'paper'), models):
            cores = {backend: PredictorCore(path, device='cpu', submit=lambda job: None,
                                            notify=lambda key, message: None,
                                            backend=backend)
                     for backend in ('onnxruntime', 'torchscript', 'eager')}
            for width, height in SIZES:
                for backend, core in cores.items():  # alternating: same load for both
                    r = measure(core, width, height)
                    results[size, backend, width] = r
                    print(f'| {label} | {backend} | {width}x{height} | '
                          f'{r["view + crop + convert crop"]:.2f} | {r["signature"]:.2f} | '
                          f'{r["transform"]:.2f} | {r["backbone"]:.2f} | '
                          f'{r["total_mean"]:.2f} | {r["total_p95"]:.2f} | '
                          f'{r["total_mean"] / FRAME_BUDGET_MS:.0%} | '
                          f'{os.getloadavg()[0]:.1f} |', flush=True)
            del cores
    print('\n(ms per frame; parts are medians, timed apart on the same frames; "ingest" = '
          'PredictorCore.ingest_image_msg: view, crop, convert, signature, transform, '
          'backbone, pairing and the detector step)\n')
    fast = results['fast', 'onnxruntime', 960]['total_mean']  # the node's defaults
    print(ratio_line('ingest mean per frame, 1920x1080 / 960x540 (default model)',
                     results['fast', 'onnxruntime', 1920]['total_mean'] / fast))
    print(ratio_line('ingest mean per frame, two_stream_2d / default model (960x540)',
                     results['two_stream', 'onnxruntime', 960]['total_mean'] / fast))
    for backend in ('torchscript', 'eager'):
        print(ratio_line(f'ingest mean per frame, {backend} / onnxruntime (default model, '
                         '960x540)', results['fast', backend, 960]['total_mean'] / fast))
    print(ratio_line('frame period 33.3 ms / ingest mean per frame (default model, '
                     '960x540): real-time headroom', FRAME_BUDGET_MS / fast))
    print(ratio_line('frame period 33.3 ms / ingest mean per frame (paper model, 960x540): '
                     'real-time headroom',
                     FRAME_BUDGET_MS / results['paper', 'onnxruntime', 960]['total_mean']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
