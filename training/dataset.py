"""
Training clips from the memory-mapped TrialCache: uint8 in, no decoding, no PIL.

Every trial was decoded and cropped once when the cache was built (``crop_frames``);
a training sample is a fancy-index into the memory map (T frames of the detected
40-frame window, picked by ``train_clip_indices``), returned as a uint8 tensor. The
augmentation (``train_transform``) then runs on the whole batch, on the GPU if there
is one. Joints (joints-only and two-stream models) are the raw camera-space joints of
the same sampled frames, augmented per clip by ``training.joint_augment`` when the
config asks for it.
"""

from typing import Any, Optional, Sequence, Tuple, TYPE_CHECKING

import numpy as np
from pitch_predictor.kinect import WINDOW
from pitch_predictor.models.preprocessing import PreprocessConfig, train_transform
from pitch_predictor.models.sampling import train_clip_indices
from pitch_predictor.window import clamp_window_start
import torch
from torch.utils.data import Dataset
from training.joint_augment import (
    augment_joints, draw_tempo, interpolate_joints, JointAugmentConfig, tempo_positions)

if TYPE_CHECKING:  # only for annotations
    from pitch_predictor.data.cache import TrialCache


def window_start(cache: 'TrialCache', trial: int, window: int = WINDOW) -> int:
    """Return the first frame of the trial's action window (detected start, kept in range)."""
    return clamp_window_start(int(cache.start[trial]), window)


def window_frames(cache: 'TrialCache', trials: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """Return the uint8 crops of every trial's window: (n, window, S, S, 3)."""
    return np.stack([
        np.asarray(cache.frames[t, window_start(cache, t, window):][:window]) for t in trials
    ])


def window_joints(cache: 'TrialCache', trials: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """Return the joints of every trial's window: (n, window, 25, 3) float32."""
    return np.stack([
        np.asarray(cache.joints[t, window_start(cache, t, window):][:window], dtype=np.float32)
        for t in trials
    ])


class ClipDataset(Dataset):
    """
    One training clip per trial and epoch: ``(clip, label, trial)``.

    ``clip`` is uint8 ``(T, S, S, 3)`` for ``kind='rgb'``, float32 joints ``(T, 25, 3)``
    for ``kind='joints'``, and the pair ``(frames, joints)`` of the same sampled frames for
    ``kind='rgb+joints'``. The clip's frames are drawn by ``train_clip_indices``, and the
    joints augmented by ``joint_augment`` (training.joint_augment, off by default), from
    a generator seeded by (seed, epoch, trial): the same sample on every run, any number
    of workers, and after a resume.
    """

    def __init__(self, cache_dir: str, trials: np.ndarray, sampling_method: int, *,
                 kind: str = 'rgb', seed: int = 0, window: int = WINDOW,
                 joint_augment: Optional[JointAugmentConfig] = None) -> None:
        if kind not in ('rgb', 'joints', 'rgb+joints'):
            raise ValueError(f'kind must be "rgb", "joints" or "rgb+joints", got {kind!r}')
        self.cache_dir = str(cache_dir)
        self.trials = np.asarray(trials, dtype=np.int64)
        self.sampling_method = int(sampling_method)
        self.kind = kind
        self.seed = int(seed)
        self.window = int(window)
        self.joint_augment = joint_augment or JointAugmentConfig()
        self.epoch = 0
        self._cache: Optional[TrialCache] = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose clips ``__getitem__`` draws."""
        self.epoch = int(epoch)

    @property
    def cache(self) -> 'TrialCache':
        """Return the memory-mapped cache, opened lazily once per worker process."""
        if self._cache is None:
            from pitch_predictor.data.cache import TrialCache
            self._cache = TrialCache(self.cache_dir)
        return self._cache

    def __getstate__(self) -> dict:
        # Workers reopen the memory map instead of receiving a pickled copy of it.
        state = dict(self.__dict__)
        state['_cache'] = None
        return state

    def __len__(self) -> int:
        return len(self.trials)

    def __getitem__(self, item: int) -> Tuple[Any, int, int]:
        trial = int(self.trials[item])
        rng = np.random.default_rng([self.seed, self.epoch, trial])
        start = window_start(self.cache, trial, self.window)
        positions = train_clip_indices(self.sampling_method, rng, self.window)
        label = int(self.cache.labels[trial])
        augment = self.joint_augment
        # Drawn after the clip, from the same generator: without joint augmentation the
        # clips are those of earlier versions.
        factor = draw_tempo(augment, rng)
        times = tempo_positions(positions, factor, start, self.cache.frames.shape[1])
        # Images and a two-stream model's joints: the nearest frame (in sync); a joints-only
        # model: joints interpolated at the resampled times.
        frames = np.rint(times).astype(np.int64) if factor != 1.0 else start + positions
        joints = None
        if self.kind != 'rgb':
            if self.kind == 'joints' and factor != 1.0:
                joints = interpolate_joints(self.cache.joints[trial], times)
            else:
                joints = np.asarray(self.cache.joints[trial, frames], dtype=np.float32)
            if augment.spatial:
                joints = augment_joints(joints, augment, rng)
            joints = torch.from_numpy(np.ascontiguousarray(joints))
        if self.kind == 'joints':
            return joints, label, trial
        images = torch.from_numpy(np.ascontiguousarray(self.cache.frames[trial, frames]))
        if self.kind == 'rgb+joints':
            return (images, joints), label, trial
        return images, label, trial


def augment_batch(clips: torch.Tensor, trials: Sequence[int], preprocess: PreprocessConfig,
                  seed: int, epoch: int) -> torch.Tensor:
    """
    Run ``train_transform`` on a uint8 batch with a generator seeded by its trials.

    The seed depends on (seed, epoch, the batch's trials) only, so the augmentation is the
    same wherever it runs (loader worker or main process) and after a resume.
    """
    state = np.random.SeedSequence([seed, epoch, *[int(t) for t in trials]])
    generator = torch.Generator().manual_seed(int(state.generate_state(1, np.uint64)[0] >> 1))
    return train_transform(clips, preprocess, generator)


class ClipCollate:
    """
    Stack ``ClipDataset`` items into ``(clips, labels, trials)``; optionally augment there.

    With ``augment=True`` the batched ``train_transform`` runs inside the DataLoader
    worker, in parallel with the training step (the CPU path: it keeps a second core
    busy). On a GPU the main process augments the batch on the device instead.
    """

    def __init__(self, preprocess: Optional[PreprocessConfig], seed: int, augment: bool) -> None:
        self.preprocess = preprocess
        self.seed = int(seed)
        self.augment = bool(augment)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation ``__call__`` draws."""
        self.epoch = int(epoch)

    def __call__(self, items: Sequence[Tuple[Any, int, int]]
                 ) -> Tuple[Any, torch.Tensor, torch.Tensor]:
        """Return the stacked (and, if asked, augmented) batch; pairs stay pairs."""
        labels = torch.tensor([item[1] for item in items], dtype=torch.int64)
        trials = torch.tensor([item[2] for item in items], dtype=torch.int64)
        paired = isinstance(items[0][0], tuple)
        frames = torch.stack([item[0][0] if paired else item[0] for item in items])
        if self.augment:
            frames = augment_batch(frames, trials.tolist(), self.preprocess, self.seed,
                                   self.epoch)
        if paired:
            return (frames, torch.stack([item[0][1] for item in items])), labels, trials
        return frames, labels, trials
