"""
ROS 2 node ``pitch_predictor``: live pitch outcome prediction from Kinect topics.

A wiring diagram only; the work happens in :mod:`pitch_predictor.runtime`.

In:  ``/kinect2/qhd/image_color`` (sensor_msgs/Image; ``.../compressed`` with
     ``image_transport: compressed``), ``/body_tracking/skeleton`` (PoseArray or, with
     ``skeleton_type: marker_array``, MarkerArray).
Out: ``/pitch/predicted_block`` (Int32), ``/pitch/block_probabilities``
     (Float32MultiArray, 9), ``/pitch/prediction_header`` (Header: stamp = start frame,
     frame_id 'final' or 'early:<fraction>', see pitch_predictor.topics), ``/pitch/early_estimate``
     (Float32MultiArray: fraction, 9 probabilities), ``/diagnostics``,
     ``/pitch/annotated_image`` (when ``publish_annotated_image`` is true).

Subscription callbacks only convert and ingest (crop, backbone features); decisions run
on a :class:`DecisionWorker` thread, which publishes the results. One single-threaded
executor runs every callback (the core is fed from one thread; it is not thread-safe).
A publisher whose QoS cannot match an input subscription (a best-effort camera driver
against the default reliable subscription) is reported: a throttled warning naming the
topic and the fix, a counter and WARN in ``/diagnostics``. With a model that takes
joints (two-stream RGB + joints, or joints-only), a window with too little of the
skeleton tracked is not published (``windows_skipped_no_skeleton``, WARN in
``/diagnostics``; docs/node.md, "Skeleton gaps").
"""

from collections import Counter
import ctypes
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseArray
from pitch_predictor import topics
from pitch_predictor.runtime import messages
from pitch_predictor.runtime import node_params
from pitch_predictor.runtime.node_params import ParameterError, ParamSpec
from rcl_interfaces.msg import (
    FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult)
import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import QoSRequestedIncompatibleQoSInfo, SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    HistoryPolicy, qos_policy_name_from_kind, QoSProfile, ReliabilityPolicy)
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float32MultiArray, Header, Int32
from visualization_msgs.msg import MarkerArray

EXIT_BAD_PARAMETER = 2
EXIT_MODEL_ERROR = 3


class StartupError(RuntimeError):
    """The node cannot start: bad parameters, missing or corrupt model, bad device."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    constraints = spec.constraints
    descriptor = ParameterDescriptor(
        description=spec.description, read_only=spec.read_only,
        additional_constraints=constraints)
    if spec.minimum is not None and isinstance(spec.default, float):
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(spec.minimum), to_value=float(spec.maximum), step=0.0)]
    elif spec.minimum is not None:
        descriptor.integer_range = [IntegerRange(
            from_value=int(spec.minimum), to_value=int(spec.maximum), step=1)]
    return descriptor


def _stamp(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


class PredictorNode(Node):
    """Subscribe to RGB and skeleton, publish the predicted block (see module docstring)."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(node_params.NODE_NAME, **node_kwargs)
        self._last_log: Dict[str, float] = {}
        self.qos_events: Counter = Counter()  # incompatible publishers, per input
        self.values = self._declare_parameters()
        settings = node_params.NodeSettings(self.values)

        # Imported here: parameter errors are reported before torch takes seconds to load.
        from pitch_predictor.runtime.decision_worker import DecisionWorker
        self.core = self._load_core(settings)
        self.worker = DecisionWorker(self.core.decide, self._publish_prediction,
                                     self._on_decision_error)
        self._annotate = self.values['publish_annotated_image']

        reliability = (ReliabilityPolicy.RELIABLE if self.values['qos_reliability'] == 'reliable'
                       else ReliabilityPolicy.BEST_EFFORT)
        input_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST,
                               depth=self.values['qos_depth'], reliability=reliability)
        output_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                                reliability=ReliabilityPolicy.RELIABLE)
        image_type, on_image = ((CompressedImage, self._on_compressed_image)
                                if settings.compressed else (Image, self._on_image))
        image_sub = self.create_subscription(
            image_type, settings.image_topic.lstrip('/'), on_image, input_qos,
            event_callbacks=self._qos_callbacks('images'))
        skeleton_type = MarkerArray if settings.skeleton_type == 'marker_array' else PoseArray
        self._to_joints = (messages.marker_array_to_joints if skeleton_type is MarkerArray
                           else messages.pose_array_to_joints)
        skeleton_sub = self.create_subscription(
            skeleton_type, settings.skeleton_topic.lstrip('/'), self._on_skeleton, input_qos,
            event_callbacks=self._qos_callbacks('skeletons'))
        self._input_topics = {'images': image_sub.topic_name,
                              'skeletons': skeleton_sub.topic_name}

        self.block_pub = self.create_publisher(Int32, topics.PREDICTED_BLOCK_TOPIC,
                                               output_qos)
        self.probabilities_pub = self.create_publisher(
            Float32MultiArray, topics.BLOCK_PROBABILITIES_TOPIC, output_qos)
        self.header_pub = self.create_publisher(Header, topics.PREDICTION_HEADER_TOPIC,
                                                output_qos)
        self.early_pub = self.create_publisher(
            Float32MultiArray, topics.EARLY_ESTIMATE_TOPIC, output_qos)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray,
                                                     topics.DIAGNOSTICS_TOPIC, 10)
        self.annotated_pub = self.create_publisher(Image, topics.ANNOTATED_IMAGE_TOPIC, 2)

        # Wall (steady) time: under use_sim_time without /clock, diagnostics keep coming.
        self.create_timer(self.values['diagnostics_period_s'], self._publish_diagnostics,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(
            f'ready: model {self.core.model_name} ({self.core.checkpoint.path}, input '
            f'{self.core.input_kind}) on {self.core.device}, sampling method '
            f'{self.core.sampling_method}, {self.core.backend}, images '
            f'{image_sub.topic_name}, skeletons {skeleton_sub.topic_name} '
            f'({settings.skeleton_type}), QoS {self.values["qos_reliability"]} '
            f'depth {self.values["qos_depth"]}')

    # ------------------------------------------------------------------ set-up
    def _declare_parameters(self) -> Dict[str, Any]:
        values = {}
        for spec in node_params.ALL_PARAMETERS:
            try:
                parameter = self.declare_parameter(spec.name, spec.default, _descriptor(spec))
            except Exception as exc:  # rclpy: out of range or wrong type in the overrides
                raise StartupError(f'parameter {spec.name!r}: {exc}',
                                   EXIT_BAD_PARAMETER) from None
            values[spec.name] = parameter.value
        try:
            return node_params.check_values(values)
        except ParameterError as exc:
            raise StartupError(str(exc), EXIT_BAD_PARAMETER) from None

    def _load_core(self, settings: node_params.NodeSettings) -> Any:
        import torch

        from pitch_predictor.models.checkpoint import CheckpointError
        from pitch_predictor.models.device import DeviceError
        from pitch_predictor.runtime.core import CoreConfigError, PredictorCore
        from pitch_predictor.shipped_model import default_model_path

        if self.values['torch_threads'] > 0:
            torch.set_num_threads(self.values['torch_threads'])
        path = settings.model_path or str(default_model_path())
        try:
            core_config = settings.core
            core_config.validate()
        except ValueError as exc:
            raise StartupError(f'invalid settings: {exc}', EXIT_BAD_PARAMETER) from None
        try:
            return PredictorCore(path, core_config, device=settings.device,
                                 submit=self._submit_decision, notify=self._log_throttled,
                                 backend=settings.inference_backend)
        except (CheckpointError, DeviceError, CoreConfigError) as exc:
            hint = '' if settings.model_path else (
                ' (model_path is empty, so the shipped model was used: set model_path '
                'to a checkpoint, or train the shipped one as the README says)')
            raise StartupError(f'cannot load the model: {exc}{hint}',
                               EXIT_MODEL_ERROR) from None

    # --------------------------------------------------------------- callbacks
    def _submit_decision(self, job: Any) -> None:
        self.worker.submit(job)

    def _on_image(self, msg: Image) -> None:
        self._ingest_frame(msg, messages.image_msg_to_pixels)

    def _on_compressed_image(self, msg: CompressedImage) -> None:
        self._ingest_frame(msg, messages.compressed_msg_to_pixels)

    def _ingest_frame(self, msg: Any, to_pixels: Callable[[Any], Any]) -> None:
        taken, _ = self.core.ingest_image_msg(msg, to_pixels)
        if taken and self._annotate:
            self._publish_annotated(msg.header, to_pixels(msg).rgb())

    def _on_skeleton(self, msg: Any) -> None:
        self.core.ingest_skeleton_msg(msg, self._to_joints)

    def _on_set_parameters(self, parameters: List[Parameter]) -> SetParametersResult:
        changes = {}
        try:
            for parameter in parameters:
                if parameter.name in node_params.SPECS:
                    changes[parameter.name] = node_params.check_value(
                        parameter.name, parameter.value)
            if changes:
                new_values = {**self.values, **changes}
                self.core.configure(node_params.core_config_from(new_values))
                self.values = new_values
                self._annotate = new_values['publish_annotated_image']
        except (ParameterError, ValueError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if changes:
            self.get_logger().info(f'parameters changed: {changes}')
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------- outputs
    def _publish_prediction(self, prediction: Any) -> None:
        probabilities = [float(p) for p in prediction.probabilities]
        header = Header(stamp=_stamp(prediction.start_stamp_ns))
        if prediction.early:
            header.frame_id = topics.early_frame_id(prediction.fraction_seen)
            self.early_pub.publish(Float32MultiArray(
                data=[float(prediction.fraction_seen)] + probabilities))
            self.header_pub.publish(header)
            return
        header.frame_id = topics.FINAL_FRAME_ID
        self.probabilities_pub.publish(Float32MultiArray(data=probabilities))
        self.block_pub.publish(Int32(data=int(prediction.block)))
        self.header_pub.publish(header)
        self.get_logger().info(
            f'pitch starting at {prediction.start_stamp_ns / 1e9:.3f} s: block '
            f'{prediction.block} (p={max(probabilities):.2f}, '
            f'{prediction.decision_latency_s * 1e3:.0f} ms)')

    def _publish_annotated(self, header: Header, rgb: Any) -> None:
        from pitch_predictor.runtime.annotate import annotate_frame

        last = self.core.last_prediction
        label = '' if last is None else (
            f'early {last.fraction_seen:.0%}' if last.early else f'block {last.block}')
        canvas = annotate_frame(
            rgb, joints=self.core.last_joints, phase=self.core.phase,
            probabilities=None if last is None else last.probabilities, label=label,
            window_fill=self.core.window_fill)
        height, width, encoding, step, data = messages.rgb_to_image_fields(canvas, 'rgb8')
        self.annotated_pub.publish(Image(header=header, height=height, width=width,
                                         encoding=encoding, step=step, data=data))

    def _publish_diagnostics(self) -> None:
        try:
            self.diagnostics_pub.publish(self._diagnostics())
        except Exception as exc:  # a reporting bug must not stop the predictions
            self._log_throttled('diagnostics_failed', f'diagnostics failed: {exc!r}')

    def _diagnostics(self) -> DiagnosticArray:
        core = self.core
        counters = {**core.snapshot(), **{f'decisions.{k}': v
                                          for k, v in self.worker.snapshot().items()}}
        rejected = sum(v for k, v in counters.items() if '_rejected.' in k)
        dropped = counters.get('frames_missing', 0) + counters.get(
            'decisions.superseded_final', 0)
        skipped = counters.get('windows_skipped_no_skeleton', 0)
        counters.update({f'qos_incompatible.{k}': v for k, v in self.qos_events.items()})
        incompatible = sum(self.qos_events.values())
        latency = core.latency_percentiles()
        values = {
            'frames_received': counters.get('frames_received', 0),
            'frames_paired': counters.get('frames_paired', 0),
            'frames_rejected': rejected,
            'frames_dropped': dropped,
            'buffer_fill': f'{len(core.buffer)}/{core.buffer.capacity}',
            'phase': core.phase,
            'window_fill': f'{core.window_fill:.2f}',
            'latency_last_ms': f'{latency["last"] * 1e3:.1f}',
            'latency_p50_ms': f'{latency["p50"] * 1e3:.1f}',
            'latency_p95_ms': f'{latency["p95"] * 1e3:.1f}',
            'ingest_mean_ms': f'{core.stats.ingest_mean_ms():.2f}',
            'device': str(core.device),
            'model': core.model_name,
            'input_kind': core.input_kind,
            'sampling_method': core.sampling_method,
            'inference_backend': core.backend,
            'qos_incompatible': incompatible,
            # The current pitcher's row offsets (top/bottom; 0/0: none), see docs/node.md.
            'pitcher_row_offset': f"{self.values['pitcher_row_offset_top']:g}/"
                                  f"{self.values['pitcher_row_offset_bottom']:g}",
        }
        if core.takes_joints:
            values['windows_skipped_no_skeleton'] = skipped
            values['decisions_with_filled_skeleton'] = counters.get(
                'decisions_with_filled_skeleton', 0)
        values.update(sorted(counters.items()))
        failed = counters.get('decisions.failed', 0)
        level = DiagnosticStatus.ERROR if failed else (
            DiagnosticStatus.WARN if rejected or dropped or skipped or incompatible
            else DiagnosticStatus.OK)
        problems = ([f'{rejected} inputs rejected, {dropped} frames dropped']
                    if rejected or dropped else [])
        if skipped:
            problems.append(f'{skipped} windows skipped: skeleton missing')
        for kind, count in sorted(self.qos_events.items()):
            problems.append(f'{count} publishers on {self._input_topics[kind]} with '
                            'incompatible QoS (see qos_reliability)')
        message = 'decisions failing' if failed else '; '.join(problems) or 'running'
        status = DiagnosticStatus(
            level=level, name=f'{self.get_name()}: pitch predictor', message=message,
            hardware_id=str(core.device),
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        return array

    # ------------------------------------------------------------------ errors
    def _qos_callbacks(self, kind: str) -> SubscriptionEventCallbacks:
        def on_incompatible(info: QoSRequestedIncompatibleQoSInfo) -> None:
            self.qos_events[kind] += max(1, int(info.total_count_change))
            policy = qos_policy_name_from_kind(info.last_policy_kind)
            fix = ('the publisher is best effort: set qos_reliability: best_effort (and '
                   'expect lost fragments of large raw images; compressed images help)'
                   if policy == 'RELIABILITY' else "make the publisher's QoS match")
            self._log_throttled(f'qos_incompatible.{kind}', (
                f'a publisher on {self._input_topics[kind]} has incompatible QoS '
                f'({policy}): nothing arrives from it; {fix}'))
        return SubscriptionEventCallbacks(incompatible_qos=on_incompatible)

    def _log_throttled(self, key: str, message: str) -> None:
        now = time.monotonic()
        if now - self._last_log.get(key, -1e9) >= self.values['log_throttle_s']:
            self._last_log[key] = now
            self.get_logger().warning(message)

    def _on_decision_error(self, exc: BaseException) -> None:
        self._log_throttled('decision_failed', f'decision failed: {exc!r}')

    def destroy_node(self) -> None:
        """Stop the decision worker, then destroy the node."""
        worker: Optional[Any] = getattr(self, 'worker', None)
        if worker is not None:
            worker.stop()
        super().destroy_node()


def main(args: Optional[List[str]] = None, exit_process: bool = True) -> int:
    """
    Run the node until SIGINT/SIGTERM; return the exit code (0 on a clean stop).

    ``exit_process``: once the node and rclpy are shut down, end the process at once
    (``os._exit``) instead of letting the interpreter free every object and unload torch
    and DDS: that took 1.3 s after 40 s of 30 Hz load here, most of the time to stop
    (docs/node.md, "Stopping"). Nothing is left to clean: the worker has stopped, the
    node is destroyed, rclpy is shut down, and output is flushed first.
    """
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = PredictorNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except StartupError as exc:
        print(f'[pitch_predictor] error: {exc}', file=sys.stderr, flush=True)
        code = exc.exit_code
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    if exit_process:
        sys.stdout.flush()
        sys.stderr.flush()
        ctypes.CDLL(None).fflush(None)  # rcutils' console log is C stdio
        os._exit(code)
    return code


if __name__ == '__main__':
    sys.exit(main())
