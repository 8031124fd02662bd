"""
Replay a rosbag2 recording into the predictor node over DDS and collect its predictions.

This module imports rclpy at its top: it is only imported when DDS is used.

What it does, like ``ros2 bag play --clock`` plus a listener:

- one publisher per recorded topic (the bag's message types, copied field by field
  into rclpy messages), and ``/clock`` carrying each message's recorded time so a node
  started with ``use_sim_time`` runs on the bag's clock;
- before the first message it waits until the node has *matched* the image, skeleton
  and ``/clock`` publishers and the evaluator has matched the node's output topics
  (discovery takes seconds on first contact; never a fixed sleep);
- messages go out at the recorded rate times ``rate`` (``rate=None``: as fast as
  possible, which can make the node drop frames: its ``/diagnostics`` counts them);
- every final prediction (``/pitch/prediction_header`` with frame_id ``final``, paired
  in order with ``/pitch/block_probabilities`` and ``/pitch/predicted_block``) is kept
  with its arrival time, so the delivery latency (frame that completed the 40-frame
  window published -> prediction received) is measured from outside the node.
"""

from __future__ import annotations

from bisect import bisect_left
import contextlib
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Iterable, Optional, Sequence

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from pitch_predictor import topics
from pitch_predictor.evaluation.rosbags_to_rclpy import rclpy_message_class, to_rclpy
from pitch_predictor.evaluation.scoring import ObservedPrediction
from pitch_predictor.kinect import WINDOW
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Float32MultiArray, Header, Int32
from tqdm import tqdm

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
SKELETON_TYPES = ('geometry_msgs/msg/PoseArray', 'visualization_msgs/msg/MarkerArray')
FINAL_FRAME_ID = topics.FINAL_FRAME_ID


class ReplayError(RuntimeError):
    """The replay could not run: the node did not come up, topics never matched, ..."""


@dataclass
class OutputTopics:
    """The node's output topics the evaluator listens to."""

    predicted_block: str = topics.global_name(topics.PREDICTED_BLOCK_TOPIC)
    probabilities: str = topics.global_name(topics.BLOCK_PROBABILITIES_TOPIC)
    header: str = topics.global_name(topics.PREDICTION_HEADER_TOPIC)
    diagnostics: str = topics.DIAGNOSTICS_TOPIC


@dataclass
class ReplayStats:
    """What happened during one replay."""

    messages_published: int = 0
    frames_published: int = 0
    skeletons_published: int = 0
    wall_time_s: float = 0.0
    recorded_duration_s: float = 0.0
    matching_wait_s: float = 0.0
    finals_received: int = 0
    early_received: int = 0
    node_diagnostics: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """Return a JSON-serialisable dict."""
        return dict(self.__dict__)


def _reliable(depth: int) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


class PredictionCollector:
    """Subscriptions to the node's outputs, filled from the executor thread."""

    def __init__(self, node: Node, topics: OutputTopics) -> None:
        self._lock = threading.Lock()
        self.headers: list = []  # (wall time, start stamp ns, frame_id)
        self.probabilities: list = []  # (wall time, tuple of 9)
        self.blocks: list = []  # (wall time, int)
        self.diagnostics: dict = {}
        self.changed = threading.Event()
        qos = _reliable(100)
        self.subscriptions = [
            node.create_subscription(Header, topics.header, self._on_header, qos),
            node.create_subscription(Float32MultiArray, topics.probabilities,
                                     self._on_probabilities, qos),
            node.create_subscription(Int32, topics.predicted_block, self._on_block, qos),
        ]
        node.create_subscription(DiagnosticArray, topics.diagnostics, self._on_diagnostics,
                                 _reliable(10))

    def _on_header(self, msg: Header) -> None:
        stamp = int(msg.stamp.sec) * 1_000_000_000 + int(msg.stamp.nanosec)
        with self._lock:
            self.headers.append((time.perf_counter(), stamp, str(msg.frame_id)))
        self.changed.set()

    def _on_probabilities(self, msg: Float32MultiArray) -> None:
        with self._lock:
            self.probabilities.append((time.perf_counter(), tuple(float(v) for v in msg.data)))
        self.changed.set()

    def _on_block(self, msg: Int32) -> None:
        with self._lock:
            self.blocks.append((time.perf_counter(), int(msg.data)))
        self.changed.set()

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        values = {}
        for status in msg.status:
            for kv in status.values:
                values[kv.key] = kv.value
            level = status.level
            values['status_level'] = ord(level) if isinstance(level, bytes) else int(level)
            values['status_message'] = status.message
        with self._lock:
            self.diagnostics = values

    def all_matched(self) -> bool:
        """Whether every prediction topic has a publisher (the node is up)."""
        return all(sub.get_publisher_count() > 0 for sub in self.subscriptions)

    def final_count(self) -> int:
        """Return how many complete final predictions have arrived."""
        with self._lock:
            finals = sum(1 for h in self.headers if h[2] == FINAL_FRAME_ID)
            return min(finals, len(self.probabilities), len(self.blocks))

    def finals(self, publish_times: Optional[dict] = None,
               frame_stamps: Sequence[int] = ()) -> list[ObservedPrediction]:
        """
        Pair final headers with probabilities and blocks (the node publishes one each).

        ``publish_times`` maps a frame stamp to the wall time it was published;
        ``frame_stamps`` lists published frame stamps in order, to find the frame that
        completed each prediction's window (the ``WINDOW``-th frame from its start).
        """
        with self._lock:
            headers = [h for h in self.headers if h[2] == FINAL_FRAME_ID]
            probs, blocks = list(self.probabilities), list(self.blocks)
        out = []
        for (t_h, start, _), (t_p, p), (t_b, block) in zip(headers, probs, blocks):
            delivery = None
            if publish_times is not None and frame_stamps:
                i = bisect_left(frame_stamps, start)
                if i + WINDOW - 1 < len(frame_stamps):
                    sent = publish_times.get(frame_stamps[i + WINDOW - 1])
                    if sent is not None:
                        delivery = max(t_h, t_p, t_b) - sent
            out.append(ObservedPrediction(start, int(block), p, None, delivery))
        return out

    def early_count(self) -> int:
        """Return how many early-estimate headers have arrived."""
        with self._lock:
            return sum(1 for h in self.headers if h[2] != FINAL_FRAME_ID)


class RosSession:
    """An rclpy context, one evaluator node and an executor spinning in a thread."""

    def __init__(self, name: str = 'pitch_eval') -> None:
        self.context = rclpy.Context()
        rclpy.init(args=[], context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        # The context is shut down under the spinning executor when the session closes.
        with contextlib.suppress(Exception):
            self.executor.spin()

    def close(self) -> None:
        """Stop spinning and shut the context down."""
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2.0)

    def __enter__(self) -> RosSession:
        """Enter the context: the session is already running."""
        return self

    def __exit__(self, *exc) -> None:
        """Close the session."""
        self.close()


def _header_stamp_ns(msg) -> Optional[int]:
    header = getattr(msg, 'header', None)
    if header is None:
        return None
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _counted(diagnostics: dict, key: str) -> int:
    try:
        return int(diagnostics.get(key, -1))
    except ValueError:
        return -1


def _saw_everything(diagnostics: dict, stats: ReplayStats) -> bool:
    """
    Tell whether a node status has counted every frame and skeleton published.

    Both: the last frame is paired (``frames_paired``) only once its skeleton is in, so a
    status sent between the two would be one pair short.
    """
    return (_counted(diagnostics, 'frames_received') >= stats.frames_published
            and _counted(diagnostics, 'skeletons_received') >= stats.skeletons_published)


def _wait_quietly(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > deadline:
            return False
        time.sleep(0.05)
    return True


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str,
               alive: Callable[[], Optional[str]] = lambda: None) -> float:
    """Poll ``condition`` until true; raise ReplayError after ``timeout_s`` or if not alive."""
    t0 = time.perf_counter()
    while not condition():
        problem = alive()
        if problem:
            raise ReplayError(f'{problem} while waiting for {what}')
        if time.perf_counter() - t0 > timeout_s:
            raise ReplayError(f'timed out after {timeout_s:.0f} s waiting for {what}')
        time.sleep(0.02)
    return time.perf_counter() - t0


def replay_recording(messages: Iterable, topics: dict, *, rate: Optional[float] = 1.0,
                     last_start_ns: Optional[int] = None, publish_clock: bool = True,
                     wait_for_clock: bool = True,
                     outputs: Optional[OutputTopics] = None, match_timeout_s: float = 120.0,
                     drain_timeout_s: float = 15.0,
                     alive: Callable[[], Optional[str]] = lambda: None,
                     progress: bool = True) -> tuple[list[ObservedPrediction], ReplayStats]:
    """
    Publish ``messages`` ((topic, stamp_ns, rosbags msg) in order) and collect predictions.

    ``topics`` maps each topic to its message type (``pkg/msg/Name``). With
    ``wait_for_clock`` the node must also subscribe to ``/clock`` (it runs with
    ``use_sim_time``) before the first message goes out. ``alive`` returns
    a reason when the node under test has died (the replay then stops with ReplayError).
    After the last message, waits until a final prediction starting at or after
    ``last_start_ns`` (the last trial's first frame) has arrived, or nothing arrived for
    ``drain_timeout_s``.
    """
    stats = ReplayStats()
    with RosSession() as ros:
        collector = PredictionCollector(ros.node, outputs or OutputTopics())
        publishers = {
            topic: ros.node.create_publisher(rclpy_message_class(msgtype), topic, _reliable(30))
            for topic, msgtype in topics.items()
        }
        clock_pub = ros.node.create_publisher(Clock, '/clock', _reliable(10))
        inputs = [[p for t, p in publishers.items() if topics[t] in kinds]
                  for kinds in (IMAGE_TYPES, SKELETON_TYPES)]
        if not inputs[0]:
            raise ReplayError('the recording has no image topic (sensor_msgs Image or '
                              f'CompressedImage); topics: {sorted(topics)}')

        def matched() -> bool:
            node_inputs = all(any(p.get_subscription_count() > 0 for p in group)
                              for group in inputs if group)
            clock_ok = not (publish_clock and wait_for_clock) or \
                clock_pub.get_subscription_count() > 0
            return node_inputs and clock_ok and collector.all_matched()

        stats.matching_wait_s = wait_until(
            matched, match_timeout_s,
            'the predictor node to subscribe to the image/skeleton'
            + ('/clock' if publish_clock and wait_for_clock else '')
            + ' topics and publish its outputs', alive)

        image_topics = {t for t in topics if topics[t] in IMAGE_TYPES + SKELETON_TYPES}
        frame_topics = {t for t in topics if topics[t] in IMAGE_TYPES}
        publish_times: dict = {}
        frame_stamps: list = []
        wall0 = stamp0 = None
        last_stamp = None
        bar = tqdm(desc='replay', unit='msg', disable=None if progress else True, leave=False)
        for topic, stamp_ns, msg in messages:
            if topic not in publishers:
                continue
            problem = alive()
            if problem:
                raise ReplayError(f'{problem} during the replay')
            if wall0 is None:
                wall0, stamp0 = time.perf_counter(), stamp_ns
            if rate:
                delay = wall0 + (stamp_ns - stamp0) / 1e9 / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            out = to_rclpy(msg)
            if publish_clock and stamp_ns != last_stamp:
                clock_pub.publish(Clock(clock=Time(sec=stamp_ns // 1_000_000_000,
                                                   nanosec=stamp_ns % 1_000_000_000)))
            last_stamp = stamp_ns
            publishers[topic].publish(out)
            stats.messages_published += 1
            bar.update()
            if topic in image_topics:
                header_ns = _header_stamp_ns(out)
                if header_ns is not None:
                    publish_times[header_ns] = time.perf_counter()
                    if topic in frame_topics:
                        stats.frames_published += 1
                        if not frame_stamps or header_ns > frame_stamps[-1]:
                            frame_stamps.append(header_ns)
                    else:
                        stats.skeletons_published += 1
        bar.close()
        if wall0 is not None:
            stats.wall_time_s = time.perf_counter() - wall0
            stats.recorded_duration_s = (last_stamp - stamp0) / 1e9

        def last_pitch_answered() -> bool:
            finals = collector.finals()
            return last_start_ns is not None and bool(finals) and \
                finals[-1].start_stamp_ns >= last_start_ns

        while not last_pitch_answered():
            collector.changed.clear()
            if not collector.changed.wait(drain_timeout_s):
                break
        # The node's counters arrive once per diagnostics period: wait (briefly) for the
        # status that has seen every frame and skeleton, so messages lost on the way show
        # up as such.
        if collector.diagnostics:
            _wait_quietly(lambda: _saw_everything(collector.diagnostics, stats), 3.0)
        predictions = collector.finals(publish_times, frame_stamps)
        stats.finals_received = len(predictions)
        stats.early_received = collector.early_count()
        stats.node_diagnostics = dict(collector.diagnostics)
    return predictions, stats


def listen(*, last_start_ns: Optional[int] = None, duration_s: Optional[float] = None,
           idle_timeout_s: Optional[float] = None, outputs: Optional[OutputTopics] = None,
           progress: bool = True) -> tuple[list[ObservedPrediction], ReplayStats]:
    """
    Collect predictions without publishing (beside an external ``ros2 bag play``).

    Stops when a final prediction starts at or after ``last_start_ns`` (the last
    trial's first frame: the recording is done), after ``duration_s``, after
    ``idle_timeout_s`` without a new prediction (counted from the first one), or on
    Ctrl-C.
    """
    stats = ReplayStats()
    with RosSession('pitch_eval_listener') as ros:
        collector = PredictionCollector(ros.node, outputs or OutputTopics())
        t0 = time.perf_counter()
        bar = tqdm(desc='predictions', unit='pred', disable=None if progress else True,
                   leave=False)
        try:
            while True:
                n = collector.final_count()
                bar.n = n
                bar.refresh()
                if last_start_ns is not None and n and \
                        collector.finals()[-1].start_stamp_ns >= last_start_ns:
                    break
                if duration_s is not None and time.perf_counter() - t0 > duration_s:
                    break
                collector.changed.clear()
                quiet = not collector.changed.wait(idle_timeout_s or 1.0)
                if quiet and idle_timeout_s and n > 0:
                    break
        except KeyboardInterrupt:
            pass
        bar.close()
        predictions = collector.finals()
        stats.wall_time_s = time.perf_counter() - t0
        stats.finals_received = len(predictions)
        stats.early_received = collector.early_count()
        stats.node_diagnostics = dict(collector.diagnostics)
    return predictions, stats


class NodeProcess:
    """
    ``predictor_node`` started as a subprocess with the given ROS arguments.

    Its output goes to ``log_path``. Stopped with SIGINT (then SIGTERM, then SIGKILL).
    """

    def __init__(self, ros_args: Sequence[str], log_path: Path,
                 env: Optional[dict] = None) -> None:
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Started through the entry function so that neither the console script nor an
        # ament index is needed (a source tree works as well as an installed package).
        cmd = [sys.executable, '-c',
               'import sys; from pitch_predictor.predictor_node import main; '
               'sys.exit(main())', '--ros-args', *ros_args]
        self._log = self.log_path.open('wb')
        self.command = cmd
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=dict(os.environ if env is None else env))

    def problem(self) -> Optional[str]:
        """Return why the node is gone (None while it runs)."""
        code = self.process.poll()
        if code is None:
            return None
        return f'predictor_node exited with code {code} (log {self.log_path}):\n' + \
            self.log_tail()

    def log_tail(self, lines: int = 25) -> str:
        """Return the last lines of the node's log."""
        self._log.flush()
        try:
            text = self.log_path.read_text(errors='replace').splitlines()
        except OSError:
            return ''
        return '\n'.join(text[-lines:])

    def stop(self, timeout_s: float = 10.0) -> Optional[int]:
        """Stop the node (SIGINT, then SIGTERM, then SIGKILL); return its exit code."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is not None:
                break
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                continue
        self._log.close()
        return self.process.poll()

    def __enter__(self) -> NodeProcess:
        """Enter the context: the process is already started."""
        return self

    def __exit__(self, *exc) -> None:
        """Stop the node."""
        self.stop()


def node_ros_args(*, params_file: Optional[Path], model_path: Optional[Path],
                  use_sim_time: bool = True, extra: Sequence[str] = (),
                  model_parameter: str = 'model_path') -> list[str]:
    """Return the ``--ros-args`` tail that starts the node as the evaluator needs it."""
    args: list[str] = []
    if params_file is not None:
        args += ['--params-file', str(params_file)]
    if use_sim_time:
        args += ['-p', 'use_sim_time:=true']
    if model_path is not None:
        args += ['-p', f'{model_parameter}:={model_path}']
    for item in extra:
        args += ['-p', item]
    return args


def dump_stats(stats: ReplayStats, path: Path) -> None:
    """Write the replay statistics as JSON."""
    Path(path).write_text(json.dumps(stats.to_json(), indent=2, default=str) + '\n')
