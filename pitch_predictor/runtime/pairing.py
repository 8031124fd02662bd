"""Pair camera frames with skeletons by header stamp, releasing frames in arrival order."""

from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional, Tuple

import numpy as np


@dataclass
class PairedSample:
    """
    A frame payload and the skeleton paired with it (None: no skeleton within tolerance).

    ``epoch`` counts the restarts of the frame stream (stamps going backwards);
    ``reset_reason`` is set on the first frame after a restart or a long gap, so the
    consumer resets its own state when this frame comes out, not before the frames
    ahead of it.
    """

    stamp_ns: int
    payload: Any
    epoch: int = 0
    reset_reason: Optional[str] = None
    joints: Optional[np.ndarray] = None
    joints_stamp_ns: Optional[int] = None


Skeleton = Tuple[int, np.ndarray, int]  # stamp, joints, epoch


class StampPairer:
    """
    Match each frame with the skeleton nearest in stamp, within ``tolerance_ns``.

    Frames are released in arrival order, as soon as they are paired, or once pairing
    has become impossible: a skeleton of the same loop newer than ``frame + tolerance``
    has arrived (skeletons come in stamp order), the skeleton stream has already moved
    on to its next loop, or more than ``max_pending_frames`` frames wait (the skeleton
    stream is late or dead). Skeletons may arrive before or after their frame.

    Looping streams (a bag played in a loop): each stream counts its restarts (stamps
    going backwards) as epochs, and only frames and skeletons of the same epoch pair.
    The two topics loop at different moments (one may lag the other by seconds over a
    reliable transport). Skeletons of a loop no pending frame belongs to any more are
    stale and dropped (counted in ``stale_skeletons``). If only one stream restarts
    (a restarted driver), the other is re-synchronised after ``max_pending_frames``
    messages.
    """

    def __init__(self, tolerance_ns: int, max_pending_frames: int = 90,
                 max_skeletons: int = 300) -> None:
        self.tolerance_ns = int(tolerance_ns)
        self.max_pending_frames = int(max_pending_frames)
        self._max_skeletons = int(max_skeletons)
        self._frames: Deque[PairedSample] = deque()
        self._skeletons: Deque[Skeleton] = deque(maxlen=self._max_skeletons)
        self._newest: Dict[int, int] = {}  # epoch -> newest skeleton stamp
        self._frame_epoch = 0
        self._skeleton_epoch = 0
        self._out_of_step = 0
        self.stale_skeletons = 0

    @property
    def pending_frames(self) -> int:
        """Return the number of frames waiting for a skeleton."""
        return len(self._frames)

    def reset(self, keep_skeletons_from_ns: Optional[int] = None) -> None:
        """
        Forget pending frames and start both streams afresh.

        Only skeletons at or after ``keep_skeletons_from_ns`` are kept (none when None).
        """
        self._frames.clear()
        kept = [] if keep_skeletons_from_ns is None else [
            (s[0], s[1], self._frame_epoch) for s in self._skeletons
            if s[0] >= keep_skeletons_from_ns]
        self._skeletons = deque(kept, maxlen=self._max_skeletons)
        self._skeleton_epoch = self._frame_epoch
        self._out_of_step = 0
        self._newest = {}
        if kept:
            self._newest[self._frame_epoch] = max(s[0] for s in kept)

    def restart_frames(self) -> None:
        """Start a new frame epoch: frame stamps went backwards (a loop)."""
        self._frame_epoch += 1

    def add_frame(self, stamp_ns: int, payload: Any,
                  reset_reason: Optional[str] = None) -> List[PairedSample]:
        """Queue a frame (stamps increase within an epoch); return the frames now released."""
        if self._frame_epoch > self._skeleton_epoch:
            self._count_out_of_step()
        elif self._frame_epoch == self._skeleton_epoch:
            self._out_of_step = 0
        sample = PairedSample(stamp_ns, payload, self._frame_epoch, reset_reason)
        close = [s for s in self._skeletons if s[2] == sample.epoch
                 and abs(s[0] - stamp_ns) <= self.tolerance_ns]
        if close:
            best = min(close, key=lambda s: abs(s[0] - stamp_ns))
            self._skeletons.remove(best)
            sample.joints_stamp_ns, sample.joints = best[0], best[1]
        self._frames.append(sample)
        return self._release()

    def add_skeleton(self, stamp_ns: int, joints: np.ndarray) -> List[PairedSample]:
        """Offer a skeleton; return the frames now released."""
        newest = self._newest.get(self._skeleton_epoch)
        if newest is not None and stamp_ns < newest:
            self._skeleton_epoch += 1
        if self._skeleton_epoch > self._frame_epoch:
            self._count_out_of_step()
        elif self._frame_epoch == self._skeleton_epoch:
            self._out_of_step = 0
        epoch = self._skeleton_epoch
        self._newest[epoch] = stamp_ns
        waiting = [f for f in self._frames if f.epoch == epoch and f.joints is None
                   and abs(f.stamp_ns - stamp_ns) <= self.tolerance_ns]
        if waiting:
            frame = min(waiting, key=lambda f: abs(f.stamp_ns - stamp_ns))
            frame.joints_stamp_ns, frame.joints = stamp_ns, joints
        elif epoch >= self._oldest_live_epoch():
            self._skeletons.append((stamp_ns, joints, epoch))
        else:
            self.stale_skeletons += 1
        return self._release()

    def flush(self) -> List[PairedSample]:
        """Release every pending frame (end of the stream)."""
        released = list(self._frames)
        self._frames.clear()
        return released

    def _count_out_of_step(self) -> None:
        """Re-synchronise when one stream restarted and the other keeps not following."""
        self._out_of_step += 1
        if self._out_of_step > self.max_pending_frames:
            epoch = self._frame_epoch
            self._skeletons = deque(((s[0], s[1], epoch) for s in self._skeletons
                                     if s[2] == self._skeleton_epoch),
                                    maxlen=self._max_skeletons)
            newest = self._newest.get(self._skeleton_epoch)
            self._skeleton_epoch = epoch
            self._newest = {} if newest is None else {epoch: newest}
            for frame in self._frames:
                frame.epoch = epoch
            self._out_of_step = 0

    def _oldest_live_epoch(self) -> int:
        return min([f.epoch for f in self._frames] + [self._frame_epoch])

    def _hopeless(self, frame: PairedSample) -> bool:
        if self._skeleton_epoch > frame.epoch:
            return True
        newest = self._newest.get(frame.epoch)
        return newest is not None and newest > frame.stamp_ns + self.tolerance_ns

    def _release(self) -> List[PairedSample]:
        released = []
        while self._frames:
            head = self._frames[0]
            if head.joints is None and not self._hopeless(head) \
                    and len(self._frames) <= self.max_pending_frames:
                break
            released.append(self._frames.popleft())
        if released:
            # Skeletons that can never pair: of loops no frame belongs to any more, or of
            # this loop and older than the last released frame.
            live = self._oldest_live_epoch()
            last = released[-1]
            floor = last.stamp_ns - self.tolerance_ns
            self._skeletons = deque(
                (s for s in self._skeletons
                 if s[2] >= live and not (s[2] == last.epoch and s[0] < floor)),
                maxlen=self._max_skeletons)
            self._newest = {e: t for e, t in self._newest.items()
                            if e >= min(live, self._skeleton_epoch)}
        return released
