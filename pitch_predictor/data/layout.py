"""
The real dataset's folder layout ([13], linZHank/Intention_Prediction): write and read.

Layout of a dataset (the hits: intended = actual block; the optional ``train``/``test``
level and a pitcher level under ``intentNN`` are accepted when reading, as the public
code of [13] uses both)::

    <root>/color/intentNN/<trial>/0000.jpg ... 0089.jpg   (or .png; RGB frames)
    <root>/joint/intentNN/<trial>/joints.npy              ((T, 25, 3) float, metres)
    <root>/pitchsim.json                                  (synthetic sets only)

Layout of a miss set, as [13]'s recorder (``data_acquire/record_pitch_data.m``) saves
every throw: intended block, pitcher, trial, then the block actually hit::

    <root>/color/intentNN/<pitcher>/<trial>/actualMM/0000.jpg ...
    <root>/joint/intentNN/<pitcher>/<trial>/actualMM/joints.npy

``intentNN`` is the block aimed at (01..09), ``actualMM`` the block hit; without an
``actualMM`` level the block hit is the intended one. Trial folders are named like
``intent04_ZL_201801302254_trial06`` (intended block, pitcher initials, session
timestamp, trial number); the pitcher is read from the name (or a pitcher folder
level). Joint files may also be ``(25, 3, T)`` arrays (the MATLAB order of [13]) in
``.npy`` or, when scipy is installed, ``.mat`` files holding ``joint_positions_3d``.
``pitchsim.json`` carries the synthetic ground truth (true motion start, intended
block, release state) keyed by trial id; real data simply has none.
"""

from dataclasses import dataclass, field
import json
from pathlib import Path
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from pitch_predictor.kinect import FRAMES_PER_TRIAL, NUM_BLOCKS, NUM_JOINTS

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')
META_FILE = 'pitchsim.json'
_TRIAL_NAME = re.compile(r'^intent(\d{2})_([A-Za-z0-9]+)_(\d+)_trial(\d+)$')
_INTENT_DIR = re.compile(r'^intent(\d{2})$')
_ACTUAL_DIR = re.compile(r'^actual(\d{2})$')

PathLike = Union[str, Path]


class DatasetError(RuntimeError):
    """A dataset file or folder is missing, unreadable or malformed (the message names it)."""


@dataclass
class TrialRecord:
    """One trial of a dataset on disk."""

    trial_id: str
    block: int  # 1..9, the block hit (the label)
    participant: str
    trial_index: int  # 0-based rank among this participant's trials of this block
    frame_paths: Tuple[Path, ...]
    joints_path: Path
    split: str = ''  # 'train'/'test' when the layout has that level
    true_start: int = -1  # synthetic only: 0-based motion onset frame
    extra: Dict[str, object] = field(default_factory=dict)
    intended_block: int = 0  # 1..9, the block aimed at (== block in a dataset of hits)

    def __post_init__(self) -> None:
        """Set the intended block to the block hit when none is given."""
        if not self.intended_block:
            self.intended_block = self.block

    def load(self) -> Tuple[np.ndarray, np.ndarray, int]:
        """Return (frames, joints, true_start): what ``data.cache.build_cache`` reads."""
        return load_trial_frames(self), load_trial_joints(self), self.true_start


def trial_folder_name(block: int, participant: str, stamp: str, trial_number: int) -> str:
    """Return a trial folder name in [13]'s style (``trial_number`` is 1-based)."""
    return f'intent{int(block):02d}_{participant}_{stamp}_trial{int(trial_number):02d}'


def trial_subpath(trial_id: str, block: int, intended_block: Optional[int] = None,
                  participant: Optional[str] = None) -> Path:
    """
    Return a trial's folder below ``color/`` (and ``joint/``).

    Without ``intended_block``: ``intentBB/<trial>`` (a dataset of hits). With it (a miss
    set, [13]'s recorder layout): ``intentII/<pitcher>/<trial>/actualBB``; the pitcher
    defaults to the one in the trial name.
    """
    if intended_block is None:
        return Path(f'intent{int(block):02d}') / trial_id
    if participant is None:
        match = _TRIAL_NAME.match(trial_id)
        if not match:
            raise ValueError(f'{trial_id}: give the participant (not in the trial name)')
        participant = match.group(2)
    return (Path(f'intent{int(intended_block):02d}') / participant / trial_id
            / f'actual{int(block):02d}')


def write_trial(root: PathLike, trial_id: str, block: int, joints: np.ndarray, *,
                jpegs: Optional[Sequence[bytes]] = None,
                frames: Optional[np.ndarray] = None, image_format: str = 'jpg',
                intended_block: Optional[int] = None,
                participant: Optional[str] = None) -> Path:
    """
    Write one trial into the layout; return its colour folder.

    Give ``jpegs`` (encoded frames, written as they are when ``image_format='jpg'``) or
    ``frames`` (RGB uint8 (T, H, W, 3)); ``image_format`` is ``'jpg'`` or ``'png'``.
    ``block`` is the block hit; give ``intended_block`` (and ``participant`` unless the
    trial name has it) for a miss set, written in the recorder's layout with an
    ``actualMM`` level (see the module doc).
    """
    if image_format not in ('jpg', 'png'):
        raise ValueError(f'image_format must be jpg or png, got {image_format!r}')
    root = Path(root)
    sub = trial_subpath(trial_id, block, intended_block, participant)
    color_dir = root / 'color' / sub
    joint_dir = root / 'joint' / sub
    color_dir.mkdir(parents=True, exist_ok=True)
    joint_dir.mkdir(parents=True, exist_ok=True)
    if frames is None and jpegs is None:
        raise ValueError('write_trial needs frames or jpegs')
    count = len(jpegs) if jpegs is not None else len(frames)
    for i in range(count):
        path = color_dir / f'{i:04d}.{image_format}'
        if image_format == 'jpg' and jpegs is not None:
            path.write_bytes(jpegs[i])
            continue
        rgb = frames[i] if frames is not None else cv2.cvtColor(
            cv2.imdecode(np.frombuffer(jpegs[i], np.uint8), cv2.IMREAD_COLOR),
            cv2.COLOR_BGR2RGB)
        ok, buf = cv2.imencode('.' + image_format, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                               [int(cv2.IMWRITE_JPEG_QUALITY), 95])
        if not ok:
            raise DatasetError(f'{path}: could not encode the frame')
        path.write_bytes(buf.tobytes())
    np.save(joint_dir / 'joints.npy', np.asarray(joints, dtype=np.float32))
    return color_dir


def write_meta(root: PathLike, meta: Dict[str, object]) -> Path:
    """Write ``pitchsim.json`` (generator settings and per-trial ground truth)."""
    path = Path(root) / META_FILE
    path.write_text(json.dumps(meta, indent=1, sort_keys=True))
    return path


def read_meta(root: PathLike) -> Dict[str, object]:
    """Return ``pitchsim.json`` of a layout, or an empty dict for real data."""
    path = Path(root) / META_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DatasetError(f'{path}: unreadable metadata ({err})') from err


def layout_source(root: PathLike) -> Dict[str, object]:
    """Describe a layout folder for a cache's ``meta.json`` (path, the generator config)."""
    return {'kind': 'layout', 'path': str(Path(root).resolve()),
            'pitchsim': read_meta(root).get('config', {})}


def _frame_files(folder: Path) -> List[Path]:
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]

    def key(p: Path) -> Tuple[int, str]:
        digits = re.findall(r'\d+', p.stem)
        return (int(digits[-1]) if digits else -1, p.name)

    return sorted(files, key=key)


def _find_joints(joint_dir: Path) -> Optional[Path]:
    if joint_dir.is_dir():
        for pattern in ('joints.npy', '*.npy', '*.mat'):
            found = sorted(joint_dir.glob(pattern))
            if found:
                return found[0]
    for suffix in ('.npy', '.mat'):
        if (joint_dir.parent / (joint_dir.name + suffix)).exists():
            return joint_dir.parent / (joint_dir.name + suffix)
    return None


def scan_dataset(root: PathLike) -> List[TrialRecord]:
    """
    List every trial under ``root`` (real or synthetic), sorted by participant, block, trial.

    Reads both layouts of the module doc: a dataset (``block`` = ``intended_block``) and
    a miss set with ``actualMM`` folders (``block`` = actual block hit,
    ``intended_block`` from ``intentNN``). ``trial_index`` is the rank within
    (participant, block) by the trial number in the name, then the session timestamp
    (for generated sets: the generator's trial index).

    Raises :class:`DatasetError` when ``root`` has no ``color/intentNN`` folders or a
    trial has no joint file.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f'{root}: dataset folder does not exist')
    meta_trials = read_meta(root).get('trials', {})
    color_roots = sorted({p.parent for p in root.glob('**/color/intent[0-9][0-9]')
                          if p.is_dir()})
    if not color_roots:
        raise DatasetError(f'{root}: no color/intentNN folders (see the layout in '
                           f'pitch_predictor/data/layout.py)')
    records = []
    for color_root in color_roots:
        split = color_root.parent.name if color_root.parent.name in ('train', 'test') else ''
        joint_root = color_root.parent / 'joint'
        for intent_dir in sorted(color_root.iterdir()):
            match = _INTENT_DIR.match(intent_dir.name)
            if not match or not intent_dir.is_dir():
                continue
            intended = _block_of(intent_dir, int(match.group(1)))
            for frames_dir, trial_dir, pitcher, actual in _trial_dirs(intent_dir):
                records.append(_record(frames_dir, trial_dir, pitcher, intended, actual, split,
                                       joint_root / frames_dir.relative_to(color_root),
                                       meta_trials))
    ranks: Dict[Tuple[str, int], int] = {}
    for rec in sorted(records, key=_trial_order):
        rec.trial_index = ranks.get((rec.participant, rec.block), 0)
        ranks[(rec.participant, rec.block)] = rec.trial_index + 1
    return sorted(records, key=lambda r: (r.participant, r.block, r.trial_index))


def _block_of(folder: Path, block: int) -> int:
    if not 1 <= block <= NUM_BLOCKS:
        raise DatasetError(f'{folder}: block {block} is outside 1..{NUM_BLOCKS}')
    return block


def _trial_order(rec: TrialRecord) -> Tuple[str, int, int, str, str]:
    # By trial number first (the generator's throw order), then session stamp and name.
    match = _TRIAL_NAME.match(rec.trial_id)
    number = int(match.group(4)) if match else 0
    stamp = match.group(3) if match else ''
    return rec.participant, rec.block, number, stamp, rec.trial_id


def _has_frames(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())


def _subdirs(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir())


def _trial_dirs(intent_dir: Path) -> Iterable[Tuple[Path, Path, str, Optional[int]]]:
    """Yield (frames folder, trial folder, pitcher level or '', actual block or None)."""
    def in_trial(trial: Path, pitcher: str) -> Iterable[Tuple[Path, Path, str, Optional[int]]]:
        if _has_frames(trial):
            yield trial, trial, pitcher, None
            return
        for sub in _subdirs(trial):
            match = _ACTUAL_DIR.match(sub.name)
            if match and _has_frames(sub):
                yield sub, trial, pitcher, _block_of(sub, int(match.group(1)))

    for child in _subdirs(intent_dir):
        if _has_frames(child) or any(_ACTUAL_DIR.match(p.name) for p in _subdirs(child)):
            yield from in_trial(child, '')
        else:  # a pitcher level: intentNN/<pitcher>/<trial>/[actualMM/]
            for trial in _subdirs(child):
                yield from in_trial(trial, child.name)


def _record(frames_dir: Path, trial_dir: Path, pitcher: str, intended: int,
            actual: Optional[int], split: str, joint_dir: Path,
            meta_trials: Dict[str, Dict[str, object]]) -> TrialRecord:
    name = trial_dir.name
    match = _TRIAL_NAME.match(name)
    participant = match.group(2) if match else (pitcher or 'unknown')
    if match and int(match.group(1)) != intended:
        raise DatasetError(f'{trial_dir}: trial name says block {int(match.group(1))} but the '
                           f'folder is intent{intended:02d}')
    trial_id = name
    if actual is not None and not match:
        # The recorder's own names (trial_<stamp>) repeat across targets and pitchers.
        trial_id = f'intent{intended:02d}_{participant}_{name}_actual{actual:02d}'
    frames = tuple(_frame_files(frames_dir))
    joints = _find_joints(joint_dir)
    if joints is None:
        raise DatasetError(f'{frames_dir}: no joint file (expected {joint_dir}/joints.npy)')
    extra = dict(meta_trials.get(trial_id, {}))
    return TrialRecord(trial_id=trial_id, block=intended if actual is None else actual,
                       participant=participant, trial_index=0, frame_paths=frames,
                       joints_path=joints, split=split,
                       true_start=int(extra.get('true_start', -1)), extra=extra,
                       intended_block=intended)


def _check_numbering(rec: TrialRecord, expected: Optional[int]) -> None:
    paths = rec.frame_paths
    numbers = []
    for p in paths:
        digits = re.findall(r'\d+', p.stem)
        numbers.append(int(digits[-1]) if digits else None)
    if all(n is not None for n in numbers) and numbers:
        first = numbers[0]
        for k, n in enumerate(numbers):
            if n != first + k:
                gap = paths[k].with_name(f'{first + k:0{len(paths[k].stem)}d}{paths[k].suffix}')
                raise DatasetError(f'{gap}: missing frame {first + k} of trial {rec.trial_id}')
    if expected is not None and len(paths) != expected:
        where = paths[-1].parent if paths else rec.trial_id
        missing = f'{where}/{len(paths):04d}' if len(paths) < expected else str(where)
        raise DatasetError(f'{missing}: trial {rec.trial_id} has {len(paths)} frames, '
                           f'expected {expected}')


def load_trial_frames(rec: TrialRecord,
                      expected_frames: Optional[int] = FRAMES_PER_TRIAL) -> np.ndarray:
    """Read a trial's frames: RGB uint8 (T, H, W, 3). Raises :class:`DatasetError`."""
    _check_numbering(rec, expected_frames)
    frames = []
    for path in rec.frame_paths:
        data = np.fromfile(str(path), dtype=np.uint8) if path.exists() else None
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
        if bgr is None:
            raise DatasetError(f'{path}: unreadable image (trial {rec.trial_id})')
        if frames and bgr.shape != frames[0].shape:
            first = frames[0].shape
            raise DatasetError(f'{path}: frame size {bgr.shape[1]}x{bgr.shape[0]} differs from '
                               f'the first frame of the trial ({first[1]}x{first[0]})')
        frames.append(bgr)
    rgb = np.stack(frames)
    return rgb[..., ::-1].copy()


def load_trial_joints(rec: TrialRecord,
                      expected_frames: Optional[int] = FRAMES_PER_TRIAL) -> np.ndarray:
    """Read a trial's joints: float32 (T, 25, 3) metres. Raises :class:`DatasetError`."""
    path = rec.joints_path
    try:
        if path.suffix == '.mat':
            try:
                from scipy.io import loadmat
            except ImportError as err:
                raise DatasetError(f'{path}: reading .mat joint files needs scipy') from err
            arr = np.asarray(loadmat(str(path))['joint_positions_3d'])
        else:
            arr = np.load(path, allow_pickle=False)
    except DatasetError:
        raise
    except (OSError, ValueError, KeyError) as err:
        raise DatasetError(f'{path}: unreadable joint file ({err})') from err
    if arr.ndim == 3 and arr.shape[:2] == (NUM_JOINTS, 3) and arr.shape[2] != 3:
        arr = np.transpose(arr, (2, 0, 1))  # [13]'s MATLAB order (25, 3, T)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3):
        raise DatasetError(f'{path}: joints have shape {arr.shape}, expected (T, '
                           f'{NUM_JOINTS}, 3)')
    if expected_frames is not None and arr.shape[0] != expected_frames:
        raise DatasetError(f'{path}: joints have {arr.shape[0]} frames, expected '
                           f'{expected_frames}')
    if not np.issubdtype(arr.dtype, np.number):
        raise DatasetError(f'{path}: joints are not numbers ({arr.dtype})')
    return arr.astype(np.float32)
