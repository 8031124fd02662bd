"""
A whole trial's action window: its start frame, with the fallback, and its clamping.

The cache builder calls :func:`trial_start` once per trial (stored as ``start.npy`` and
``start_found.npy``); training, evaluation and the perturbation studies take the window
from :func:`clamp_window_start` of that start. No torch, no ROS.

- Start: the paper's detector (:func:`pitch_predictor.start_detector.detect_start`).
  When it finds none, the fallback is the first frame from ``min_start_index`` on whose
  joint distance to the reference frame reaches ``delta_joints`` (condition c alone),
  else ``min_start_index``; ``found`` is then False.
- Clamping: a window of ``window`` frames starts at ``min(max(start, 0), frames -
  window)``: a detector that fired late still yields a full window, the trial's last
  frames, which hold the end of the pitch.
"""

from typing import Tuple

import numpy as np
from pitch_predictor.kinect import FRAMES_PER_TRIAL, WINDOW
from pitch_predictor.start_detector import (
    detect_start, distances, image_signature, StartDetectorConfig, StartNotFound)


def fallback_start(dtheta: np.ndarray, cfg: StartDetectorConfig) -> int:
    """Return the start when the detector finds none, from the joint distances ``(T,)``."""
    later = np.flatnonzero(np.asarray(dtheta)[cfg.min_start_index:] >= cfg.delta_joints)
    return int(later[0]) + cfg.min_start_index if len(later) else cfg.min_start_index


def trial_start(crops: np.ndarray, joints: np.ndarray,
                cfg: StartDetectorConfig) -> Tuple[int, bool]:
    """Return (start frame, found): the detector's start, or :func:`fallback_start`."""
    sigs = np.stack([image_signature(c, cfg) for c in crops])
    try:
        return detect_start(sigs, joints, cfg), True
    except StartNotFound:
        _, dtheta = distances(sigs, joints, cfg.reference_index)
        return fallback_start(dtheta, cfg), False


def clamp_window_start(start: int, window: int = WINDOW,
                       frames: int = FRAMES_PER_TRIAL) -> int:
    """Return the first frame of a ``window``-frame window at ``start`` inside ``frames``."""
    if not 0 < window <= frames:
        raise ValueError(f'a window of {window} frames does not fit a trial of {frames}')
    return min(max(int(start), 0), frames - window)
