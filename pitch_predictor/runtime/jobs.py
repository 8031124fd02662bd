"""What goes into one decision (:class:`DecisionJob`) and what comes out (:class:`Prediction`)."""

from dataclasses import dataclass, field
import time
from typing import Any, List

import numpy as np


@dataclass(frozen=True)
class Prediction:
    """
    One decision about one pitch.

    ``block``: 1..9; ``probabilities``: (9,) float, class index = block - 1.
    ``start_stamp_ns``: stamp of the detected start frame (identifies the pitch).
    ``last_frame_stamp_ns``: stamp of the newest frame the decision saw.
    ``decision_latency_s``: from the newest frame's arrival in the core to the result.
    ``early``: True for an estimate while the window fills; ``fraction_seen`` is the
    part of the 40-frame window seen (1.0 for the final prediction).
    ``skeleton_filled_frames``: models that take joints (two-stream, joints-only):
    frames of the decision without their own skeleton (held or NaN joints); 0 otherwise.
    """

    block: int
    probabilities: np.ndarray
    start_stamp_ns: int
    last_frame_stamp_ns: int
    decision_latency_s: float
    early: bool
    fraction_seen: float
    sampling_method: int = 0
    window_stamps_ns: tuple = ()
    skeleton_filled_frames: int = 0


@dataclass
class DecisionJob:
    """Everything one decision needs; safe to run on another thread."""

    early: bool
    features: Any  # tensor (n, ...) stream frames from the start frame on
    clips: List[np.ndarray]
    sampling_method: int
    start_stamp_ns: int
    last_frame_stamp_ns: int
    fraction_seen: float
    window_stamps_ns: tuple
    created_s: float = field(default_factory=time.perf_counter)
    joints: Any = None  # two-stream models: tensor (n, 25, 3), NaN rows = no skeleton
    skeleton_filled_frames: int = 0
    row_offsets: Any = None  # (3,) the pitcher's row offsets when the job was made; None: 0
