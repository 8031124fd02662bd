"""Each joint augmentation does what it says, on a real cached skeleton clip."""

from pathlib import Path
import sys

import numpy as np
from pitch_predictor.data.cache import TrialCache
from pitch_predictor.kinect import BONES, JOINT_INDEX
from pitch_predictor.models.sampling import train_clip_indices
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `training` runs from the repo root; it is not installed

from training import train  # noqa: E402
from training.config import ConfigError  # noqa: E402
from training.dataset import ClipDataset, window_start  # noqa: E402
from training.joint_augment import (  # noqa: E402
    augment_joints, interpolate_joints, JointAugmentConfig, tempo_positions)

SPINE = JOINT_INDEX['SpineBase']
BONE_INDEX = np.array(BONES)  # (parent, child) joint indices


@pytest.fixture(scope='module')
def clip(tiny_cache) -> np.ndarray:
    """Return a real 40-frame window of joints (T, 25, 3), fully tracked."""
    cache = TrialCache(tiny_cache)
    start = window_start(cache, 0)
    joints = np.asarray(cache.joints[0, start:start + 40], dtype=np.float64)
    assert not np.isnan(joints).any()
    return joints


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    return np.linalg.norm(joints[:, BONE_INDEX[:, 0]] - joints[:, BONE_INDEX[:, 1]], axis=-1)


def heading(joints: np.ndarray) -> np.ndarray:
    """Horizontal angle (degrees) of the HipLeft -> HipRight vector per frame."""
    v = joints[:, JOINT_INDEX['HipRight']] - joints[:, JOINT_INDEX['HipLeft']]
    return np.degrees(np.arctan2(v[:, 2], v[:, 0]))


def run(joints, seed=0, **strengths):
    return augment_joints(joints, JointAugmentConfig(**strengths),
                          np.random.default_rng(seed)).astype(np.float64)


def test_rotation_turns_the_body_about_the_vertical_and_keeps_bone_lengths(clip):
    turns = []
    for seed in range(20):
        out = run(clip, seed, rotate_deg=10)
        np.testing.assert_allclose(bone_lengths(out), bone_lengths(clip), atol=1e-5)
        np.testing.assert_allclose(out[..., 1], clip[..., 1], atol=1e-5)  # heights kept
        np.testing.assert_allclose(out[0, SPINE], clip[0, SPINE], atol=1e-5)  # the pivot
        turn = heading(out) - heading(clip)
        assert np.ptp(turn) < 1e-3  # every frame turned by the same angle
        turns.append(turn[0])
    # Random draws (uniform in +-10 degrees): the bound is the rule, the spread only
    # shows the turn varies with the seed.
    assert max(np.abs(turns)) <= 10.0 + 1e-4 and np.std(turns) > 2.0


def test_scale_scales_every_bone_by_one_factor_about_the_spine_base(clip):
    factors = []
    for seed in range(20):
        out = run(clip, seed, scale=0.1)
        ratio = bone_lengths(out) / bone_lengths(clip)
        assert np.ptp(ratio) < 1e-4
        np.testing.assert_allclose(out[0, SPINE], clip[0, SPINE], atol=1e-5)
        factors.append(ratio.mean())
    # Random draws (uniform in 1 +- 0.1): the bounds are the rule, the spread shows they vary.
    assert min(factors) >= 0.9 - 1e-6 and max(factors) <= 1.1 + 1e-6
    assert np.std(factors) > 0.02


def test_camera_height_shifts_every_joint_vertically_by_one_amount(clip):
    out = run(clip, 3, camera_height=0.1)
    shift = out[..., 1] - clip[..., 1]
    # One random shift (uniform in +-0.1 m), the same for every joint and frame.
    assert np.ptp(shift) < 1e-5 and 0 < abs(shift.mean()) <= 0.1
    np.testing.assert_allclose(out[..., [0, 2]], clip[..., [0, 2]], atol=1e-6)


def test_camera_tilt_rotates_about_the_camera_x_axis(clip):
    out = run(clip, 4, camera_tilt_deg=3)
    np.testing.assert_allclose(out[..., 0], clip[..., 0], atol=1e-6)
    # Distances to the camera (the origin) and bone lengths are kept; heights change.
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(clip, axis=-1),
                               atol=1e-5)
    np.testing.assert_allclose(bone_lengths(out), bone_lengths(clip), atol=1e-5)
    angle = np.degrees(np.arctan2(out[..., 1], out[..., 2]) - np.arctan2(clip[..., 1],
                                                                         clip[..., 2]))
    # One random tilt (uniform in +-3 degrees), the same for every joint and frame.
    assert np.ptp(angle) < 1e-3 and 0 < abs(angle.mean()) <= 3.0


def test_noise_has_the_requested_millimetres(clip):
    out = run(clip, 5, noise_mm=4)
    error = (out - clip) * 1000.0
    # Sample moments of Gaussian noise: statistical (the clip's samples give the std
    # within about 0.1 mm; 0.3 leaves room).
    assert abs(error.std() - 4.0) < 0.3 and abs(error.mean()) < 0.3


def test_dropped_joints_and_frames_become_nan(clip):
    out = run(clip, 6, drop_joints=0.2)
    missing = np.isnan(out).any(axis=-1)
    assert np.isnan(out[missing]).all()  # a joint is missing as a whole
    assert abs(missing.mean() - 0.2) < 0.05  # a drawn fraction: statistical
    np.testing.assert_array_equal(out[~missing], clip[~missing].astype(np.float32))
    out = run(clip, 7, drop_frames=0.25)
    frames = np.isnan(out).reshape(len(out), -1)
    assert set(frames.all(axis=1) == frames.any(axis=1)) == {True}  # whole frames
    assert 0 < frames.all(axis=1).sum() < len(out)


def test_all_off_leaves_the_clip_alone_and_draws_are_seeded(clip):
    np.testing.assert_array_equal(run(clip), clip.astype(np.float32))
    strong = {'scale': 0.1, 'rotate_deg': 10, 'noise_mm': 3, 'drop_joints': 0.1}
    np.testing.assert_array_equal(run(clip, 1, **strong), run(clip, 1, **strong))
    assert not np.array_equal(run(clip, 1, **strong), run(clip, 2, **strong),
                              equal_nan=True)


def test_tempo_positions_and_interpolation_by_hand():
    np.testing.assert_allclose(tempo_positions(np.array([0, 4, 8]), 1.1, 10, 90),
                               [10.0, 14.4, 18.8])
    assert tempo_positions(np.array([39]), 1.1, 60, 90)[0] == 89.0  # kept inside the trial
    trial = np.arange(4 * 25 * 3, dtype=np.float32).reshape(4, 25, 3)
    trial[3, 2] = np.nan
    got = interpolate_joints(trial, np.array([0.0, 1.5, 2.25, 3.0]))
    np.testing.assert_allclose(got[0], trial[0])
    np.testing.assert_allclose(got[1], (trial[1] + trial[2]) / 2)
    np.testing.assert_allclose(got[2, 0], 0.75 * trial[2, 0] + 0.25 * trial[3, 0])
    assert np.isnan(got[2, 2]).all() and np.isnan(got[3, 2]).all()


def test_tempo_in_the_dataset(tiny_cache):
    cache = TrialCache(tiny_cache)
    config = JointAugmentConfig(tempo=0.1)
    trials = np.arange(6)
    joints = ClipDataset(str(tiny_cache), trials, 2, kind='joints', seed=1,
                         joint_augment=config)
    pairs = ClipDataset(str(tiny_cache), trials, 2, kind='rgb+joints', seed=1,
                        joint_augment=config)
    changed = 0
    for item, trial in enumerate(trials):
        # The clip's frames are drawn as without tempo (documented seeding: the clip's
        # generator is seeded by (seed, epoch, trial)); tempo stretches their times.
        positions = train_clip_indices(2, np.random.default_rng([1, 0, int(trial)]))
        start = window_start(cache, int(trial))
        got = joints[item][0].numpy()
        # Recover the factor by a search and check every frame with it.
        candidates = np.linspace(0.9, 1.1, 2001)
        errors = [np.nanmax(np.abs(interpolate_joints(
            np.asarray(cache.joints[trial]),
            tempo_positions(positions, f, start, 90)) - got)) for f in candidates]
        assert min(errors) < 1e-3  # 0.1 mm per 1e-4 of factor: the grid's resolution
        changed += abs(candidates[int(np.argmin(errors))] - 1.0) > 1e-3
        # The two-stream clip reads the nearest frames, images and joints alike.
        (frames, skeleton), _, _ = pairs[item]
        for frame, joint in zip(frames, skeleton.numpy()):
            index = [k for k in range(90) if np.array_equal(cache.joints[trial, k], joint)]
            assert any(torch.equal(frame, torch.from_numpy(np.array(cache.frames[trial, k])))
                       for k in index)
    assert changed >= 4


def test_unknown_augmentation_key_is_a_config_error(tiny_cache, tmp_path):
    with pytest.raises(ConfigError, match='unknown keys'):
        train.main(['--data', str(tiny_cache), '--out', str(tmp_path / 'x'),
                    'model=skeleton_gru', 'model_preset=fast', 'epochs=1', 'num_workers=0',
                    'joint_augment.spin=3'])
