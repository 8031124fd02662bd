"""
The node's decision latency inside its own threads, per inference backend (A/B/C).

Runs the node's code path without DDS: a :class:`PredictorCore` whose decisions go to
the node's :class:`DecisionWorker` thread, fed from this thread at 30 Hz with 960x540
bgr8 image messages (``array.array`` data, as rclpy delivers them) and skeletons, as the
executor's callbacks do, so decisions compete with ingest for the GIL as in the node.
One torch thread (the node's ``torch_threads`` default) and its default parameters.
Backends alternate round by round (eager, torchscript, onnxruntime, eager, ...) so a change in
the machine's load hits both; each round's load average is printed. Reported per model
and backend over the rounds: min / median / max of the rounds' p95 (and p50) of the
in-node decision latency (newest frame's arrival -> probabilities), and the mean ingest
per frame. Outputs are checked: both backends give the same probabilities (1e-5).

Models: ``default`` (the node's default checkpoint), a shipped file by name (e.g.
``convgru2d_fast.pt``, the paper's RGB-only network) or a registered network (random weights
in its fast config: speed does not depend on them). The default model's final p95 and
ingest are compared with every other model's at the node's backend, in the same run.

    python bench/node_decision.py [--rounds 3] [--pitches 3] [--models default convgru2d_fast.pt]
"""

import argparse
import array
import os
from pathlib import Path
import sys
import tempfile
import threading
import time
from types import SimpleNamespace
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'test'))

from machine import machine_line, ratio_line  # noqa: E402
import numpy as np  # noqa: E402
from pitch_predictor.runtime.core import PredictorCore  # noqa: E402
from pitch_predictor.runtime.decision_worker import DecisionWorker  # noqa: E402
from pitch_predictor.runtime.messages import image_msg_to_pixels  # noqa: E402
from pitch_predictor.runtime.node_params import SPECS  # noqa: E402
from pitch_predictor.shipped_model import default_model_path, shipped_model_path  # noqa: E402
from pitch_predictor.topics import FRAME_PERIOD_NS, FRAME_PERIOD_S  # noqa: E402
from runtime_fixtures import make_checkpoint, synthetic_trial  # noqa: E402
import torch  # noqa: E402

BACKENDS = ('eager', 'torchscript', 'onnxruntime')
NODE_TORCH_THREADS = SPECS['torch_threads'].default  # the node's defaults
NODE_BACKEND = SPECS['inference_backend'].default
DEFAULT_MODELS = ['default', 'convgru2d_fast.pt', 'pose_gru_fast.pt', 'convgru1d_fast.pt',
                  'two_stream_2d']


def bgr8_message(bgr: bytes, width: int, height: int, stamp_ns: int) -> SimpleNamespace:
    """Return a sensor_msgs/Image as rclpy delivers it (data as array.array)."""
    stamp = SimpleNamespace(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp), height=height, width=width,
                           encoding='bgr8', step=width * 3, data=array.array('B', bgr))


def one_round(path: Path, backend: str, pitches: int, trial) -> Dict[str, object]:
    """Feed ``pitches`` pitches at 30 Hz; return latencies, ingest times, probabilities."""
    frames, joints = trial
    height, width = frames.shape[1:3]
    bgr = [np.ascontiguousarray(f[..., ::-1]).tobytes() for f in frames]
    predictions: List = []
    lock = threading.Lock()

    def deliver(prediction) -> None:
        with lock:
            predictions.append(prediction)

    jobs: List = []  # the worker, once it exists (the node wires them the same way)
    core = PredictorCore(path, device='cpu', backend=backend,
                         submit=lambda job: jobs[0].submit(job),
                         notify=lambda key, message: None)
    worker = DecisionWorker(core.decide, deliver, lambda exc: print('error', exc))
    jobs.append(worker)
    ingest = []
    load = os.getloadavg()[0]
    start = time.monotonic()
    k = 0
    for pitch in range(pitches):
        first = (pitch + 1) * 60 * 1_000_000_000  # a minute apart: the stream restarts
        for i in range(len(frames)):
            stamp = first + i * FRAME_PERIOD_NS
            msg = bgr8_message(bgr[i], width, height, stamp)
            t0 = time.perf_counter()
            core.ingest_joints(stamp, joints[i])
            core.ingest_image_msg(msg, image_msg_to_pixels)
            ingest.append(time.perf_counter() - t0)
            k += 1
            wait = start + k * FRAME_PERIOD_S - time.monotonic()
            if wait > 0:
                time.sleep(wait)
    deadline = time.monotonic() + 10
    while worker.busy and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    finals = [p for p in predictions if not p.early]
    early = [p for p in predictions if p.early]
    return {
        'final_ms': [p.decision_latency_s * 1e3 for p in finals],
        'early_ms': [p.decision_latency_s * 1e3 for p in early],
        'ingest_ms': [t * 1e3 for t in ingest],
        'probabilities': [p.probabilities for p in finals],
        'load': load, 'superseded': worker.snapshot(),
    }


def _mmm(values: List[float]) -> str:
    if not values:
        return '-'
    return f'{min(values):.1f} / {float(np.median(values)):.1f} / {max(values):.1f}'


def models(names: List[str], tmp: Path) -> List[tuple]:
    """Checkpoints to measure: the node's default, shipped files, random fast variants."""
    out = []
    for name in names:
        if name == 'default':
            out.append((f'default model ({default_model_path().name})', default_model_path()))
        elif name.endswith('.pt'):
            path = shipped_model_path(name)
            if not path.is_file():
                raise SystemExit(f'{name}: not a shipped model file ({path})')
            out.append((f'shipped {name}', path))
        else:
            path = make_checkpoint(tmp / f'{name}.pt', name)
            out.append((f'{name} fast config, random weights', path))
    return out


def main() -> int:
    """Measure and print the A/B table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--pitches', type=int, default=3)
    parser.add_argument('--backends', nargs='+', default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument('--models', nargs='+',
                        default=DEFAULT_MODELS)
    args = parser.parse_args()
    torch.set_num_threads(NODE_TORCH_THREADS)
    print("# The node's decision latency in its threads: eager vs TorchScript (A/B)")
    print(machine_line())
    trial = synthetic_trial(width=960, height=540)
    print(f'\n{args.pitches} pitches per round at 30 Hz (960x540 bgr8), {args.rounds} '
          'rounds per backend, alternating; min / median / max over rounds\n')
    print('| model | backend | round load (1 min) | final p50 ms | final p95 ms '
          '| early p95 ms | ingest mean ms | finals |')
    print('|---|---|---|---|---|---|---|---|')
    summary = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in models(args.models, Path(tmp)):
            backends = ['eager'] + [b for b in args.backends if b != 'eager']
            rounds: Dict[str, List[dict]] = {b: [] for b in backends}
            for _ in range(args.rounds):
                for backend in backends:
                    rounds[backend].append(one_round(path, backend, args.pitches, trial))
            reference = rounds['eager'][0]['probabilities']
            for backend in backends:
                for r in rounds[backend]:
                    for a, b in zip(reference, r['probabilities']):
                        diff = float(np.abs(a - b).max())
                        if diff > 1e-5:
                            raise AssertionError(f'{label} {backend}: probabilities differ '
                                                 f'by {diff}')
                rs = rounds[backend]
                p50 = [float(np.percentile(r['final_ms'], 50)) for r in rs if r['final_ms']]
                p95 = [float(np.percentile(r['final_ms'], 95)) for r in rs if r['final_ms']]
                e95 = [float(np.percentile(r['early_ms'], 95)) for r in rs if r['early_ms']]
                ingest = [float(np.mean(r['ingest_ms'])) for r in rs]
                summary[label, backend] = (p95, ingest)
                print(f'| {label} | {backend} | {_mmm([r["load"] for r in rs])} | '
                      f'{_mmm(p50)} | {_mmm(p95)} | {_mmm(e95)} | {_mmm(ingest)} | '
                      f'{sum(len(r["final_ms"]) for r in rs)} |', flush=True)
    print('\n(latency: newest frame of the decision arrives in the core -> probabilities; '
          'ingest: skeleton + image message -> features cached, per frame)\n')
    for (label, backend), (p95, _) in summary.items():
        eager = summary[label, 'eager'][0]
        if backend == 'eager' or not eager or not p95:
            continue
        spread = min(max(eager) - min(eager), max(p95) - min(p95))
        gap = abs(float(np.median(eager)) - float(np.median(p95)))
        note = '' if gap > spread else " (within the rounds' spread: noise)"
        print(ratio_line(f'final decision p95, eager / {backend} ({label}){note}',
                         float(np.median(eager)) / float(np.median(p95))))
    compare_with_default(summary)
    return 0


def compare_with_default(summary: Dict[tuple, tuple], backend: str = NODE_BACKEND) -> None:
    """Print the default model's final p95 and ingest over each other model's (one run)."""
    default = [key for key in summary if key[0].startswith('default model') and
               key[1] == backend]
    if not default:
        return
    base_p95, base_ingest = summary[default[0]]
    for (label, other_backend), (p95, ingest) in summary.items():
        if other_backend != backend or (label, other_backend) == default[0] or not p95 \
                or not base_p95:
            continue
        for what, mine, theirs in (('final decision p95', base_p95, p95),
                                   ('ingest mean per frame', base_ingest, ingest)):
            spread = max(max(mine) - min(mine), max(theirs) - min(theirs))
            gap = abs(float(np.median(mine)) - float(np.median(theirs)))
            note = " (within the rounds' spread: noise)" if gap <= spread else ''
            print(ratio_line(f'{what}, default / {label} ({backend}){note}',
                             float(np.median(mine)) / float(np.median(theirs))))


if __name__ == '__main__':
    sys.exit(main())
