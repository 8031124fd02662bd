"""
The predictor node's parameters: names, defaults, descriptions, ranges and validation.

ROS-free: ``predictor_node`` turns each :class:`ParamSpec` into a declared parameter
with a ``ParameterDescriptor`` (description, range, read-only flag), and the same
:func:`check_value` refuses bad values at start-up and in the parameter callback.
``config/predictor.yaml`` documents the same list (a test keeps both in step).
"""

from dataclasses import dataclass, fields, replace
from pathlib import Path
import re
from typing import (
    Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union)

from pitch_predictor.models.decision import MAX_ROW_OFFSET
from pitch_predictor.runtime.settings import CoreConfig
from pitch_predictor.start_detector import StartDetectorConfig
from pitch_predictor.topics import COMPRESSED_SUFFIX, IMAGE_TOPIC, SKELETON_TOPIC
import yaml

DETECTOR_PREFIX = 'detector.'


class ParameterError(ValueError):
    """A node parameter has a value it cannot take."""


@dataclass(frozen=True)
class ParamSpec:
    """
    One node parameter.

    ``minimum``/``maximum`` bound numbers (inclusive); ``choices`` lists the allowed
    strings (``pattern``, a regex, allows more); ``read_only`` parameters are fixed
    once the node runs (topics, model, device, QoS need a restart).
    """

    name: str
    default: Any
    description: str
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    choices: Tuple[str, ...] = ()
    pattern: str = ''
    read_only: bool = False

    @property
    def constraints(self) -> str:
        """Human-readable allowed values (for descriptors and the README)."""
        if self.choices:
            extra = ' or cuda:N' if self.pattern else ''
            return 'one of ' + ', '.join(self.choices) + extra
        if self.minimum is not None:
            return f'{self.minimum} .. {self.maximum}'
        return ''


NODE_PARAMETERS: Tuple[ParamSpec, ...] = (
    ParamSpec('model_path', '',
              'Checkpoint file (.pt from training/train.py). Empty: the model shipped '
              'with the package.', read_only=True),
    ParamSpec('device', 'auto',
              'Inference device: auto (CUDA when available, else CPU), cpu, cuda or '
              'cuda:N.', choices=('auto', 'cpu', 'cuda'), pattern=r'cuda:\d+',
              read_only=True),
    ParamSpec('image_transport', 'raw',
              'raw: subscribe to sensor_msgs/Image on image_color; compressed: '
              'sensor_msgs/CompressedImage on image_color/compressed.',
              choices=('raw', 'compressed'), read_only=True),
    ParamSpec('skeleton_type', 'pose_array',
              'pose_array: geometry_msgs/PoseArray, 25 Kinect V2 joints in SDK order; '
              'marker_array: visualization_msgs/MarkerArray from the Azure Kinect ROS '
              'driver (the body nearest the image centre is used).',
              choices=('pose_array', 'marker_array'), read_only=True),
    ParamSpec('qos_reliability', 'reliable',
              'Reliability of the image and skeleton subscriptions. reliable: every '
              'fragment of a large image is resent when lost (best_effort lost nearly '
              'every raw 960x540 frame here).', choices=('reliable', 'best_effort'),
              read_only=True),
    ParamSpec('qos_depth', 10,
              'History depth (keep-last) of the input subscriptions.', 1, 1000,
              read_only=True),
    ParamSpec('pair_tolerance_ms', 10.0,
              'Largest difference between an image stamp and a skeleton stamp that '
              'still pairs them (ms).', 0.0, 1000.0),
    ParamSpec('max_pending_frames', 90,
              'Frames that may wait for their skeleton before they go on without one. '
              'The topics arrive independently: over reliable Fast DDS a lost skeleton '
              'packet stalled the skeleton topic for ~2 s here while images kept coming.',
              0, 300),
    ParamSpec('skeleton_hold_frames', 3,
              'A frame without a skeleton reuses the last one for this many frames; '
              'beyond that start detection pauses and re-arms.', 0, 30),
    ParamSpec('max_missing_skeleton_fraction', 0.5,
              'Models that take joints (two-stream, joints-only): a window with a larger '
              'share of frames without their own skeleton (held over or none) gets no '
              'prediction; it is counted as windows_skipped_no_skeleton (see '
              'docs/node.md, "Skeleton gaps").', 0.0, 1.0),
    ParamSpec('max_gap_s', 0.5,
              'A longer pause between frame stamps resets the stream (shorter gaps '
              'are counted as missing frames).', 0.01, 60.0),
    ParamSpec('sampling_method', 0,
              'Table II test-time sampling (1..7); 0: the method the model was '
              'trained with.', 0, 7),
    ParamSpec('early_estimates', True,
              'Publish early estimates while the window fills (streamable, '
              'forward-only models such as convgru1d_alexnet).'),
    ParamSpec('early_every_frames', 5,
              'An early estimate every this many frames of the window.', 1, 40),
    ParamSpec('pitcher_row_offset_top', 0.0,
              "The current pitcher's log-probability offset for the top row's blocks "
              '(fitted on their labelled throws: python -m training.pitcher_offset --fit; '
              'see docs/node.md, "A new pitcher"). 0: none. Set both back to 0 for the '
              'next person.', -MAX_ROW_OFFSET, MAX_ROW_OFFSET),
    ParamSpec('pitcher_row_offset_bottom', 0.0,
              "The same for the bottom row's blocks (the middle row's offset is 0).",
              -MAX_ROW_OFFSET, MAX_ROW_OFFSET),
    ParamSpec('publish_annotated_image', False,
              'Publish annotated_image: skeleton, detector phase and the 3x3 target '
              'grid shaded by the block probabilities.'),
    ParamSpec('diagnostics_period_s', 1.0,
              'Period of the /diagnostics status (wall time, also under sim time).',
              0.1, 60.0, read_only=True),
    ParamSpec('log_throttle_s', 5.0,
              'Repeated warnings of one kind (bad input, resets) are logged at most '
              'once per this many seconds; all are counted in /diagnostics.', 0.0, 3600.0),
    ParamSpec('torch_threads', 1,
              'CPU threads per torch operation (0: torch default, one per core). 1 '
              'keeps the frame callbacks and the decision thread from competing for '
              'cores (each runs small tensors).', 0, 256, read_only=True),
    ParamSpec('inference_backend', 'onnxruntime',
              'How the model runs: onnxruntime exports the backbone and the decision once '
              'to ONNX Runtime (CPU; on CUDA, or without onnxruntime, torchscript is used), '
              'torchscript traces them; both are checked against eager when made and make '
              'one call into C++ per frame or decision; eager runs the PyTorch modules op '
              'by op (see docs/node.md, "Where the time goes").',
              choices=('onnxruntime', 'torchscript', 'eager'), read_only=True),
)

# Start detector settings exposed as detector.<field>: (description, minimum, maximum).
# reference_index and min_start_index only apply to whole trials, not to the stream.
DETECTOR_HELP: Dict[str, Tuple[str, float, float]] = {
    'delta_image': ('Paper delta1: image change (to the rest reference) that frames i .. '
                    'i+run_length-1 must all reach, condition a). Scale: see '
                    'signature_size.', 0.0, 1000.0),
    'delta_joints': ('Paper delta2 (m): joint change of frame i to the rest reference, '
                     'condition c).', 0.0, 10.0),
    'run_length': ('Frames over delta_image with non-decreasing change (conditions a, '
                   'b); the start is known this many frames - 1 after it happened.', 1, 40),
    'signature_size': ('Side of the grey image signature dx is measured on (values in '
                       'network-input units: (grey / 255 - 0.449) / 0.226).', 8, 256),
    'rest_frames': ('Still frames before the detector arms (the rest reference).', 1, 300),
    'rest_image_tol': ('Largest image change within a still run.', 0.0, 1000.0),
    'rest_joint_tol': ('Largest joint change (m) within a still run.', 0.0, 10.0),
    'action_frames': ('Frames ignored after a start before waiting for rest again.', 1,
                      1000),
}


def _detector_specs() -> Tuple[ParamSpec, ...]:
    defaults = StartDetectorConfig()
    specs = []
    for f in fields(StartDetectorConfig):
        value = getattr(defaults, f.name)
        if f.name not in DETECTOR_HELP or isinstance(value, bool) \
                or not isinstance(value, (int, float)):
            continue
        text, low, high = DETECTOR_HELP[f.name]
        if isinstance(value, float):
            low, high = float(low), float(high)
        else:
            low, high = int(low), int(high)
        specs.append(ParamSpec(DETECTOR_PREFIX + f.name, value, text, low, high))
    return tuple(specs)


ALL_PARAMETERS: Tuple[ParamSpec, ...] = NODE_PARAMETERS + _detector_specs()
SPECS: Dict[str, ParamSpec] = {spec.name: spec for spec in ALL_PARAMETERS}


def check_value(name: str, value: Any) -> Any:
    """Return ``value`` (ints accepted for floats) or raise :class:`ParameterError`."""
    spec = SPECS.get(name)
    if spec is None:
        raise ParameterError(f'unknown parameter {name!r}')
    expected = type(spec.default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not expected:
        raise ParameterError(
            f'parameter {name!r} must be a {expected.__name__}, got {value!r}')
    if spec.minimum is not None and not spec.minimum <= value <= spec.maximum:
        raise ParameterError(
            f'parameter {name!r} = {value!r} is out of range [{spec.minimum}, '
            f'{spec.maximum}]')
    if spec.choices and value not in spec.choices and not (
            spec.pattern and re.fullmatch(spec.pattern, value)):
        raise ParameterError(
            f'parameter {name!r} = {value!r} is not {spec.constraints}')
    return value


def check_values(values: Mapping[str, Any]) -> Dict[str, Any]:
    """Check every value; raise :class:`ParameterError` listing all the problems."""
    problems: List[str] = []
    checked = {}
    for name, value in values.items():
        try:
            checked[name] = check_value(name, value)
        except ParameterError as exc:
            problems.append(str(exc))
    if problems:
        raise ParameterError('; '.join(problems))
    return checked


def defaults() -> Dict[str, Any]:
    """Every parameter's default value."""
    return {spec.name: spec.default for spec in ALL_PARAMETERS}


def core_config_from(values: Mapping[str, Any]) -> CoreConfig:
    """Build the :class:`CoreConfig` from (checked) parameter values; missing = default."""
    merged = {**defaults(), **values}
    detector = replace(StartDetectorConfig(), **{
        name[len(DETECTOR_PREFIX):]: value for name, value in merged.items()
        if name.startswith(DETECTOR_PREFIX)})
    return CoreConfig(
        sampling_method=merged['sampling_method'],
        pair_tolerance_s=merged['pair_tolerance_ms'] / 1000.0,
        max_pending_frames=merged['max_pending_frames'],
        skeleton_hold_frames=merged['skeleton_hold_frames'],
        max_missing_skeleton_fraction=merged['max_missing_skeleton_fraction'],
        max_gap_s=merged['max_gap_s'],
        early_estimates=merged['early_estimates'],
        early_every_frames=merged['early_every_frames'],
        detector=detector,
        row_offset_top=merged['pitcher_row_offset_top'],
        row_offset_bottom=merged['pitcher_row_offset_bottom'],
    )


NODE_NAME = 'pitch_predictor'


@dataclass
class NodeSettings:
    """Every parameter value of one node configuration, and what follows from them."""

    values: Dict[str, Any]

    @property
    def core(self) -> CoreConfig:
        """Return the core's settings."""
        return core_config_from(self.values)

    @property
    def inference_backend(self) -> str:
        """How the model runs: 'onnxruntime', 'torchscript' or 'eager'."""
        return self.values['inference_backend']

    @property
    def device(self) -> str:
        """Device preference ('auto', 'cpu', 'cuda', 'cuda:N')."""
        return self.values['device']

    @property
    def model_path(self) -> str:
        """Checkpoint path ('' = the shipped model)."""
        return self.values['model_path']

    @property
    def compressed(self) -> bool:
        """Tell whether images come as sensor_msgs/CompressedImage."""
        return self.values['image_transport'] == 'compressed'

    @property
    def skeleton_type(self) -> str:
        """'pose_array' or 'marker_array'."""
        return self.values['skeleton_type']

    @property
    def image_topic(self) -> str:
        """Image topic in the root namespace, before remapping."""
        return '/' + IMAGE_TOPIC + (COMPRESSED_SUFFIX if self.compressed else '')

    @property
    def skeleton_topic(self) -> str:
        """Skeleton topic in the root namespace, before remapping."""
        return '/' + SKELETON_TOPIC


def default_params_file() -> Optional[Path]:
    """Return ``config/predictor.yaml`` (installed share directory or source tree)."""
    candidates = [Path(__file__).resolve().parents[2] / 'config' / 'predictor.yaml']
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.insert(0, Path(get_package_share_directory('pitch_predictor'))
                          / 'config' / 'predictor.yaml')
    except Exception:  # noqa: BLE001 - no ament index here (a source tree)
        pass
    return next((p for p in candidates if p.is_file()), None)


def _flatten(prefix: str, tree: Mapping[str, Any], out: Dict[str, Any]) -> None:
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            _flatten(name + '.', value, out)
        else:
            out[name] = value


def read_params_file(path: Union[str, Path], node_name: str = NODE_NAME) -> Dict[str, Any]:
    """
    Read a ROS 2 parameter YAML file as rcl does: ``/**`` then the node's own entry.

    Nested keys become dotted names (``detector: {delta_image: 6.0}`` ->
    ``detector.delta_image``). Raises :class:`ParameterError` naming the file.
    """
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ParameterError(f'parameter file {path}: {exc}') from None
    values: Dict[str, Any] = {}
    for key in ('/**', node_name, '/' + node_name):
        entry = document.get(key) if isinstance(document, Mapping) else None
        if entry is None:
            continue
        params = entry.get('ros__parameters') if isinstance(entry, Mapping) else None
        if not isinstance(params, Mapping):
            raise ParameterError(f'parameter file {path}: {key!r} has no ros__parameters')
        _flatten('', params, values)
    return values


def parse_override(text: str) -> Tuple[str, Any]:
    """Parse ``name:=value`` as ``--ros-args -p`` does (the value is YAML)."""
    name, sep, raw = text.partition(':=')
    if not sep or not name:
        raise ParameterError(f'parameter override {text!r} is not name:=value')
    return name, yaml.safe_load(raw) if raw else ''


def load_node_settings(params_file: Optional[Union[str, Path]] = None,
                       overrides: Sequence[str] = ()) -> NodeSettings:
    """
    Return the settings a node started with these arguments would use (checked).

    Unknown names in the file (``use_sim_time`` and other ROS parameters) are ignored,
    as the node ignores them.
    """
    values = defaults()
    given = read_params_file(params_file) if params_file else {}
    given.update(dict(parse_override(item) for item in overrides))
    values.update(check_values({k: v for k, v in given.items() if k in SPECS}))
    return NodeSettings(values)
