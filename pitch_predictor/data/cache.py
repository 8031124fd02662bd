"""
The training cache: every trial decoded and cropped once, memory-mapped uint8.

Folder contents (``np.load(..., mmap_mode='r')``)::

    frames.npy        (N, 90, S, S, 3) uint8   crops from preprocessing.crop_frames
    joints.npy        (N, 90, 25, 3) float32   Kinect camera space, metres
    labels.npy        (N,) int64               class index = block hit - 1
    intended.npy      (N,) int64               block aimed at, 1..9 (== labels + 1 for a
                                               dataset of hits; differs in a miss cache)
    participants.npy  (N,) int64               index into participant_names
    trial_index.npy   (N,) int64               rank within (participant, block)
    true_start.npy    (N,) int64               synthetic motion onset, -1 for real data
    start.npy         (N,) int64               detected start (the action window)
    start_found.npy   (N,) bool                False: the detector found none (fallback)
    crop_box.npy      (N, 3) int64             (x0, y0, side) of each trial's crop in its
                                               camera frames (caches built since issue 13)
    meta.json         participant_names, trial_ids, preprocess, detector, source, crop

``start`` is the paper's start frame (Section IV-A) found by
:func:`pitch_predictor.window.trial_start` on the stored crops and joints: the detector,
or when it finds none the fallback of ``pitch_predictor.window`` (``start_found``
False).

A cache built from a miss set (``pitch-sim cache --source data/synthetic/layout_miss``)
has the same arrays: ``labels`` are the actual blocks - 1, ``intended`` the blocks aimed
at, so a model can be scored against both.

The crop (``preprocess.crop_mode``): 'centre', the paper's fixed centre square, or
'skeleton', one square per trial around the pitcher from its rest pose
(:func:`pitch_predictor.models.preprocessing.trial_crop_box`, centre crop when a trial
has no skeleton there). ``meta['crop']`` records the mode, the intrinsics, how many
trials fell back to the centre crop and the fraction of all joints of all frames that
project inside their trial's box (the throw must stay inside).
"""

from dataclasses import asdict
import errno
import json
import multiprocessing
import os
from pathlib import Path
import shutil
from typing import Any, Dict, Iterable, List, Optional, Protocol, Sequence, Tuple, Union

import numpy as np

from pitch_predictor.data.layout import DatasetError
from pitch_predictor.kinect import FRAMES_PER_TRIAL, NUM_JOINTS
from pitch_predictor.start_detector import StartDetectorConfig
from pitch_predictor.window import trial_start

FORMAT_VERSION = 2  # 2: intended.npy (the block aimed at)
_ARRAYS = ('frames', 'joints', 'labels', 'intended', 'participants', 'trial_index',
           'true_start', 'start', 'start_found')


class CacheError(RuntimeError):
    """A cache folder is missing, incomplete or inconsistent (the message names the file)."""


_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # disk full, quota, file size limit


def open_array_for_writing(path: Union[str, Path], dtype, shape: Tuple[int, ...]) -> np.ndarray:
    """
    Create the ``.npy`` file ``path`` of ``shape`` and return it memory-mapped for writing.

    Its disk blocks are reserved first (``posix_fallocate``): a memory map onto a sparse
    file kills the process with SIGBUS ("Bus error", no traceback) when the disk fills up
    mid-write; a full disk here raises ``CacheError`` naming the space needed and free,
    before any work. The file is removed when there is no room.
    """
    path = Path(path)
    np.lib.format.open_memmap(path, mode='w+', dtype=dtype, shape=tuple(shape)).flush()
    size = path.stat().st_size  # header and data: a sparse file so far
    allocate = getattr(os, 'posix_fallocate', None)  # not on macOS or Windows
    if allocate is not None:
        try:
            with open(path, 'r+b') as handle:
                allocate(handle.fileno(), 0, size)
        except OSError as err:
            if err.errno not in _NO_ROOM:  # e.g. a filesystem that cannot reserve: as before
                return np.load(path, mmap_mode='r+')
            path.unlink(missing_ok=True)
            free = shutil.disk_usage(path.parent).free
            raise CacheError(f'{path}: no room on the disk for {size / 1e9:.2f} GB '
                             f'({free / 1e9:.2f} GB free under {path.parent}): '
                             f'{err.strerror}; free some space or write elsewhere') from err
    return np.load(path, mmap_mode='r+')


class TrialCache:
    """A cache folder opened read-only and memory-mapped (see the module doc)."""

    def __init__(self, folder: Union[str, Path]):
        self.folder = Path(folder)
        meta_path = self.folder / 'meta.json'
        if not meta_path.exists():
            raise CacheError(f'{meta_path}: not a TrialCache folder (no meta.json); build one '
                             f'with `pitch-sim cache`')
        try:
            self.meta = json.loads(meta_path.read_text())
        except ValueError as err:
            raise CacheError(f'{meta_path}: unreadable ({err})') from err
        if self.meta.get('format_version') != FORMAT_VERSION:
            raise CacheError(f'{meta_path}: format_version {self.meta.get("format_version")}, '
                             f'this code reads {FORMAT_VERSION} (version 2 added '
                             f'intended.npy): rebuild the cache with `pitch-sim cache`')
        for name in _ARRAYS:
            path = self.folder / f'{name}.npy'
            try:
                setattr(self, name, np.load(path, mmap_mode='r'))
            except (OSError, ValueError) as err:
                raise CacheError(f'{path}: missing or unreadable ({err})') from err
        n = len(self.labels)
        for name in _ARRAYS:
            if len(getattr(self, name)) != n:
                raise CacheError(f'{self.folder / (name + ".npy")}: {len(getattr(self, name))} '
                                 f'rows, labels.npy has {n}')
        boxes = self.folder / 'crop_box.npy'  # optional: caches built before issue 13 lack it
        self.crop_box = np.load(boxes) if boxes.exists() else None
        from pitch_predictor.models.preprocessing import PreprocessConfig
        self.preprocess = PreprocessConfig.from_dict(self.meta['preprocess'])
        self.participant_names: List[str] = list(self.meta['participant_names'])
        self.trial_ids: List[str] = list(self.meta['trial_ids'])

    def __len__(self) -> int:
        """Return the number of trials."""
        return len(self.labels)

    @property
    def blocks(self) -> np.ndarray:
        """Return the blocks hit 1..9 (labels + 1)."""
        return np.asarray(self.labels) + 1

    @property
    def is_miss_set(self) -> bool:
        """Return True when some trial hit another block than the one aimed at."""
        return bool(np.any(np.asarray(self.intended) != self.blocks))

    def participant_of(self, i: int) -> str:
        """Return the participant name of trial ``i``."""
        return self.participant_names[int(self.participants[i])]


def paper_split(cache: TrialCache, test_per_group: int = 2,
                seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """
    Return (train, test) indices: per participant and block, ``test_per_group`` to test.

    The test trials of each group are drawn with a generator seeded by ``seed`` (the paper
    does not say which two; 8/2 of 10 gives 432/108 on the full set).
    """
    rng = np.random.default_rng(seed)
    parts = np.asarray(cache.participants)
    labels = np.asarray(cache.labels)
    order = np.asarray(cache.trial_index)
    test = []
    for p in np.unique(parts):
        for c in np.unique(labels[parts == p]):
            group = np.flatnonzero((parts == p) & (labels == c))
            group = group[np.argsort(order[group], kind='stable')]
            test.extend(group[rng.permutation(len(group))[:test_per_group]].tolist())
    test_idx = np.array(sorted(test), dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx).astype(np.int64)
    return train_idx, test_idx


def lopo_splits(cache: TrialCache) -> List[Tuple[str, np.ndarray, np.ndarray]]:
    """Return leave-one-participant-out folds: ``[(participant, train_idx, test_idx)]``."""
    parts = np.asarray(cache.participants)
    folds = []
    for p in np.unique(parts):
        test_idx = np.flatnonzero(parts == p).astype(np.int64)
        train_idx = np.flatnonzero(parts != p).astype(np.int64)
        folds.append((cache.participant_names[int(p)], train_idx, test_idx))
    return folds


def _crop_trial(args: Tuple['CacheTrial', object, object]) -> Tuple[
        np.ndarray, np.ndarray, int, Tuple[int, int, int], bool, Tuple[int, int]]:
    from pitch_predictor.models.preprocessing import (
        CameraIntrinsics, crop_frames, joints_inside, trial_crop_box)
    trial, preprocess, intrinsics = args
    frames, joints, true_start = trial.load()
    height, width = frames.shape[1:3]
    intrinsics = intrinsics or CameraIntrinsics.kinect_v2_color(width, height)
    box, from_skeleton = trial_crop_box(joints, width, height, preprocess, intrinsics)
    return (crop_frames(frames, preprocess, box), joints, true_start, box, from_skeleton,
            joints_inside(joints, box, intrinsics))


def _pool_map(func, jobs: Sequence, workers: int) -> Iterable:
    if workers <= 1 or len(jobs) <= 1:
        return map(func, jobs)
    ctx = multiprocessing.get_context('fork' if os.name == 'posix' else 'spawn')
    pool = ctx.Pool(workers)

    def run():
        try:
            yield from pool.imap(func, jobs, chunksize=1)
        finally:
            pool.terminate()
    return run()


class CacheTrial(Protocol):
    """
    A trial as :func:`build_cache` takes it: its row, and ``load()`` for its data.

    ``data.layout.TrialRecord`` (from ``scan_dataset``) reads a layout folder;
    ``sim.generator.PlannedTrial`` (from ``planned_trials``) renders a generated trial.
    ``load()`` runs in the worker processes: the object must pickle.
    """

    trial_id: str
    block: int  # the block hit (label + 1)
    participant: str
    trial_index: int
    intended_block: int

    def load(self) -> Tuple[np.ndarray, np.ndarray, int]:
        """Return RGB frames (90, H, W, 3) uint8, joints (90, 25, 3), true start or -1."""


def build_cache(trials: Iterable[CacheTrial], out_dir: Union[str, Path], preprocess, *,
                source: Optional[Dict[str, Any]] = None,
                detector: Optional[StartDetectorConfig] = None, workers: int = 2,
                progress: bool = True, intrinsics: Any = None) -> TrialCache:
    """
    Build a cache in ``out_dir`` of ``trials``, one row each, in the order given.

    ``trials``: e.g. ``data.layout.scan_dataset(root)`` (a dataset or a miss set) or
    ``sim.generator.planned_trials(cfg, misses)``; both list the trials by participant,
    block, trial index. ``source``: plain data describing where they come from (stored in
    ``meta.json``: ``data.layout.layout_source(root)``, or the generator's config).
    ``preprocess``: a ``PreprocessConfig``; frames go through its ``crop_frames``, in
    ``workers`` processes, cropped to ``trial_crop_box`` (the centre square, or with
    ``crop_mode='skeleton'`` a box around the pitcher from the joints projected with
    ``intrinsics``, a ``CameraIntrinsics``; default: the Kinect V2 colour camera's at the
    frames' size). Writes into a temporary folder and renames it at the end, so a
    half-built cache is never mistaken for a good one.
    """
    from tqdm import tqdm

    trials = list(trials)
    detector = detector or StartDetectorConfig()
    out_dir = Path(out_dir)
    if not trials:
        raise DatasetError(f'{out_dir}: no trials to cache')
    tmp = out_dir.with_name(out_dir.name + '.partial')
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    names = sorted({t.participant for t in trials})
    rows = [(t.trial_id, t.block, names.index(t.participant), t.trial_index,
             t.intended_block) for t in trials]
    n = len(rows)
    size = preprocess.stored_size
    try:
        frames = open_array_for_writing(tmp / 'frames.npy', np.uint8,
                                        (n, FRAMES_PER_TRIAL, size, size, 3))
    except CacheError:
        shutil.rmtree(tmp)
        raise
    joints = np.zeros((n, FRAMES_PER_TRIAL, NUM_JOINTS, 3), np.float32)
    true_start = np.full(n, -1, np.int64)
    start = np.zeros(n, np.int64)
    found = np.zeros(n, bool)
    boxes = np.zeros((n, 3), np.int64)
    from_skeleton = np.zeros(n, bool)
    inside = np.zeros((n, 2), np.int64)  # joints inside the box, joints that project
    bar = tqdm(total=n, desc=f'cache {size}px', unit='trial', disable=None if progress else True)
    jobs = [(t, preprocess, intrinsics) for t in trials]
    for i, (crops, trial_joints, onset, box, skeleton, counts) in enumerate(
            _pool_map(_crop_trial, jobs, workers)):
        frames[i], joints[i] = crops, trial_joints
        boxes[i], from_skeleton[i], inside[i] = box, skeleton, counts
        true_start[i] = -1 if onset is None else int(onset)
        start[i], found[i] = trial_start(crops, trial_joints, detector)
        bar.update(1)
    bar.close()
    frames.flush()
    del frames
    np.save(tmp / 'joints.npy', joints)
    np.save(tmp / 'labels.npy', np.array([r[1] - 1 for r in rows], np.int64))
    np.save(tmp / 'intended.npy', np.array([r[4] for r in rows], np.int64))
    np.save(tmp / 'participants.npy', np.array([r[2] for r in rows], np.int64))
    np.save(tmp / 'trial_index.npy', np.array([r[3] for r in rows], np.int64))
    np.save(tmp / 'true_start.npy', true_start)
    np.save(tmp / 'start.npy', start)
    np.save(tmp / 'start_found.npy', found)
    np.save(tmp / 'crop_box.npy', boxes)
    tracked = inside[:, 1] > 0  # trials with joints to count
    per_trial = inside[tracked, 0] / inside[tracked, 1]
    crop = {
        'mode': preprocess.crop_mode,
        'intrinsics': None if intrinsics is None else asdict(intrinsics),
        'intrinsics_default': 'Kinect V2 colour, nominal, scaled to the frame size',
        'skeleton_boxes': int(from_skeleton.sum()),
        'centre_fallbacks': int((~from_skeleton).sum()) if preprocess.crop_mode == 'skeleton'
        else 0,
        'joints_inside': float(inside[:, 0].sum() / max(1, inside[:, 1].sum())),
        # Over the trials with a skeleton (the others have no joints to count).
        'trials_all_joints_inside': float(np.mean(per_trial == 1.0)) if tracked.any() else None,
        'worst_trial_joints_inside': float(per_trial.min()) if tracked.any() else None,
        'side_px': [int(boxes[:, 2].min()), int(np.median(boxes[:, 2])),
                    int(boxes[:, 2].max())],
    }
    meta = {
        'format_version': FORMAT_VERSION,
        'participant_names': names,
        'trial_ids': [r[0] for r in rows],
        'preprocess': preprocess.to_dict() if hasattr(preprocess, 'to_dict')
        else asdict(preprocess),
        'detector': asdict(detector),
        'source': dict(source or {}),
        'crop': crop,
    }
    (tmp / 'meta.json').write_text(json.dumps(meta, indent=1))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return TrialCache(out_dir)
