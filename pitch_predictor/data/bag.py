"""
rosbag2 (mcap) recordings of trials played back to back as one 30 Hz Kinect stream.

Written and read with ``rosbags`` (pure Python, no ROS install needed). Topics:

- ``/kinect2/qhd/image_color`` (``sensor_msgs/Image``, bgr8) or, with ``compressed``,
  ``/kinect2/qhd/image_color/compressed`` (``sensor_msgs/CompressedImage``, jpeg: the
  generator's own JPEG bytes);
- ``/body_tracking/skeleton`` (``geometry_msgs/PoseArray``): 25 poses in the Kinect SDK's
  joint order, ``position`` = joint (x, y, z) in metres in Kinect camera space (x to the
  sensor's left, y up, z away from the sensor), orientation identity; same header stamp
  as the image of that frame; frame_id ``kinect2_rgb_optical_frame``;
- ``/pitch/ground_truth`` (``std_msgs/String``): JSON per trial, published at the trial's
  first frame stamp: ``trial_id, block, participant, intended_block, first_stamp_ns,
  last_stamp_ns, start_stamp_ns`` (stamp of the true motion-start frame),
  ``true_start`` (its frame index within the trial).

Stamps: frame ``k`` of the stream is stamped ``start_time_ns + k * 1e9 / 30`` plus a
small clock jitter (default up to +-1 ms, seeded), strictly increasing; each message is
logged at its header stamp. Before each trial the pitcher stands still for
``gap_frames`` frames (the trial's own pre-motion frames and joints, cycled). After a
generated trial, whose pitcher ends in his finish stance where the stride took him (as
in [13]'s recordings), he walks back to his rest spot: ``walk_back_frames`` frames
rendered by the simulator with the trial's camera and room
(:func:`pitch_predictor.sim.generator.render_walk_back`), ending in the next pitch's
rest pose, so the stream never jumps between pitches of one pitcher. The walk-back and
the gap are outside every trial's ``[first_stamp_ns, last_stamp_ns]``.

``path`` ending in ``.mcap`` gives a single mcap file (rosbags and ``ros2 bag`` read it);
any other path gives a rosbag2 folder (``metadata.yaml`` + mcap).
"""

from dataclasses import asdict, dataclass, field
import json
from pathlib import Path
import shutil
import tempfile
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from pitch_predictor import topics

# The node's input topics (pitch_predictor.topics), as the global names a bag stores.
RGB_TOPIC = topics.global_name(topics.IMAGE_TOPIC)
COMPRESSED_TOPIC = topics.global_name(topics.COMPRESSED_IMAGE_TOPIC)
SKELETON_TOPIC = topics.global_name(topics.SKELETON_TOPIC)
TRUTH_TOPIC = '/pitch/ground_truth'  # recordings only: the node never sees it
FRAME_ID = 'kinect2_rgb_optical_frame'
FRAME_PERIOD_NS = topics.FRAME_PERIOD_S * 1e9  # exact (float): stamps are rounded per frame
GAP_FRAMES = 20  # still frames at the rest spot before each trial (after the walk-back)

PathLike = Union[str, Path]


class BagError(RuntimeError):
    """A recording cannot be written or read (the message names the file)."""


@dataclass
class TruthRecord:
    """Ground truth of one trial in a recording."""

    trial_id: str
    block: int
    participant: str
    first_stamp_ns: int
    last_stamp_ns: int
    start_stamp_ns: int  # true motion start (-1 when unknown)
    intended_block: int = -1
    true_start: int = -1  # frame index within the trial
    frame_stamps_ns: List[int] = field(default_factory=list)  # filled by write_recording

    def to_json(self) -> str:
        """Return the JSON published on the truth topic (without the frame stamps)."""
        values = asdict(self)
        values.pop('frame_stamps_ns')
        return json.dumps(values, sort_keys=True)


def _typestore():
    from rosbags.typesys import get_typestore, Stores
    return get_typestore(Stores.ROS2_JAZZY)


def _header(ts, stamp_ns: int):
    Header = ts.types['std_msgs/msg/Header']
    Time = ts.types['builtin_interfaces/msg/Time']
    return Header(stamp=Time(sec=int(stamp_ns // 1_000_000_000),
                             nanosec=int(stamp_ns % 1_000_000_000)), frame_id=FRAME_ID)


def _image_msg(ts, stamp_ns: int, rgb: np.ndarray):
    Image = ts.types['sensor_msgs/msg/Image']
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    h, w = bgr.shape[:2]
    return Image(header=_header(ts, stamp_ns), height=h, width=w, encoding='bgr8',
                 is_bigendian=0, step=w * 3, data=bgr.reshape(-1))


def _compressed_msg(ts, stamp_ns: int, jpeg: bytes):
    Compressed = ts.types['sensor_msgs/msg/CompressedImage']
    return Compressed(header=_header(ts, stamp_ns), format='jpeg',
                      data=np.frombuffer(jpeg, np.uint8))


def _pose_array_msg(ts, stamp_ns: int, joints: np.ndarray):
    PoseArray = ts.types['geometry_msgs/msg/PoseArray']
    Pose = ts.types['geometry_msgs/msg/Pose']
    Point = ts.types['geometry_msgs/msg/Point']
    Quaternion = ts.types['geometry_msgs/msg/Quaternion']
    poses = [Pose(position=Point(x=float(p[0]), y=float(p[1]), z=float(p[2])),
                  orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)) for p in joints]
    return PoseArray(header=_header(ts, stamp_ns), poses=poses)


def _string_msg(ts, text: str):
    return ts.types['std_msgs/msg/String'](data=text)


def _encode_jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [int(cv2.IMWRITE_JPEG_QUALITY), 90])
    if not ok:
        raise BagError('could not encode a frame as JPEG')
    return buf.tobytes()


def _decode_jpeg(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_recording(path: PathLike, trials: Iterable[Any], *, rgb_topic: Optional[str] = None,
                    skeleton_topic: str = SKELETON_TOPIC, truth_topic: str = TRUTH_TOPIC,
                    compressed: bool = False, gap_frames: int = GAP_FRAMES,
                    start_time_ns: int = 1_767_225_600_000_000_000,
                    stamp_jitter_ns: int = 1_000_000, seed: int = 0,
                    overwrite: bool = False,
                    walk_back_frames: Optional[int] = None) -> List[TruthRecord]:
    """
    Write ``trials`` back to back as one 30 Hz recording; return their ground truth.

    ``trials``: objects with ``trial_id, block, participant, joints (T, 25, 3),
    true_start`` and ``frames()`` (RGB) and/or ``jpegs`` (e.g. ``GeneratedTrial``), or
    dicts with those keys (``frames`` an array). ``rgb_topic`` defaults to the raw or
    compressed Kinect topic. Each trial is preceded by ``gap_frames`` still frames; a
    trial with a ``walk_back(next_trial, frames)`` method (``GeneratedTrial``) is followed
    by that many rendered walk-back frames (``walk_back_frames``; default: the trial's
    own, the simulator's ``WALK_BACK_FRAMES``; 0 for none).
    """
    from rosbags.rosbag2 import Writer
    from rosbags.rosbag2.enums import StoragePlugin

    path = Path(path)
    single_file = path.suffix == '.mcap'
    if path.exists():
        if not overwrite:
            raise BagError(f'{path}: exists (pass overwrite=True to replace it)')
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb_topic = rgb_topic or (COMPRESSED_TOPIC if compressed else RGB_TOPIC)
    ts = _typestore()
    image_type = ('sensor_msgs/msg/CompressedImage' if compressed
                  else 'sensor_msgs/msg/Image')
    rng = np.random.default_rng(seed)
    tmp_dir = Path(tempfile.mkdtemp(prefix='bag_', dir=path.parent)) if single_file else None
    bag_dir = (tmp_dir / path.stem) if single_file else path
    records: List[TruthRecord] = []
    frame_count = 0
    # None: the trial's own default length (the simulator's WALK_BACK_FRAMES).
    walk_args = () if walk_back_frames is None else (int(walk_back_frames),)

    def next_stamp() -> int:
        nonlocal frame_count
        jitter = int(rng.integers(-stamp_jitter_ns, stamp_jitter_ns + 1)) if stamp_jitter_ns \
            else 0
        stamp = start_time_ns + int(round(frame_count * FRAME_PERIOD_NS)) + jitter
        frame_count += 1
        return stamp

    try:
        with Writer(bag_dir, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
            img_conn = writer.add_connection(rgb_topic, image_type, typestore=ts)
            skel_conn = writer.add_connection(skeleton_topic, 'geometry_msgs/msg/PoseArray',
                                              typestore=ts)
            truth_conn = writer.add_connection(truth_topic, 'std_msgs/msg/String',
                                               typestore=ts)

            def put(stamp: int, image: Any, joints: np.ndarray) -> None:
                if compressed:
                    data = image if isinstance(image, (bytes, bytearray)) else _encode_jpeg(image)
                    msg = _compressed_msg(ts, stamp, bytes(data))
                else:
                    msg = _image_msg(ts, stamp, image)
                writer.write(img_conn, stamp, ts.serialize_cdr(msg, image_type))
                writer.write(skel_conn, stamp, ts.serialize_cdr(
                    _pose_array_msg(ts, stamp, joints), 'geometry_msgs/msg/PoseArray'))

            def write_trial(trial: Any, next_trial: Any) -> None:
                images, joints, info = _trial_payload(trial, compressed)
                # The gap replays the trial's own rest frames (fresh sensor noise each): an
                # exactly repeated frame would give a constant dx, which counts as
                # "non-decreasing" for the start detector.
                still = int(info['true_start']) if int(info['true_start']) > 0 else 10
                still = max(1, min(still, 10, len(images)))
                for g in range(gap_frames):
                    put(next_stamp(), images[g % still], joints[g % still])
                stamps = [next_stamp() for _ in range(len(images))]
                true_start = int(info['true_start'])
                rec = TruthRecord(
                    trial_id=str(info['trial_id']), block=int(info['block']),
                    participant=str(info['participant']), first_stamp_ns=stamps[0],
                    last_stamp_ns=stamps[-1],
                    start_stamp_ns=stamps[true_start] if 0 <= true_start < len(stamps) else -1,
                    intended_block=int(info.get('intended_block', -1)), true_start=true_start,
                    frame_stamps_ns=stamps)
                writer.write(truth_conn, stamps[0], ts.serialize_cdr(
                    _string_msg(ts, rec.to_json()), 'std_msgs/msg/String'))
                for k, stamp in enumerate(stamps):
                    put(stamp, images[k], joints[k])
                records.append(rec)
                walk = getattr(trial, 'walk_back', None)
                if callable(walk) and (walk_back_frames is None or walk_back_frames > 0):
                    back = walk(next_trial, *walk_args)
                    for k in range(len(back.jpegs)):
                        image = back.jpegs[k] if compressed else _decode_jpeg(back.jpegs[k])
                        put(next_stamp(), image, np.asarray(back.joints[k], np.float64))

            previous = None
            for trial in trials:
                if previous is not None:
                    write_trial(previous, trial)
                previous = trial
            if previous is not None:
                write_trial(previous, None)
        if single_file:
            produced = sorted(bag_dir.glob('*.mcap'))
            if len(produced) != 1:
                raise BagError(f'{bag_dir}: expected one mcap file, found {produced}')
            shutil.move(str(produced[0]), str(path))
    finally:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return records


def _trial_payload(trial: Any, compressed: bool) -> Tuple[Sequence[Any], np.ndarray, dict]:
    get = trial.get if isinstance(trial, dict) else (lambda k, d=None: getattr(trial, k, d))
    joints = np.asarray(get('joints'), dtype=np.float64)
    jpegs = get('jpegs')
    frames = get('frames')
    if compressed and jpegs is not None:
        images: Sequence[Any] = list(jpegs)
    elif callable(frames):
        images = frames()
    elif frames is not None:
        images = np.asarray(frames)
    else:
        raise BagError(f'trial {get("trial_id")}: no frames or jpegs to write')
    if len(images) != len(joints):
        raise BagError(f'trial {get("trial_id")}: {len(images)} frames but {len(joints)} '
                       f'joint frames')
    spec = get('spec')
    info = {
        'trial_id': get('trial_id'), 'block': get('block'), 'participant': get('participant'),
        'true_start': get('true_start', -1),
        'intended_block': getattr(spec, 'intended_block', get('intended_block', -1)),
    }
    return images, joints, info


def _reader(path: PathLike):
    from rosbags.rosbag2 import Reader
    path = Path(path)
    if not path.exists():
        raise BagError(f'{path}: recording does not exist')
    try:
        return Reader(path)
    except Exception as err:  # rosbags raises several types for bad files
        raise BagError(f'{path}: not a readable rosbag2/mcap recording ({err})') from err


def read_recording(path: PathLike, topics: Optional[Sequence[str]] = None
                   ) -> Iterator[Tuple[str, int, Any]]:
    """
    Yield ``(topic, stamp_ns, msg)`` in log-time order; ``msg`` is a rosbags message.

    ``stamp_ns`` is the log time (equal to the header stamp in recordings written here).
    """
    ts = _typestore()
    reader = _reader(path)
    with reader:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        for conn, stamp, raw in reader.messages(connections=conns):
            yield conn.topic, int(stamp), ts.deserialize_cdr(raw, conn.msgtype)


def read_ground_truth(path: PathLike, topic: str = TRUTH_TOPIC) -> List[TruthRecord]:
    """Return the recording's ground-truth records, in stream order."""
    records = []
    for _, _, msg in read_recording(path, topics=[topic]):
        try:
            values = json.loads(msg.data)
            records.append(TruthRecord(**{k: v for k, v in values.items()
                                          if k in TruthRecord.__dataclass_fields__}))
        except (ValueError, TypeError) as err:
            raise BagError(f'{path}: bad ground-truth message on {topic}: {msg.data!r} '
                           f'({err})') from err
    return sorted(records, key=lambda r: r.first_stamp_ns)
