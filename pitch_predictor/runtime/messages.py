"""
Convert ROS image and skeleton messages to the numpy arrays the predictor works on.

Duck-typed: every function reads only message fields, so the same code handles rclpy
messages (``array.array`` data), rosbags messages (numpy data) and plain test objects.
Nothing here imports ROS. Every rejection raises :class:`MessageError` whose ``reason``
is a short stable key (the node counts rejections by it) and whose message says what
was wrong.
"""

from dataclasses import dataclass
import math
from typing import Any, Optional, Tuple

import cv2
import numpy as np
from pitch_predictor.kinect import NUM_JOINTS

# Larger images are refused outright: a corrupt width/height field must not make the
# node allocate gigabytes (the Kinect v2's largest colour image is 1920x1080).
MAX_IMAGE_SIDE = 8192

# Channels and the cv2 conversion to RGB for each supported raw encoding.
_RAW_ENCODINGS = {
    'rgb8': (3, None),
    'bgr8': (3, cv2.COLOR_BGR2RGB),
    'rgba8': (4, cv2.COLOR_RGBA2RGB),
    'bgra8': (4, cv2.COLOR_BGRA2RGB),
    'mono8': (1, cv2.COLOR_GRAY2RGB),
}
SUPPORTED_ENCODINGS = tuple(_RAW_ENCODINGS)

# Azure Kinect Body Tracking (K4ABT, 32 joints) index for each Kinect V2 joint in SDK
# order: SpineBase<-PELVIS, SpineMid<-SPINE_NAVEL, Neck<-NECK, Head<-HEAD, ...,
# SpineShoulder<-SPINE_CHEST, HandTip/Thumb<-HANDTIP/THUMB.
K4ABT_FOR_KINECT_V2 = (
    0, 1, 3, 26,
    5, 6, 7, 8,
    12, 13, 14, 15,
    18, 19, 20, 21,
    22, 23, 24, 25,
    2, 9, 10, 16, 17,
)
K4ABT_NUM_JOINTS = 32
# The Azure Kinect ROS driver numbers joint markers body_id * 100 + joint index.
K4ABT_MARKER_ID_STRIDE = 100
_MARKER_ADD = 0


class MessageError(ValueError):
    """A message that cannot be turned into a frame or a skeleton."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f'{reason}: {detail}')
        self.reason = reason
        self.detail = detail


def stamp_to_ns(stamp: Any) -> int:
    """Return a ``builtin_interfaces/Time`` (``sec``, ``nanosec``) as integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def skeleton_stamp_ns(msg: Any) -> int:
    """Stamp of a PoseArray (its header) or MarkerArray (its first marker's header), in ns."""
    markers = getattr(msg, 'markers', None)
    if markers is not None:
        return stamp_to_ns(markers[0].header.stamp) if len(markers) else 0
    return stamp_to_ns(msg.header.stamp)


def _as_bytes(data: Any) -> np.ndarray:
    """View message data (bytes, array.array, list or numpy) as a flat uint8 array."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype != np.uint8 else data.reshape(-1)
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    return np.frombuffer(memoryview(data).cast('B'), dtype=np.uint8)


@dataclass(frozen=True)
class Pixels:
    """
    A decoded image before its conversion to RGB: uint8 (H, W, 3), RGB or BGR order.

    ``array`` may be a read-only view of the message's buffer (valid while the message
    lives): the core crops first and converts only the crop (a per-channel resize
    commutes with the channel swap, so the result equals converting the whole frame).
    """

    array: np.ndarray
    bgr: bool = False

    def rgb(self) -> np.ndarray:
        """Return the whole image as a new RGB array."""
        if self.bgr:
            return cv2.cvtColor(np.ascontiguousarray(self.array), cv2.COLOR_BGR2RGB)
        return np.array(self.array)


def image_msg_to_pixels(msg: Any) -> Pixels:
    """
    Return a ``sensor_msgs/Image`` as :class:`Pixels` (rgb8/bgr8: a view, no copy).

    Supported encodings: rgb8, bgr8, rgba8, bgra8, mono8 (the last three are converted
    to RGB here). Rows may be padded (``step`` > width * channels). Raises
    :class:`MessageError` with reason ``unsupported_encoding``, ``bad_size`` or
    ``truncated``.
    """
    encoding = str(msg.encoding).lower()
    if encoding not in _RAW_ENCODINGS:
        raise MessageError(
            'unsupported_encoding',
            f'image encoding {msg.encoding!r} is not one of {", ".join(SUPPORTED_ENCODINGS)}')
    channels, conversion = _RAW_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if not (0 < height <= MAX_IMAGE_SIDE and 0 < width <= MAX_IMAGE_SIDE):
        raise MessageError('bad_size', f'image size {width}x{height} is empty or too large')
    row_bytes = width * channels
    if step < row_bytes:
        raise MessageError(
            'bad_size', f'image step {step} < width {width} x {channels} channels')
    data = _as_bytes(msg.data)
    if data.size < step * (height - 1) + row_bytes:
        raise MessageError(
            'truncated', f'image data has {data.size} bytes, {width}x{height} {encoding} '
            f'with step {step} needs {step * height}')
    pixels = np.lib.stride_tricks.as_strided(
        data, shape=(height, width, channels), strides=(step, channels, 1), writeable=False)
    if encoding in ('rgb8', 'bgr8'):
        return Pixels(pixels, bgr=encoding == 'bgr8')
    return Pixels(cv2.cvtColor(np.ascontiguousarray(pixels), conversion))


def image_msg_to_rgb(msg: Any) -> np.ndarray:
    """Return a ``sensor_msgs/Image`` as a new RGB uint8 (H, W, 3) array (see above)."""
    return image_msg_to_pixels(msg).rgb()


def compressed_msg_to_pixels(msg: Any) -> Pixels:
    """Decode a ``sensor_msgs/CompressedImage`` to :class:`Pixels` (BGR, as decoded)."""
    return Pixels(_decode_compressed(msg), bgr=True)


def compressed_msg_to_rgb(msg: Any) -> np.ndarray:
    """
    Decode a ``sensor_msgs/CompressedImage`` (jpeg or png) to RGB uint8 (H, W, 3).

    Raises :class:`MessageError` as :func:`compressed_msg_to_pixels` does.
    """
    return cv2.cvtColor(_decode_compressed(msg), cv2.COLOR_BGR2RGB)


def _decode_compressed(msg: Any) -> np.ndarray:
    """
    Decode jpeg or png data to BGR uint8 (H, W, 3).

    Raises :class:`MessageError` with reason ``unsupported_encoding`` (format not jpeg/png)
    or ``decode_failed`` (truncated or corrupt data).
    """
    fmt = str(msg.format).lower()
    if fmt and not any(name in fmt for name in ('jpeg', 'jpg', 'png')):
        raise MessageError(
            'unsupported_encoding', f'compressed format {msg.format!r} is not jpeg or png')
    data = _as_bytes(msg.data)
    if data.size == 0:
        raise MessageError('truncated', 'compressed image has no data')
    bgr = cv2.imdecode(np.ascontiguousarray(data), cv2.IMREAD_COLOR)
    if bgr is None:
        raise MessageError(
            'decode_failed', f'cannot decode {data.size} bytes of compressed {fmt or "image"}')
    return bgr


def _check_joints(joints: np.ndarray, source: str) -> np.ndarray:
    """Refuse skeletons with NaN or infinite coordinates (lost tracking)."""
    bad = ~np.isfinite(joints).all(axis=1)
    if bad.any():
        raise MessageError(
            'non_finite_joints',
            f'{source}: joints {np.flatnonzero(bad).tolist()} are NaN or infinite')
    return joints


def pose_array_to_joints(msg: Any) -> np.ndarray:
    """
    Return a ``geometry_msgs/PoseArray`` of the 25 Kinect V2 joints as float32 (25, 3).

    Pose i is joint i in SDK order; its position is the joint's camera-space xyz in
    metres. Raises :class:`MessageError` with reason ``no_skeleton`` (empty array),
    ``wrong_joint_count`` or ``non_finite_joints``.
    """
    poses = list(msg.poses)
    if not poses:
        raise MessageError('no_skeleton', 'PoseArray is empty (no body tracked)')
    if len(poses) != NUM_JOINTS:
        raise MessageError(
            'wrong_joint_count', f'PoseArray has {len(poses)} poses, expected {NUM_JOINTS}')
    joints = np.array(
        [(p.position.x, p.position.y, p.position.z) for p in poses], dtype=np.float32)
    return _check_joints(joints, 'PoseArray')


def _distance_from_optical_axis(joints: np.ndarray) -> float:
    """Angle-like distance of a body from the image centre (lateral offset over depth)."""
    x, y, z = (float(v) for v in joints.mean(axis=0))
    return math.hypot(x, y) / max(abs(z), 1e-6)


def marker_array_to_joints(msg: Any) -> np.ndarray:
    """
    Return the body nearest the image centre of an Azure Kinect ``MarkerArray``.

    The Azure Kinect ROS driver publishes one marker per joint with
    ``id = body_id * 100 + k4abt_joint`` (32 joints) in the depth camera's optical frame
    (x right, y down, z forward). The 25 Kinect V2 joints are picked from the 32 and
    turned into Kinect V2 camera space (x left, y up, z forward). Bodies missing a
    needed joint are skipped. Raises :class:`MessageError` with reason ``no_skeleton``
    or ``non_finite_joints``.
    """
    bodies: dict = {}
    for marker in msg.markers:
        if int(getattr(marker, 'action', _MARKER_ADD)) != _MARKER_ADD:
            continue
        body_id, joint = divmod(int(marker.id), K4ABT_MARKER_ID_STRIDE)
        if joint < K4ABT_NUM_JOINTS:
            p = marker.pose.position
            bodies.setdefault(body_id, {})[joint] = (p.x, p.y, p.z)
    candidates = []
    for body_id, found in sorted(bodies.items()):
        if all(j in found for j in K4ABT_FOR_KINECT_V2):
            optical = np.array([found[j] for j in K4ABT_FOR_KINECT_V2], dtype=np.float32)
            candidates.append((body_id, optical * np.array([-1.0, -1.0, 1.0], np.float32)))
    if not candidates:
        raise MessageError(
            'no_skeleton', f'MarkerArray holds no complete body ({len(bodies)} partial)')
    finite = [(i, j) for i, j in candidates if np.isfinite(j).all()]
    if not finite:
        return _check_joints(candidates[0][1], f'MarkerArray body {candidates[0][0]}')
    return min(finite, key=lambda item: _distance_from_optical_axis(item[1]))[1]


def rgb_to_image_fields(rgb: np.ndarray,
                        encoding: str = 'bgr8') -> Tuple[int, int, str, int, bytes]:
    """Return (height, width, encoding, step, data) for publishing an RGB array as Image."""
    if encoding == 'rgb8':
        pixels = np.ascontiguousarray(rgb)
    elif encoding == 'bgr8':
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    else:
        raise MessageError('unsupported_encoding', f'cannot publish as {encoding!r}')
    height, width = pixels.shape[:2]
    return height, width, encoding, width * 3, pixels.tobytes()


def optional_stamp_ns(msg: Any) -> Optional[int]:
    """Return ``msg.header.stamp`` in nanoseconds, or None when the stamp is zero."""
    ns = stamp_to_ns(msg.header.stamp)
    return ns if ns > 0 else None
