"""
Which joints each stream frame gets: its own skeleton, the last one held over, or none.

Torch-free. A frame without a paired skeleton reuses the last one for
``hold_frames`` frames; after that it has none (models that take joints then get NaN
joints, the start detector pauses). See docs/node.md, "Skeleton gaps".
"""

from collections import Counter
from typing import Callable, Optional, Tuple

import numpy as np
from pitch_predictor.runtime.feature_buffer import (
    SKELETON_HELD, SKELETON_MISSING, SKELETON_PAIRED)


class SkeletonHold:
    """
    Follow the skeleton stream frame by frame; count into ``counters``.

    Counters: ``frames_paired``, ``frames_without_skeleton``, ``frames_skeleton_held``,
    ``frames_skeleton_missing``.
    """

    def __init__(self, counters: Counter, notify: Callable[[str, str], None]) -> None:
        self._counters = counters
        self._notify = notify
        self.hold_frames = 3
        self.reset()

    def reset(self) -> None:
        """Forget the last skeleton (a new stream)."""
        self._held: Optional[np.ndarray] = None
        self.frames_without = 0

    @property
    def lost(self) -> bool:
        """Tell whether the gap has just grown beyond ``hold_frames`` (this frame)."""
        return self.frames_without == self.hold_frames + 1

    def joints_for(self, joints: Optional[np.ndarray]) -> Tuple[Optional[np.ndarray], str]:
        """Return a frame's joints (its own ``joints``, held, or None) and which they are."""
        if joints is not None:
            self._counters['frames_paired'] += 1
            self._held = joints
            self.frames_without = 0
            return joints, SKELETON_PAIRED
        self._counters['frames_without_skeleton'] += 1
        self.frames_without += 1
        if self.lost:
            self._notify('missing_skeleton', 'no skeleton paired for '
                         f'{self.frames_without} frames: start detection paused')
        if self.frames_without <= self.hold_frames and self._held is not None:
            self._counters['frames_skeleton_held'] += 1
            return self._held, SKELETON_HELD
        self._counters['frames_skeleton_missing'] += 1
        return None, SKELETON_MISSING
