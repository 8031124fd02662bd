"""
Measure the predictor node: QoS choice, ingest cost, and a 60 s soak at 30 Hz.

Subcommands (each prints a JSON summary and, with ``--out``, writes it)::

    python bench/node_soak.py qos     # best-effort vs reliable, 960x540 bgr8, 2 processes
    python bench/node_soak.py ingest  # PredictorCore cost per frame, 960x540 and 1920x1080
    python bench/node_soak.py latency # decision latency p50/p95 per sampling method
    python bench/node_soak.py soak    # node process + a publisher process, 60 s at 30 Hz

``soak`` starts ``predictor_node`` (default: a randomly initialised fast
convgru2d_alexnet checkpoint, or ``--model``) and a separate publisher process that
sends 960x540 bgr8 images and 25-joint skeletons at 30 Hz, with a synthetic pitch every
few seconds so that decisions run during the soak. Frames dropped = frames published
minus frames the node received (from its /diagnostics), plus stamp gaps it counted.
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
    """Child process: images + skeletons at 30 Hz for ``seconds``, pitching repeatedly."""
    import rclpy
    from geometry_msgs.msg import Pose, PoseArray
    from sensor_msgs.msg import Image

    from runtime_fixtures import synthetic_trial

    rclpy.init()
    node = rclpy.create_node('soak_publisher')
    qos = _qos('reliable', 10)
    image_pub = node.create_publisher(Image, '/kinect2/qhd/image_color', qos)
    skeleton_pub = node.create_publisher(PoseArray, '/body_tracking/skeleton', qos)
    deadline = time.monotonic() + 60
    while (image_pub.get_subscription_count() == 0
           or skeleton_pub.get_subscription_count() == 0) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    frames, joints = synthetic_trial(width=960, height=540, seed=0)
    bgr = [np.ascontiguousarray(f[..., ::-1]).tobytes() for f in frames]
    count = int(args.seconds * 30)
    period = 1.0 / 30
    start = time.monotonic()
    late = 0
    for k in range(count):
        wait = start + k * period - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        elif wait < -period:
            late += 1
        i = k % len(frames)
        stamp_ns = 1_000_000_000 + k * 33_333_333
        header_stamp = (stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000)
        image = Image(height=540, width=960, encoding='bgr8', step=960 * 3, data=bgr[i])
        image.header.stamp.sec, image.header.stamp.nanosec = header_stamp
        poses = PoseArray()
        poses.header.stamp.sec, poses.header.stamp.nanosec = header_stamp
        for x, y, z in joints[i]:
            pose = Pose()
            pose.position.x, pose.position.y, pose.position.z = float(x), float(y), float(z)
            poses.poses.append(pose)
        skeleton_pub.publish(poses)
        image_pub.publish(image)
    print(json.dumps({'published': count, 'late': late,
                      'seconds': time.monotonic() - start}), flush=True)
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def run_soak(args: argparse.Namespace) -> dict:
    """Start the node and the publisher; collect predictions and the node's diagnostics."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import Header

    from runtime_fixtures import make_checkpoint

    tmp = tempfile.TemporaryDirectory()
    model = args.model or make_checkpoint(Path(tmp.name) / 'soak.pt', args.model_name)
    node_cmd = [sys.executable, '-m', 'pitch_predictor.predictor_node', '--ros-args',
                '-p', f'model_path:={model}', '-p', 'device:=cpu']
    node_proc = subprocess.Popen(node_cmd, cwd=ROOT)
    rclpy.init()
    listener = rclpy.create_node('soak_listener')
    headers, diagnostics = [], {}

    def on_diagnostics(msg):
        for status in msg.status:
            diagnostics.update({kv.key: kv.value for kv in status.values})

    listener.create_subscription(Header, '/pitch/prediction_header',
                                 lambda m: headers.append(m.frame_id), 100)
    listener.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    publisher = subprocess.Popen(
        [sys.executable, __file__, '_soak_publish', '--seconds', str(args.seconds)],
        stdout=subprocess.PIPE, text=True)
    while publisher.poll() is None:
        rclpy.spin_once(listener, timeout_sec=0.1)
    published = json.loads(publisher.stdout.read().strip().splitlines()[-1])
    end = time.monotonic() + 3 * args.diagnostics_wait
    while time.monotonic() < end:
        rclpy.spin_once(listener, timeout_sec=0.1)
    node_proc.send_signal(signal.SIGINT)
    node_code = node_proc.wait(30)
    listener.destroy_node()
    rclpy.shutdown()
    tmp.cleanup()
    received = int(diagnostics.get('frames_received', 0))
    return {
        'published': published, 'node_exit_code': node_code,
        'frames_received_by_node': received,
        'frames_lost_in_transport': published['published'] - received,
        'frames_missing_by_stamp': int(diagnostics.get('frames_missing', 0)),
        'finals': sum(1 for h in headers if h == 'final'),
        'early_estimates': sum(1 for h in headers if h != 'final'),
        'latency_p50_ms': diagnostics.get('latency_p50_ms'),
        'latency_p95_ms': diagnostics.get('latency_p95_ms'),
        'diagnostics': diagnostics,
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
    ingest.add_argument('--threads', type=int, default=0)
    latency = sub.add_parser('latency')
    latency.add_argument('--repeats', type=int, default=10)
    latency.add_argument('--threads', type=int, default=0)
    latency.add_argument('--methods', type=int, nargs='+', default=[1, 2, 5])
    soak = sub.add_parser('soak')
    soak.add_argument('--seconds', type=float, default=60.0)
    soak.add_argument('--diagnostics-wait', type=float, default=1.0)
    for p in (ingest, latency, soak):
        p.add_argument('--model', default='')
        p.add_argument('--model-name', default='convgru2d_alexnet')
    for p in (qos, ingest, latency, soak):
        p.add_argument('--out', type=Path, default=None)
    publisher = sub.add_parser('_publish')
    publisher.add_argument('--topic')
    publisher.add_argument('--count', type=int)
    publisher.add_argument('--width', type=int)
    publisher.add_argument('--height', type=int)
    publisher.add_argument('--rate', type=float)
    publisher.add_argument('--reliability')
    soak_pub = sub.add_parser('_soak_publish')
    soak_pub.add_argument('--seconds', type=float)
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
