"""
The detector/window state machine: from paired stream frames to the windows to decide.

Torch-free. Each stream frame goes into a bounded :class:`FeatureBuffer`; frames with
joints (own or held) step the streaming start detector. A detected start opens a
40-frame window; while it fills, early estimates are due every ``early_every_frames``
frames (streamable models), and once full the final decision is due. For models that
take joints (two-stream and joints-only) a window (or the part seen) with more than
``max_missing_skeleton_fraction`` frames without their own skeleton is not decided but
counted and reported.
"""

from collections import Counter
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np
from pitch_predictor.kinect import WINDOW
from pitch_predictor.runtime.feature_buffer import FeatureBuffer, SKELETON_PAIRED, StreamFrame
from pitch_predictor.start_detector import StartDetectorConfig, StreamingStartDetector

# Frames kept beyond the window: the detector reports a start ``run_length`` - 1 frames
# after it happened (run_length is at most 40 as a node parameter).
BUFFER_MARGIN = 48

PHASES = ('waiting_for_rest', 'armed', 'in_action', 'recording', 'predicted')


@dataclass(frozen=True)
class DueDecision:
    """A decision the window calls for: its first ``seen`` frames, early or final."""

    frames: List[StreamFrame]
    early: bool
    start_stamp_ns: int
    skeleton_filled_frames: int = 0

    @property
    def seen(self) -> int:
        """Frames of the window the decision sees."""
        return len(self.frames)


@dataclass
class _Window:
    start_index: int
    start_stamp_ns: int
    next_early: int


class PitchWindows:
    """
    Buffer, start detector and the window being recorded; count into ``counters``.

    Counters: ``windows_started``, ``windows_aborted``, ``windows_lost``,
    ``starts_ignored_while_recording``, ``windows_skipped_no_skeleton``,
    ``early_skipped_no_skeleton``. Settings (set by the core): ``early_every_frames``,
    ``early_estimates`` (already False for models that cannot stream),
    ``gap_limit`` (None: the skeleton-gap rule does not apply, RGB-only models).
    """

    def __init__(self, counters: Counter, notify: Callable[[str, str], None]) -> None:
        self._counters = counters
        self._notify = notify
        self.buffer = FeatureBuffer(WINDOW + BUFFER_MARGIN)
        self.early_every_frames = 5
        self.early_estimates = False
        self.gap_limit: Optional[float] = None
        self._detector_config: Optional[StartDetectorConfig] = None
        self._detector = StreamingStartDetector(StartDetectorConfig())
        self._window: Optional[_Window] = None
        self.reset()

    def configure_detector(self, config: StartDetectorConfig) -> None:
        """Use new detector settings; a change re-arms detection (the window is dropped)."""
        if config != self._detector_config:
            self._detector_config = config
            self._detector = StreamingStartDetector(config)
            self._window = None

    def reset(self) -> None:
        """Start afresh from the next frame (an open window counts as aborted)."""
        if self._window is not None:
            self._counters['windows_aborted'] += 1
        self.buffer.clear()
        self._detector.reset()
        self._window = None
        self._next_index = 0
        self.frames_since_final = WINDOW

    # ------------------------------------------------------------------ state
    @property
    def recording(self) -> bool:
        """Tell whether a window is open."""
        return self._window is not None

    def phase(self, last_was_final: bool) -> str:
        """One of :data:`PHASES`; ``last_was_final``: the last published answer was final."""
        if self._window is not None:
            return 'recording'
        state = self._detector.state
        if last_was_final and state != 'armed' and self.frames_since_final < WINDOW:
            return 'predicted'
        return state

    @property
    def window_fill(self) -> float:
        """Fraction of the current window received (0 when not recording)."""
        if self._window is None or self.buffer.newest_index is None:
            return 0.0
        return min(1.0, (self.buffer.newest_index - self._window.start_index + 1) / WINDOW)

    # ----------------------------------------------------------------- frames
    def add(self, stamp_ns: int, features: object, joints: Optional[np.ndarray],
            source: str, signature: np.ndarray, skeleton_lost: bool) -> List[DueDecision]:
        """
        Add the next stream frame; return the decisions it makes due.

        ``joints``/``source``: from :class:`SkeletonHold`; ``skeleton_lost``: the gap has
        just outgrown the hold (the detector pauses and re-arms).
        """
        index = self._next_index
        self._next_index += 1
        self.frames_since_final += 1
        self.buffer.append(StreamFrame(index, stamp_ns, features, joints, source))
        if joints is not None:
            event = self._detector.update(index, signature, joints)
            if event is not None:
                self._start(event.start_index)
        elif skeleton_lost:
            self._detector.reset()
        return self._due(index)

    def _start(self, start_index: int) -> None:
        if self._window is not None:
            self._counters['starts_ignored_while_recording'] += 1
            return
        first = self.buffer.get(start_index)
        if first is None:
            self._counters['windows_lost'] += 1
            self._notify('window_lost', f'start frame {start_index} already left the buffer')
            return
        self._counters['windows_started'] += 1
        self._window = _Window(start_index, first.stamp_ns, self.early_every_frames)

    def _due(self, index: int) -> List[DueDecision]:
        window = self._window
        if window is None:
            return []
        seen = index - window.start_index + 1
        if seen >= WINDOW:
            self._window = None
            self._detector.action_done()
            due = self._decision(window, WINDOW, early=False)
            if due is None:
                return []
            self.frames_since_final = 0
            return [due]
        if self.early_estimates and seen >= window.next_early:
            window.next_early = (seen // self.early_every_frames + 1) * self.early_every_frames
            due = self._decision(window, seen, early=True)
            return [] if due is None else [due]
        return []

    def _decision(self, window: _Window, seen: int, *, early: bool) -> Optional[DueDecision]:
        """Return the decision over the window's first ``seen`` frames (None: skipped)."""
        frames = self.buffer.span(window.start_index, seen)
        filled = 0
        if self.gap_limit is not None:
            filled = sum(1 for f in frames if f.skeleton != SKELETON_PAIRED)
            if filled / seen > self.gap_limit:
                self._skip(window, seen, filled, early)
                return None
        return DueDecision(frames, early, window.start_stamp_ns, filled)

    def _skip(self, window: _Window, seen: int, filled: int, early: bool) -> None:
        """Count and report a decision not made: too little of the skeleton was tracked."""
        what = 'early estimate' if early else 'prediction'
        self._counters['early_skipped_no_skeleton' if early
                       else 'windows_skipped_no_skeleton'] += 1
        # Own keys: throttled early-estimate notes must not hide the final's.
        self._notify('skeleton_gap_early' if early else 'skeleton_gap', (
            f'no {what} for the pitch starting at {window.start_stamp_ns / 1e9:.3f} s: '
            f'{filled} of {seen} frames without their own skeleton (more than '
            f'max_missing_skeleton_fraction {self.gap_limit})'))
