"""A trial's action window: the start fallback and the clamping, exact at the edges."""

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
from pitch_predictor.start_detector import StartDetectorConfig
from pitch_predictor.window import clamp_window_start, fallback_start, trial_start
import pytest

CFG = StartDetectorConfig()  # min_start_index 10, delta_joints 0.16, reference 9


@pytest.mark.parametrize('start, window, expected', [
    (-5, 40, 0), (0, 40, 0), (37, 40, 37), (50, 40, 50), (51, 40, 50), (89, 40, 50),
    (1000, 40, 50), (0, 90, 0), (30, 90, 0), (89, 1, 89), (90, 1, 89), (45, 45, 45),
    (46, 45, 45)])
def test_clamp_window_start(start, window, expected):
    first = clamp_window_start(start, window)
    assert first == expected
    assert first >= 0 and first + window <= 90


@pytest.mark.parametrize('window', [0, -1, 91])
def test_clamp_refuses_a_window_that_does_not_fit(window):
    with pytest.raises(ValueError, match='does not fit'):
        clamp_window_start(10, window)


def dtheta(**values):
    out = np.zeros(90)
    for key, value in values.items():
        out[int(key[1:])] = value
    return out


@pytest.mark.parametrize('distances, expected', [
    (dtheta(), 10),                          # no frame moves: min_start_index
    (dtheta(t5=0.5), 10),                    # before min_start_index: ignored
    (dtheta(t10=0.2), 10),                   # min_start_index itself counts
    (dtheta(t14=0.16), 14),                  # exactly delta_joints counts (>=)
    (dtheta(t20=0.159, t21=0.17), 21),       # just below does not
    (dtheta(t89=0.3), 89),                   # the last frame
    (np.full(5, 1.0), 10),                   # shorter than min_start_index
])
def test_fallback_start(distances, expected):
    assert fallback_start(distances, CFG) == expected


def trial(grey, moved_from):
    """Uniform grey crops (one level per frame) and joints that jump 0.2 m at a frame."""
    crops = np.repeat(np.asarray(grey, np.uint8)[:, None, None, None], 96, 1)
    crops = np.repeat(np.repeat(crops, 96, 2), 3, 3)
    joints = np.zeros((90, 25, 3), np.float32)
    if moved_from is not None:
        joints[moved_from:, 0, 0] = 0.2
    return crops, joints


def brightening_from(frame):
    # dx to the reference: 96 * 5 (t - frame + 1) / 255 / 0.226 per step, 8.3 at the
    # first: >= delta_image 6, non-decreasing (constant once the grey saturates at 255).
    return np.minimum(100 + 5 * np.maximum(np.arange(90) - frame + 1, 0), 255)


def test_trial_start_detects_when_all_three_conditions_hold():
    assert trial_start(*trial(brightening_from(30), 30), CFG) == (30, True)
    # Joints move 5 frames after the image: condition c first holds at 35.
    assert trial_start(*trial(brightening_from(30), 35), CFG) == (35, True)


def test_trial_start_falls_back_on_the_joints_alone():
    still = np.full(90, 100)  # dx 0: condition a never holds
    assert trial_start(*trial(still, 23), CFG) == (23, False)
    assert trial_start(*trial(still, None), CFG) == (10, False)


def test_training_windows_use_the_same_clamp():
    from training.dataset import window_start
    cache = SimpleNamespace(start=np.array([-3, 0, 50, 51, 89]))
    assert [window_start(cache, t) for t in range(5)] == [0, 0, 50, 50, 50]
    # The perturbation study's longer spans (40 + extra frames) clamp the same way.
    assert [window_start(cache, t, 45) for t in range(5)] == [0, 0, 45, 45, 45]


def test_the_window_module_imports_no_torch_and_no_ros():
    code = ('import sys\nimport pitch_predictor.window\n'
            "print(sorted(m for m in ('torch', 'rclpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == '[]'
