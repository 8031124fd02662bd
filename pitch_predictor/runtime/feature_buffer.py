"""A bounded rolling buffer of per-frame model encodings, indexed by stream position."""

from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, List, Optional

import numpy as np

# Where a stream frame's joints come from: its own paired skeleton, the last one held
# over (``skeleton_hold_frames``), or none at all.
SKELETON_PAIRED = 'paired'
SKELETON_HELD = 'held'
SKELETON_MISSING = 'missing'


@dataclass(frozen=True)
class StreamFrame:
    """
    One frame of the continuous stream after pairing.

    ``features`` is the model input computed once on arrival: ``model.encode_frames``
    (C, h, w) for RGB models, the joints tensor (25, 3) for joints models.
    ``joints`` is the skeleton used for the frame: its own, or the last one held over
    (None when neither); ``skeleton`` says which (``SKELETON_*``).
    """

    index: int
    stamp_ns: int
    features: Any
    joints: Optional[np.ndarray]
    skeleton: str = SKELETON_PAIRED


class FeatureBuffer:
    """The newest ``capacity`` stream frames; older frames fall out (memory stays bounded)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f'feature buffer capacity must be >= 1, got {capacity}')
        self.capacity = capacity
        self._frames: Deque[StreamFrame] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._frames)

    def append(self, frame: StreamFrame) -> None:
        """Add the next frame; its index must follow the newest one's (else clear first)."""
        if self._frames and frame.index != self._frames[-1].index + 1:
            raise ValueError(
                f'stream index {frame.index} does not follow {self._frames[-1].index}')
        self._frames.append(frame)

    def clear(self) -> None:
        """Drop every frame (the stream was reset)."""
        self._frames.clear()

    @property
    def oldest_index(self) -> Optional[int]:
        """Stream index of the oldest frame held, None when empty."""
        return self._frames[0].index if self._frames else None

    @property
    def newest_index(self) -> Optional[int]:
        """Stream index of the newest frame held, None when empty."""
        return self._frames[-1].index if self._frames else None

    def get(self, index: int) -> Optional[StreamFrame]:
        """Return the frame at stream ``index``, None if it fell out or has not arrived."""
        if not self._frames or not self._frames[0].index <= index <= self._frames[-1].index:
            return None
        return self._frames[index - self._frames[0].index]

    def span(self, first: int, count: int) -> Optional[List[StreamFrame]]:
        """Return frames ``first .. first + count - 1``, or None unless all are held."""
        if count < 1 or self.get(first) is None or self.get(first + count - 1) is None:
            return None
        offset = first - self._frames[0].index
        return [self._frames[offset + k] for k in range(count)]
