"""
Stream hygiene by frame stamp: repeated stamps, missing frames, loops and long gaps.

Torch-free. :class:`FrameStamps` looks at each arriving frame's stamp against the one
before and says whether the frame is taken, how many frames went missing in between,
and whether the stream restarts at it (a looping bag, a restarted driver, a pause).
"""

from collections import Counter
from typing import Callable, Optional

from pitch_predictor.kinect import FPS

# Why the stream restarts at a frame.
STAMP_BACKWARDS = 'stamp_backwards'
STREAM_GAP = 'stream_gap'


class FrameStamps:
    """
    Check frame stamps in arrival order; count into ``counters``, report via ``notify``.

    Counters: ``frames_rejected.duplicate_stamp`` (through ``reject``), ``frames_missing``.
    """

    def __init__(self, counters: Counter, notify: Callable[[str, str], None],
                 reject: Callable[[str, str, str], None]) -> None:
        self._counters = counters
        self._notify = notify
        self._reject = reject
        self.max_gap_s = 0.5
        self.last_ns: Optional[int] = None

    def reset(self) -> None:
        """Forget the last stamp (the next frame starts a new stream)."""
        self.last_ns = None

    def accept(self, stamp_ns: int) -> bool:
        """Refuse a repeated stamp; count frames missing before this one."""
        last = self.last_ns
        if last is None or stamp_ns < last:
            return True
        if stamp_ns == last:
            self._reject('frame', 'duplicate_stamp', f'stamp {stamp_ns} seen already')
            return False
        gap_s = (stamp_ns - last) / 1e9
        missing = int(round(gap_s * FPS)) - 1
        if missing > 0 and gap_s <= self.max_gap_s:
            self._counters['frames_missing'] += missing
            self._notify('frames_missing', f'{missing} frame(s) missing before stamp '
                         f'{stamp_ns} (gap {gap_s * 1e3:.0f} ms)')
        return True

    def stream_break(self, stamp_ns: int) -> Optional[str]:
        """
        Return why the stream restarts at this (accepted) frame, None if it continues.

        Records the stamp. The reset itself happens when this frame leaves the pairer,
        so frames still waiting for their skeletons ahead of it are processed first.
        """
        last, self.last_ns = self.last_ns, stamp_ns
        if last is None:
            return None
        if stamp_ns < last:
            back_s = (last - stamp_ns) / 1e9
            self._notify(STAMP_BACKWARDS, f'frame stamp went back by {back_s:.3f} s '
                         '(looping bag or restarted driver): stream reset')
            return STAMP_BACKWARDS
        gap_s = (stamp_ns - last) / 1e9
        if gap_s > self.max_gap_s:
            self._notify(STREAM_GAP, f'{gap_s:.2f} s without frames (> max_gap_s '
                         f'{self.max_gap_s}): stream reset')
            return STREAM_GAP
        return None
