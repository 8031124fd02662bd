"""
Training-time augmentation of raw Kinect joints: new people, new camera placements.

Applied by ``ClipDataset`` to one clip's joints ``(T, 25, 3)`` (camera space, metres,
x to the sensor's left, y up, z away from it; NaN = missing) before the model sees
them, with a generator seeded by (seed, epoch, trial): the same clip on every run, in
any loader worker, after a resume. Every transform is off at its default 0; the config
key ``joint_augment`` (a dict) switches each on:

- ``scale`` s: body size, a factor from U(1 - s, 1 + s) about the pitcher's SpineBase
  (bone lengths scale by it; e.g. 0.1);
- ``rotate_deg`` a: the pitcher's heading, a rotation from U(-a, a) degrees about the
  vertical axis through the SpineBase (bone lengths kept; e.g. 10);
- ``camera_height`` h: the sensor higher or lower by U(-h, h) metres (every joint's y
  shifts by the opposite; e.g. 0.1);
- ``camera_tilt_deg`` a: the sensor pitched by U(-a, a) degrees (a rotation of every
  joint about the camera's x axis, through the camera; e.g. 3);
- ``noise_mm`` sigma: Gaussian noise of sigma millimetres on every coordinate (e.g. 5);
- ``drop_joints`` p: each joint of each frame missing (NaN) with probability p;
- ``drop_frames`` p: each whole frame missing (NaN) with probability p;
- ``tempo`` r: the pitch faster or slower, the window resampled in time by a factor from
  U(1 - r, 1 + r) (e.g. 0.1): clip frame k of the window is read at k * factor.

The pivot of scale and rotation is the SpineBase of the clip's first frame that has it,
fixed for the clip, so the motion scales and turns as one body. Tempo: a joints-only
model reads the joints linearly interpolated at the resampled times (a NaN neighbour
gives NaN); a model with images reads the nearest frame, images and joints alike, so the
two streams stay in sync (see :func:`tempo_positions`). The spatial transforms only
change the joints, not the images (the images have their own augmentation).
"""

from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Mapping, Optional

import numpy as np
from pitch_predictor.kinect import JOINT_INDEX

SPINE_BASE = JOINT_INDEX['SpineBase']


@dataclass(frozen=True)
class JointAugmentConfig:
    """Strength of every joint transform; 0 switches it off (see the module docstring)."""

    scale: float = 0.0
    rotate_deg: float = 0.0
    camera_height: float = 0.0
    camera_tilt_deg: float = 0.0
    noise_mm: float = 0.0
    drop_joints: float = 0.0
    drop_frames: float = 0.0
    tempo: float = 0.0

    @classmethod
    def from_dict(cls, values: Optional[Mapping[str, Any]]) -> 'JointAugmentConfig':
        """Build from a config dict; unknown keys raise ``ValueError``."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f'joint_augment: unknown keys {unknown} (known: {sorted(known)})')
        config = cls(**{k: float(v) for k, v in values.items()})
        for name in ('drop_joints', 'drop_frames'):
            if not 0.0 <= getattr(config, name) < 1.0:
                raise ValueError(f'joint_augment.{name} must be in [0, 1)')
        if not 0.0 <= config.tempo < 1.0 or not 0.0 <= config.scale < 1.0:
            raise ValueError('joint_augment.tempo and .scale must be in [0, 1)')
        return config

    def to_dict(self) -> Dict[str, float]:
        """Return the plain dict."""
        return asdict(self)

    @property
    def spatial(self) -> bool:
        """Return True when any per-frame transform (not tempo) is on."""
        return any(getattr(self, f.name) > 0 for f in fields(self) if f.name != 'tempo')


def pivot(joints: np.ndarray) -> Optional[np.ndarray]:
    """Return the SpineBase of the clip's first frame that has it, None if none has."""
    spine = joints[:, SPINE_BASE]
    present = np.flatnonzero(~np.isnan(spine).any(axis=1))
    return None if len(present) == 0 else spine[present[0]].astype(np.float64)


def rotation_about_vertical(degrees: float) -> np.ndarray:
    """Return the 3x3 rotation about the y (up) axis."""
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_about_x(degrees: float) -> np.ndarray:
    """Return the 3x3 rotation about the camera's x axis (a tilt of the sensor)."""
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def augment_joints(joints: np.ndarray, config: JointAugmentConfig,
                   rng: np.random.Generator) -> np.ndarray:
    """Return a transformed copy of one clip's joints ``(T, 25, 3)`` (float32, NaN kept)."""
    out = np.array(joints, dtype=np.float64)
    centre = pivot(out)
    if centre is not None and (config.scale > 0 or config.rotate_deg > 0):
        factor = rng.uniform(1.0 - config.scale, 1.0 + config.scale) if config.scale else 1.0
        angle = rng.uniform(-config.rotate_deg, config.rotate_deg) if config.rotate_deg \
            else 0.0
        out = centre + factor * (out - centre) @ rotation_about_vertical(angle).T
    if config.camera_height > 0:
        out[..., 1] -= rng.uniform(-config.camera_height, config.camera_height)
    if config.camera_tilt_deg > 0:
        tilt = rng.uniform(-config.camera_tilt_deg, config.camera_tilt_deg)
        out = out @ rotation_about_x(tilt).T
    if config.noise_mm > 0:
        out = out + rng.normal(0.0, config.noise_mm / 1000.0, out.shape)
    if config.drop_joints > 0:
        out[rng.random(out.shape[:2]) < config.drop_joints] = np.nan
    if config.drop_frames > 0:
        out[rng.random(out.shape[0]) < config.drop_frames] = np.nan
    return out.astype(np.float32)


def draw_tempo(config: JointAugmentConfig, rng: np.random.Generator) -> float:
    """Return the clip's tempo factor (1.0 when tempo is off)."""
    return float(rng.uniform(1.0 - config.tempo, 1.0 + config.tempo)) if config.tempo > 0 \
        else 1.0


def tempo_positions(indices: np.ndarray, factor: float, start: int, frames: int
                    ) -> np.ndarray:
    """
    Return the trial-frame times (float) at which clip frames ``indices`` are read.

    ``indices`` are window positions (0 = the detected start ``start``); the window is
    stretched about its start: position k is read at ``start + k * factor``, kept inside
    the trial's ``frames`` frames.
    """
    return np.clip(start + np.asarray(indices, dtype=np.float64) * factor, 0.0, frames - 1)


def interpolate_joints(trial_joints: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Return joints at fractional frame ``times``: linear between the two neighbours."""
    low = np.floor(times).astype(np.int64)
    high = np.minimum(low + 1, len(trial_joints) - 1)
    weight = (times - low)[:, None, None]
    a = np.asarray(trial_joints[low], dtype=np.float64)
    b = np.asarray(trial_joints[high], dtype=np.float64)
    # A frame read exactly is copied (NaN there stays NaN, a NaN neighbour never leaks in).
    mixed = np.where(weight == 0.0, a, (1.0 - weight) * a + weight * b)
    return mixed.astype(np.float32)
