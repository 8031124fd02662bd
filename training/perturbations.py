"""
The paper's robustness tests (Section V-F) as functions on test windows.

- Frame-rate error: take ``40 + extra`` frames from the start frame and delete
  ``extra`` of them at random, leaving 40 (``extra`` = 1..5, about -10 % frame rate).
- Missing frames: ``count`` of the 40 normalised frames become zero tensors.
- Position error: the person moves ``pixels`` off centre (pixels of the 240 crop),
  left or right at random; the uncovered border repeats the edge pixels.
"""

from typing import Callable, TYPE_CHECKING

import numpy as np
from pitch_predictor.kinect import FRAMES_PER_TRIAL, WINDOW
from pitch_predictor.models.preprocessing import PreprocessConfig
import torch
import torch.nn.functional as F
from training.dataset import window_start

if TYPE_CHECKING:  # only for annotations
    from pitch_predictor.data.cache import TrialCache


def frame_rate_windows(cache: 'TrialCache', trials: np.ndarray, extra: int,
                       rng: np.random.Generator, window: int = WINDOW) -> np.ndarray:
    """Return uint8 windows (n, window, S, S, 3): ``window + extra`` frames minus ``extra``."""
    span = window + int(extra)
    if span > FRAMES_PER_TRIAL:
        raise ValueError(f'frame-rate error needs {span} frames, a trial has '
                         f'{FRAMES_PER_TRIAL}')
    out = []
    for trial in trials:
        # The start may sit so late that 40 + extra frames do not fit: move it back.
        first = window_start(cache, int(trial), span)
        keep = np.sort(rng.choice(span, size=window, replace=False))
        out.append(np.asarray(cache.frames[int(trial), first:first + span])[keep])
    return np.stack(out)


def missing_frames(count: int, rng: np.random.Generator,
                   ) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return a perturbation that zeroes ``count`` random frames of every window."""
    def perturb(windows: torch.Tensor) -> torch.Tensor:
        windows = windows.clone()
        for i in range(windows.shape[0]):
            drop = rng.choice(windows.shape[1], size=int(count), replace=False)
            windows[i, torch.as_tensor(drop)] = 0.0
        return windows
    return perturb


def position_shift(pixels: float, preprocess: PreprocessConfig, rng: np.random.Generator,
                   ) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return a perturbation moving every window ``pixels`` (240-crop pixels) sideways."""
    def perturb(windows: torch.Tensor) -> torch.Tensor:
        n, t, c, h, w = windows.shape
        signs = torch.as_tensor(rng.choice([-1.0, 1.0], size=n), dtype=windows.dtype)
        # affine_grid works in [-1, 1] coordinates: a crop width is 2 units.
        shift = 2.0 * float(pixels) / preprocess.crop_size * signs
        theta = torch.zeros(n, 2, 3, dtype=windows.dtype)
        theta[:, 0, 0] = 1.0
        theta[:, 1, 1] = 1.0
        theta[:, 0, 2] = -shift  # sampling from x - d moves the content by +d
        theta = theta.to(windows.device).repeat_interleave(t, dim=0)
        frames = windows.reshape(n * t, c, h, w)
        grid = F.affine_grid(theta, list(frames.shape), align_corners=False)
        moved = F.grid_sample(frames, grid, mode='bilinear', padding_mode='border',
                              align_corners=False)
        return moved.reshape(n, t, c, h, w)
    return perturb
