"""The cache builder's crop modes: the skeleton-guided crop and its centre fallback."""

from dataclasses import dataclass, replace

import numpy as np
from pitch_predictor.data.cache import build_cache, TrialCache
from pitch_predictor.kinect import FRAMES_PER_TRIAL
from pitch_predictor.models.preprocessing import (
    CameraIntrinsics, crop_frames, fast_preprocess)
from pitch_predictor.sim.cli import main as pitch_sim
import pytest

KINECT_360 = CameraIntrinsics.kinect_v2_color(640, 360)


def joints_at(pixels, z=3.0):
    """Camera-space points at depth ``z`` that project to ``pixels`` (..., 2)."""
    pixels = np.asarray(pixels, dtype=np.float64)
    x = (KINECT_360.cx - pixels[..., 0]) * z / KINECT_360.fx
    y = (KINECT_360.cy - pixels[..., 1]) * z / KINECT_360.fy
    return np.stack([x, y, np.full_like(x, z)], -1).astype(np.float32)


@dataclass
class FakeTrial:
    """A trial whose joints span pixels u 300..340, v 120..220 (NaN: no skeleton)."""

    trial_id: str
    block: int
    participant: str
    trial_index: int
    intended_block: int
    skeleton: bool = True
    raise_hand: bool = False

    def load(self):
        rng = np.random.default_rng(self.trial_index)
        frames = rng.integers(0, 256, (FRAMES_PER_TRIAL, 360, 640, 3), dtype=np.uint8)
        pixels = np.stack([np.linspace(300, 340, 25), np.linspace(220, 120, 25)], -1)
        joints = np.repeat(joints_at(pixels)[None], FRAMES_PER_TRIAL, axis=0)
        if self.raise_hand:  # joint 24 leaves the box (top edge 91) in the last 10 frames
            joints[-10:, 24] = joints_at([[330.0, 60.0]])[0]
        if not self.skeleton:
            joints[:] = np.nan
        return frames, joints, 20


def test_skeleton_cache_crops_each_trial_around_its_pitcher(tmp_path):
    trials = [FakeTrial('a', 1, 'P1', 0, 1), FakeTrial('b', 2, 'P1', 1, 2, raise_hand=True),
              FakeTrial('c', 3, 'P1', 2, 3, skeleton=False)]
    cfg = replace(fast_preprocess(), crop_mode='skeleton')
    cache = build_cache(trials, tmp_path / 'cache', cfg, workers=1, progress=False)
    # Height 100 px: side 150, centre (325, 165) -> (251, 91); no skeleton: the centre crop.
    assert cache.crop_box.tolist() == [[251, 91, 150], [251, 91, 150], [200, 60, 240]]
    assert cache.preprocess.crop_mode == 'skeleton'
    crop = cache.meta['crop']
    assert crop['mode'] == 'skeleton'
    assert (crop['skeleton_boxes'], crop['centre_fallbacks']) == (2, 1)
    # 2 x 90 x 25 joints project, 10 of them above the box.
    assert crop['joints_inside'] == pytest.approx(1 - 10 / (2 * 90 * 25))
    assert crop['trials_all_joints_inside'] == 0.5  # of the 2 trials with a skeleton
    assert crop['worst_trial_joints_inside'] == pytest.approx(1 - 10 / (90 * 25))
    assert crop['side_px'] == [150, 150, 240]
    frames = trials[0].load()[0]
    assert np.array_equal(cache.frames[0], crop_frames(frames, cfg, (251, 91, 150)))
    frames = trials[2].load()[0]
    assert np.array_equal(cache.frames[2], crop_frames(frames, fast_preprocess()))


def test_centre_cache_is_unchanged_and_records_its_mode(tmp_path):
    trials = [FakeTrial('a', 1, 'P1', 0, 1)]
    cache = build_cache(trials, tmp_path / 'cache', fast_preprocess(), workers=1,
                        progress=False)
    assert cache.crop_box.tolist() == [[200, 60, 240]]
    assert cache.meta['crop']['mode'] == 'centre'
    assert cache.meta['crop']['centre_fallbacks'] == 0
    assert np.array_equal(cache.frames[0], crop_frames(trials[0].load()[0], fast_preprocess()))
    # A cache of an older build (no crop_box.npy) still opens.
    (tmp_path / 'cache' / 'crop_box.npy').unlink()
    assert TrialCache(tmp_path / 'cache').crop_box is None


def test_cli_rejects_malformed_intrinsics(tmp_path, capsys):
    code = pitch_sim(['cache', '--crop', 'skeleton', '--intrinsics', '1,2,3',
                      '--out', str(tmp_path / 'c')])
    assert code == 2
    assert 'FX,FY,CX,CY' in capsys.readouterr().err
