"""
Measure the predictor node: QoS choice, ingest cost, and a 60 s soak at 30 Hz.

Subcommands (each prints a JSON summary and, with ``--out``, writes it)::

    python bench/node_soak.py qos     # best-effort vs reliable, 960x540 bgr8, 2 processes
    python bench/node_soak.py ingest  # PredictorCore cost per frame, 960x540 and 1920x1080
    python bench/node_soak.py latency # decision latency p50/p95 per sampling method
    python bench/node_soak.py soak [--seconds 60] [--backend eager] [--model-name NAME]

``soak`` starts ``predictor_node`` with its default parameters and model (or
``--model``, or a random fast ``--model-name``) and a separate publisher process that
sends 960x540 bgr8 images and 25-joint skeletons at 30 Hz, a synthetic pitch every 3 s.
After ``--seconds`` of load it reads the node's /diagnostics (frames dropped, decision
p50/p95, ingest mean) and sends SIGINT while the publisher still publishes: it prints
the exit code and the time to exit, the issue-15 targets (0 dropped over 60 s, exit 0
in < 1 s after 120 s).
"""

import argparse
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'test'))


def _qos(reliability: str, depth: int):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=(ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                                   else ReliabilityPolicy.BEST_EFFORT))


# ---------------------------------------------------------------- publisher role
def publish_images(args: argparse.Namespace) -> int:
    """Child process: publish ``count`` frames at ``rate`` Hz once a subscriber matched."""
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node('qos_bench_publisher')
    pub = node.create_publisher(Image, args.topic, _qos(args.reliability, 10))
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    pixels = np.random.default_rng(0).integers(
        0, 256, (args.height, args.width, 3), dtype=np.uint8).tobytes()
    msg = Image(height=args.height, width=args.width, encoding='bgr8', step=args.width * 3,
                data=pixels)
    period = 1.0 / args.rate
    start = time.monotonic()
    for k in range(args.count):
        while time.monotonic() < start + k * period:
            time.sleep(0.001)
        msg.header.stamp.sec, msg.header.stamp.nanosec = k, 0
        pub.publish(msg)
    # Let a reliable writer finish resending before the process (and its cache) ends.
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def _stamp_collector(store: list):
    return lambda msg: store.append(msg.header.stamp.sec)


def measure_qos(args: argparse.Namespace) -> dict:
    """Frames received of ``count`` published, per (publisher, subscriber) reliability."""
    import rclpy
    from sensor_msgs.msg import Image

    results = {}
    combos = [('reliable', 'reliable'), ('reliable', 'best_effort'),
              ('best_effort', 'best_effort')]
    for pub_rel, sub_rel in combos:
        for width, height in args.sizes:
            rclpy.init()
            node = rclpy.create_node('qos_bench_subscriber')
            received: list = []
            topic = f'/qos_bench_{os.getpid()}_{pub_rel}_{sub_rel}_{width}'
            node.create_subscription(Image, topic, _stamp_collector(received),
                                     _qos(sub_rel, args.depth))
            proc = subprocess.Popen(
                [sys.executable, __file__, '_publish', '--topic', topic, '--count',
                 str(args.count), '--width', str(width), '--height', str(height),
                 '--reliability', pub_rel, '--rate', str(args.rate)])
            while proc.poll() is None:
                rclpy.spin_once(node, timeout_sec=0.05)
            for _ in range(20):
                rclpy.spin_once(node, timeout_sec=0.05)
            key = f'pub_{pub_rel}/sub_{sub_rel}/{width}x{height}'
            results[key] = {'published': args.count, 'received': len(set(received))}
            print(key, results[key], flush=True)
            node.destroy_node()
            rclpy.shutdown()
    return results


# ------------------------------------------------------------------ ingest cost
def measure_ingest(args: argparse.Namespace) -> dict:
    """Mean/p95 ms per frame of PredictorCore.ingest_frame at two camera sizes."""
    import torch

    from pitch_predictor.runtime.core import PredictorCore
    from runtime_fixtures import make_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or make_checkpoint(Path(tmp) / 'bench.pt', args.model_name)
        core = PredictorCore(path, device='cpu')
        results = {'model': core.model_name, 'torch_threads': torch.get_num_threads()}
        rng = np.random.default_rng(0)
        for width, height in args.sizes:
            frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                      for _ in range(8)]
            times = []
            for k in range(args.frames):
                t0 = time.perf_counter()
                core.ingest_frame(k * 33_333_333, frames[k % len(frames)])
                times.append(time.perf_counter() - t0)
            times = np.asarray(times[5:]) * 1e3
            results[f'{width}x{height}'] = {
                'mean_ms': round(float(times.mean()), 2),
                'p95_ms': round(float(np.percentile(times, 95)), 2)}
            core.reset('bench')
    return results


# ------------------------------------------------------------- decision latency
def measure_latency(args: argparse.Namespace) -> dict:
    """Decision latency p50/p95 (window complete -> probabilities), per sampling method."""
    import torch

    from pitch_predictor.runtime.core import PredictorCore
    from runtime_fixtures import make_checkpoint, synthetic_trial

    if args.threads:
        torch.set_num_threads(args.threads)
    frames, joints = synthetic_trial(width=960, height=540)
    results = {'torch_threads': torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or make_checkpoint(Path(tmp) / 'bench.pt', args.model_name)
        for method in args.methods:
            core = PredictorCore(path, device='cpu')
            core.update(sampling_method=method, early_estimates=False)
            finals = []
            for repeat in range(args.repeats):
                t0 = repeat * 10 * 1_000_000_000
                for k in range(len(frames)):
                    finals += core.ingest(t0 + k * 33_333_333, frames[k], joints[k])
            latency = np.asarray([p.decision_latency_s for p in finals]) * 1e3
            results[f'method_{method}'] = {
                'model': core.model_name, 'decisions': len(finals),
                'p50_ms': round(float(np.percentile(latency, 50)), 1),
                'p95_ms': round(float(np.percentile(latency, 95)), 1)}
            print(method, results[f'method_{method}'], flush=True)
    return results


# --------------------------------------------------------------------- soak test
def soak_publisher(args: argparse.Namespace) -> int:
    """Child process: images + skeletons at 30 Hz until stopped, a pitch every 3 s."""
    import rclpy
    from rclpy._rclpy_pybind11 import RCLError
    import rclpy.executors
    from geometry_msgs.msg import Pose, PoseArray
    from sensor_msgs.msg import Image

    from pitch_predictor.topics import FRAME_PERIOD_NS, FRAME_PERIOD_S
    from pitch_predictor.topics import IMAGE_TOPIC, SKELETON_TOPIC
    from runtime_fixtures import synthetic_trial

    rclpy.init()
    node = rclpy.create_node('soak_publisher')
    qos = _qos('reliable', 10)
    image_pub = node.create_publisher(Image, IMAGE_TOPIC, qos)
    skeleton_pub = node.create_publisher(PoseArray, SKELETON_TOPIC, qos)
    deadline = time.monotonic() + 60
    while (image_pub.get_subscription_count() == 0
           or skeleton_pub.get_subscription_count() == 0) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    frames, joints = synthetic_trial(width=960, height=540, seed=0)
    bgr = [np.ascontiguousarray(f[..., ::-1]).tobytes() for f in frames]
    start = time.monotonic()
    k = 0
    try:
        while rclpy.ok():  # until the runner terminates this process
            wait = start + k * FRAME_PERIOD_S - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            i = k % len(frames)
            stamp_ns = 1_000_000_000 + k * FRAME_PERIOD_NS
            header_stamp = (stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000)
            image = Image(height=540, width=960, encoding='bgr8', step=960 * 3, data=bgr[i])
            image.header.stamp.sec, image.header.stamp.nanosec = header_stamp
            poses = PoseArray()
            poses.header.stamp.sec, poses.header.stamp.nanosec = header_stamp
            for x, y, z in joints[i]:
                pose = Pose()
                pose.position.x, pose.position.y, pose.position.z = (float(x), float(y),
                                                                     float(z))
                poses.poses.append(pose)
            skeleton_pub.publish(poses)
            image_pub.publish(image)
            k += 1
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException, RCLError):
        pass  # SIGTERM from the runner: rclpy shut down under the loop
    return 0


def run_soak(args: argparse.Namespace) -> dict:
    """
    Load the node at 30 Hz for ``seconds``, read its diagnostics, SIGINT it under load.

    The node runs as users run it: its default parameters (one torch thread,
    TorchScript) and the default model unless ``--model``/``--model-name``. Frames
    dropped are the node's own count (stamp gaps in the stream it received, plus final
    decisions thrown away); the publisher goes on publishing while the node stops.
    """
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import Header

    from pitch_predictor.shipped_model import default_model_path
    from runtime_fixtures import make_checkpoint

    tmp = tempfile.TemporaryDirectory()
    model = args.model or (make_checkpoint(Path(tmp.name) / 'soak.pt', args.model_name)
                           if args.model_name else default_model_path())
    node_cmd = [sys.executable, '-m', 'pitch_predictor.predictor_node', '--ros-args',
                '-p', f'model_path:={model}', '-p', 'device:=cpu',
                '-p', f'inference_backend:={args.backend}']
    tree = Path(args.node_tree).resolve() if args.node_tree else ROOT
    node_env = dict(os.environ, PYTHONPATH=str(tree)) if args.node_tree else None
    node_proc = subprocess.Popen(node_cmd, cwd=tree, env=node_env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.STDOUT)
    rclpy.init()
    listener = rclpy.create_node('soak_listener')
    headers, diagnostics = [], {}

    def on_diagnostics(msg):
        for status in msg.status:
            diagnostics.update({kv.key: kv.value for kv in status.values})

    listener.create_subscription(Header, '/pitch/prediction_header',
                                 lambda m: headers.append(m.frame_id), 100)
    listener.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    publisher = subprocess.Popen([sys.executable, __file__, '_soak_publish'])
    deadline = time.monotonic() + 120
    while int(diagnostics.get('frames_received', 0)) == 0 and time.monotonic() < deadline:
        rclpy.spin_once(listener, timeout_sec=0.1)
    loaded_from = time.monotonic()
    load_start = os.getloadavg()[0]
    while time.monotonic() < loaded_from + args.seconds:
        rclpy.spin_once(listener, timeout_sec=0.1)
    seen = dict(diagnostics)  # at most one diagnostics period old
    sent = time.monotonic()
    node_proc.send_signal(signal.SIGINT)
    try:
        node_code = node_proc.wait(30)
    except subprocess.TimeoutExpired:
        node_proc.kill()
        node_code = None
    exit_s = time.monotonic() - sent
    publisher.terminate()
    publisher.wait(10)
    listener.destroy_node()
    rclpy.shutdown()
    tmp.cleanup()
    return {
        'model': seen.get('model'), 'inference_backend': seen.get('inference_backend'),
        'load_seconds': round(time.monotonic() - loaded_from - exit_s, 1),
        'load_average_1min': {'start': round(load_start, 2),
                              'end': round(os.getloadavg()[0], 2)},
        'frames_received_by_node': int(seen.get('frames_received', 0)),
        'frames_dropped': int(seen.get('frames_dropped', 0)),
        'frames_missing_by_stamp': int(seen.get('frames_missing', 0)),
        'resets': {k: v for k, v in seen.items() if k.startswith('resets.')},
        'finals': sum(1 for h in headers if h == 'final'),
        'early_estimates': sum(1 for h in headers if h != 'final'),
        'decision_p50_ms': seen.get('latency_p50_ms'),
        'decision_p95_ms': seen.get('latency_p95_ms'),
        'ingest_mean_ms': seen.get('ingest_mean_ms'),
        'sigint_exit_code': node_code,
        'sigint_exit_s': round(exit_s, 2),
    }


def main() -> int:
    """Parse arguments and run one measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    qos = sub.add_parser('qos')
    qos.add_argument('--count', type=int, default=150)
    qos.add_argument('--rate', type=float, default=30.0)
    qos.add_argument('--depth', type=int, default=10)
    ingest = sub.add_parser('ingest')
    ingest.add_argument('--frames', type=int, default=60)
    ingest.add_argument('--threads', type=int, default=1, help='torch threads (node: 1)')
    latency = sub.add_parser('latency')
    latency.add_argument('--repeats', type=int, default=10)
    latency.add_argument('--threads', type=int, default=1, help='torch threads (node: 1)')
    latency.add_argument('--methods', type=int, nargs='+', default=[1, 2, 5])
    soak = sub.add_parser('soak')
    soak.add_argument('--seconds', type=float, default=60.0)
    soak.add_argument('--backend', default='onnxruntime',
                      choices=('torchscript', 'onnxruntime', 'eager'))
    for p in (ingest, latency):
        p.add_argument('--model', default='')
        p.add_argument('--model-name', default='convgru2d_alexnet')
    soak.add_argument('--model', default='', help='checkpoint (default: the node default)')
    soak.add_argument('--node-tree', default='',
                      help='run the node from this source tree (A/B against a checkout)')
    soak.add_argument('--model-name', default='',
                      help='a random fast model of this name instead (e.g. two_stream_2d)')
    for p in (qos, ingest, latency, soak):
        p.add_argument('--out', type=Path, default=None)
    publisher = sub.add_parser('_publish')
    publisher.add_argument('--topic')
    publisher.add_argument('--count', type=int)
    publisher.add_argument('--width', type=int)
    publisher.add_argument('--height', type=int)
    publisher.add_argument('--rate', type=float)
    publisher.add_argument('--reliability')
    sub.add_parser('_soak_publish')
    args = parser.parse_args()
    args.sizes = [(960, 540), (1920, 1080)]
    if args.command == '_publish':
        return publish_images(args)
    if args.command == '_soak_publish':
        return soak_publisher(args)
    if args.command == 'qos':
        args.sizes = [(960, 540)]
    result = {'qos': measure_qos, 'ingest': measure_ingest, 'latency': measure_latency,
              'soak': run_soak}[
        args.command](args)
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
