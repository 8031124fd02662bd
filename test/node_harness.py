"""
Drive a real ``predictor_node`` process over DDS from a test: inputs, outputs, diagnostics.

Everything waits on events (matched endpoints, received messages), never on fixed sleeps.
"""

from contextlib import contextmanager
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Collection, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SECOND = 1_000_000_000
FRAME_NS = 33_333_333


# In CI a missing ROS 2 or colcon is a broken environment, not a reason to skip.
IN_CI = os.environ.get('CI', '').lower() in ('1', 'true', 'yes')


def require_module(name: str):
    """Import and return module ``name``: skip the test without it, fail in CI."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if IN_CI:
            pytest.fail(f'{name} is required in CI (CI=true) but cannot be imported: {exc}',
                        pytrace=False)
        pytest.skip(f'{name} is not installed', allow_module_level=True)


def require_tool(name: str, search: Optional[str] = None) -> str:
    """Return the path of executable ``name`` (``search``: a PATH): skip without it, fail in CI."""
    path = shutil.which(name, path=search) or shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f'{name} is required in CI (CI=true) but is not on PATH',
                        pytrace=False)
        pytest.skip(f'{name} is not installed')
    return path


def node_command(ros_args: Sequence[str]) -> List[str]:
    """Return the command running the node's entry point here, with ``--ros-args``."""
    return [sys.executable, '-m', 'pitch_predictor.predictor_node', '--ros-args',
            *ros_args]


class Streams:
    """Hand out stream start stamps a minute apart (the node starts each one afresh)."""

    def __init__(self, first_s: int = 100) -> None:
        self.next_s = first_s

    def start(self) -> int:
        """Return a fresh first stamp (ns; sim time: any positive stamps)."""
        self.next_s += 60
        return self.next_s * SECOND


def qhd_trial() -> Tuple[np.ndarray, np.ndarray]:
    """Render a qHD (960x540) pitch, independent of the simulator: (frames, joints)."""
    from runtime_fixtures import synthetic_trial

    return synthetic_trial(width=960, height=540)


def start_node(checkpoint: Path, peer: 'TestPeer', log_path: Path,
               *extra_args: str) -> 'NodeProcess':
    """
    Start the node under test on ``checkpoint`` and wait until ``peer`` sees it up.

    Settings of the DDS tests: CPU, sim time (stamps come from the messages),
    diagnostics every 0.2 s, deep input queues; ``extra_args`` add ``-p name:=value``.
    """
    proc = NodeProcess(node_command([
        '-p', f'model_path:={checkpoint}', '-p', 'device:=cpu', '-p', 'use_sim_time:=true',
        '-p', 'diagnostics_period_s:=0.2', '-p', 'qos_depth:=100',
        # A lost skeleton packet can stall that topic for seconds under load (see README):
        # let frames wait long enough that the comparison never depends on it.
        '-p', 'max_pending_frames:=300', *extra_args]), log_path)
    peer.wait_for_node(proc)
    return proc


@contextmanager
def open_peer() -> Iterator['TestPeer']:
    """Create the test's own DDS participant; close it afterwards."""
    peer = TestPeer()
    try:
        yield peer
    finally:
        peer.close()


class NodeProcess:
    """A ``predictor_node`` subprocess with its combined output in a log file."""

    def __init__(self, command: Sequence[str], log_path: Path) -> None:
        self.log_path = Path(log_path)
        self._log = self.log_path.open('wb')
        self.process = subprocess.Popen(list(command), stdout=self._log,
                                        stderr=subprocess.STDOUT, cwd=ROOT)

    def log(self) -> str:
        """Return the node's output so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors='replace')

    def alive(self) -> bool:
        """Tell whether the process still runs."""
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 20.0) -> Optional[int]:
        """Send ``sig`` and wait for the exit code (kill after the timeout)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
                self._log.close()
                return None
        self._log.close()
        return self.process.returncode


class TestPeer:
    """The test's own rclpy node: publishes the node's inputs, records its outputs."""

    __test__ = False

    def __init__(self, image_topic: str = '/kinect2/qhd/image_color',
                 skeleton_topic: str = '/body_tracking/skeleton', depth: int = 100) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_msgs.msg import Float32MultiArray, Header, Int32

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('node_test_peer', context=self.context)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                         reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, image_topic, qos)
        self.skeleton_pub = self.node.create_publisher(PoseArray, skeleton_topic, qos)
        self.lock = threading.Lock()
        self.headers: List = []
        self.probabilities: List = []
        self.blocks: List = []
        self.early: List = []
        self.diagnostics: Dict[str, str] = {}
        self.status: tuple = (-1, '')  # (level 0 OK, 1 WARN, 2 ERROR; message), latest
        self.subscriptions = [
            self.node.create_subscription(Header, '/pitch/prediction_header',
                                          self._keep(self.headers), qos),
            self.node.create_subscription(Float32MultiArray, '/pitch/block_probabilities',
                                          self._keep(self.probabilities), qos),
            self.node.create_subscription(Int32, '/pitch/predicted_block',
                                          self._keep(self.blocks), qos),
            self.node.create_subscription(Float32MultiArray, '/pitch/early_estimate',
                                          self._keep(self.early), qos),
        ]
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics,
                                      10)
        self.annotated: List = []  # (width, height, encoding, frame_id) of annotated images
        self.node.create_subscription(
            Image, '/pitch/annotated_image',
            lambda m: self.annotated.append((m.width, m.height, m.encoding,
                                             m.header.stamp.sec)), 5)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def _keep(self, store: list) -> Callable:
        def callback(msg):
            with self.lock:
                store.append(msg)
        return callback

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if 'pitch predictor' in status.name:
                with self.lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}
                    self.status = (ord(status.level) if isinstance(status.level, bytes)
                                   else int(status.level), status.message)

    def spin_until(self, predicate: Callable[[], bool], timeout_s: float = 30.0,
                   node: Optional[NodeProcess] = None) -> bool:
        """Spin until ``predicate()`` holds; False on timeout (or when the node died)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            if node is not None and not node.alive():
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()

    def wait_for_node(self, node: NodeProcess, timeout_s: float = 60.0) -> None:
        """Wait until the node subscribes to both inputs and publishes every output."""
        ok = self.spin_until(
            lambda: self.image_pub.get_subscription_count() > 0
            and self.skeleton_pub.get_subscription_count() > 0
            and all(s.get_publisher_count() > 0 for s in self.subscriptions)
            and bool(self.diagnostics), timeout_s, node)
        assert ok, f'node did not come up:\n{node.log()}'

    def counter(self, key: str) -> int:
        """Return the latest value of diagnostics counter ``key`` (0 when absent)."""
        with self.lock:
            return int(float(self.diagnostics.get(key, 0)))

    def wait_counter(self, key: str, at_least: int, node: NodeProcess,
                     timeout_s: float = 20.0) -> int:
        """Wait until diagnostics counter ``key`` reaches ``at_least``; return it."""
        ok = self.spin_until(lambda: self.counter(key) >= at_least, timeout_s, node)
        assert ok, (f'{key} stayed at {self.counter(key)} < {at_least}; diagnostics '
                    f'{self.diagnostics}\n{node.log()[-3000:]}')
        return self.counter(key)

    def finals(self) -> List[tuple]:
        """(start stamp ns, block, probabilities) of each final prediction received."""
        with self.lock:
            headers = [h for h in self.headers if h.frame_id == 'final']
            return [(h.stamp.sec * SECOND + h.stamp.nanosec, b.data, np.array(p.data))
                    for h, b, p in zip(headers, self.blocks, self.probabilities)]

    def image_msg(self, rgb: np.ndarray, stamp_ns: int, encoding: str = 'bgr8'):
        """Return a sensor_msgs/Image of ``rgb`` in ``encoding`` (bgr8 or rgb8)."""
        from sensor_msgs.msg import Image

        pixels = rgb[..., ::-1] if encoding == 'bgr8' else rgb
        height, width = rgb.shape[:2]
        msg = Image(height=height, width=width, encoding=encoding, step=width * 3,
                    data=np.ascontiguousarray(pixels).tobytes())
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), SECOND)
        return msg

    def skeleton_msg(self, joints: np.ndarray, stamp_ns: int):
        """Return a geometry_msgs/PoseArray of the rows of ``joints``."""
        from geometry_msgs.msg import Pose, PoseArray

        msg = PoseArray()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), SECOND)
        for x, y, z in np.asarray(joints, dtype=float):
            pose = Pose()
            pose.position.x, pose.position.y, pose.position.z = x, y, z
            msg.poses.append(pose)
        return msg

    def publish_stream(self, frames: np.ndarray, joints: Optional[np.ndarray],
                       first_stamp_ns: int, period_s: float = 1 / 30,
                       no_skeleton: Collection[int] = (),
                       no_body: Collection[int] = ()) -> List[int]:
        """
        Publish frame k (and its skeleton) with stamp first + k * 33.3 ms, paced.

        Frames in ``no_skeleton`` get no skeleton message, frames in ``no_body`` a
        ``PoseArray`` without poses (the tracker sees no one).
        """
        stamps = []
        start = time.monotonic()
        for k, rgb in enumerate(frames):
            stamp = first_stamp_ns + k * FRAME_NS
            if k in no_body:
                self.skeleton_pub.publish(self.skeleton_msg(np.zeros((0, 3)), stamp))
            elif joints is not None and k not in no_skeleton:
                self.skeleton_pub.publish(self.skeleton_msg(joints[k], stamp))
            self.image_pub.publish(self.image_msg(rgb, stamp))
            stamps.append(stamp)
            while time.monotonic() < start + (k + 1) * period_s:
                self.executor.spin_once(timeout_sec=0.005)
        return stamps

    def set_parameters(self, node_name: str, values: Dict[str, object],
                       timeout_s: float = 20.0) -> list:
        """Call ``/<node>/set_parameters``; return the SetParametersResult list."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        client = self.node.create_client(SetParameters, f'/{node_name}/set_parameters')
        assert self.spin_until(client.service_is_ready, timeout_s), 'no parameter service'
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        future = client.call_async(request)
        assert self.spin_until(future.done, timeout_s), 'set_parameters timed out'
        self.node.destroy_client(client)
        return list(future.result().results)

    def close(self) -> None:
        """Destroy the peer node and its context."""
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
