"""
The seven frame-sampling schemes of the paper's Table II.

Indices are 0-based positions in the action window (frame 0 = the detected start frame,
``window`` = 40 frames). Training draws one clip per call; testing runs every listed clip
and averages the class probabilities.

| # | training: first, step, length            | test: firsts, step, length |
|---|-------------------------------------------|----------------------------|
| 1 | {0,1}, 2, 20                              | {0,1}, 2, 20               |
| 2 | {0..3}, 4, 10                             | {0..3}, 4, 10              |
| 3 | {0..4}, 5, 8                              | {0..4}, 5, 8               |
| 4 | {0..7}, 8, 5                              | {0..7}, 8, 5               |
| 5 | {0..3}, each gap from {3,4,5}, 10         | {0..3}, 4, 10              |
| 6 | {0..29}, 1, 10                            | {0,10,20,30}, 1, 10        |
| 7 | {0..19}, 2, 10                            | {0,1,20,21}, 2, 10         |

Method 5 ("nearly-fixed interval") draws each of the 9 gaps independently from {3,4,5};
a draw whose last frame would pass the window's last frame is rejected and drawn again,
so every valid (first, gaps) combination is equally likely.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from pitch_predictor.kinect import WINDOW


@dataclass(frozen=True)
class SamplingMethod:
    """One row of Table II: clip length, training and test starts and steps."""

    length: int
    train_firsts: Tuple[int, ...]
    train_step: Optional[int]  # None: each gap drawn from ``jitter_gaps``
    test_firsts: Tuple[int, ...]
    test_step: int
    jitter_gaps: Tuple[int, ...] = ()


SAMPLING_METHODS: Dict[int, SamplingMethod] = {
    1: SamplingMethod(20, (0, 1), 2, (0, 1), 2),
    2: SamplingMethod(10, tuple(range(4)), 4, tuple(range(4)), 4),
    3: SamplingMethod(8, tuple(range(5)), 5, tuple(range(5)), 5),
    4: SamplingMethod(5, tuple(range(8)), 8, tuple(range(8)), 8),
    5: SamplingMethod(10, tuple(range(4)), None, tuple(range(4)), 4, jitter_gaps=(3, 4, 5)),
    6: SamplingMethod(10, tuple(range(30)), 1, (0, 10, 20, 30), 1),
    7: SamplingMethod(10, tuple(range(20)), 2, (0, 1, 20, 21), 2),
}

# A draw of method 5 fails to fit with probability < 0.4, so this bound is never reached
# in practice; it only turns an impossible window into an error instead of a hang.
_MAX_REJECTIONS = 10000


def sampling_method(method: int) -> SamplingMethod:
    """Return Table II's row for ``method`` (1..7); ``ValueError`` otherwise."""
    try:
        return SAMPLING_METHODS[int(method)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f'unknown sampling method {method!r}; Table II defines '
            f'{sorted(SAMPLING_METHODS)}') from None


def clip_length(method: int) -> int:
    """Return the number of frames in one clip of ``method``."""
    return sampling_method(method).length


def _check_fits(indices: np.ndarray, method: int, window: int) -> np.ndarray:
    if indices[-1] >= window:
        raise ValueError(f'sampling method {method} needs frame {int(indices[-1])}, '
                         f'past the {window}-frame window')
    return indices


def train_clip_indices(method: int, rng: np.random.Generator,
                       window: int = WINDOW) -> np.ndarray:
    """Draw one training clip's frame indices (int64, increasing, all < ``window``)."""
    spec = sampling_method(method)
    if spec.train_step is not None:
        first = int(rng.choice(spec.train_firsts))
        indices = first + spec.train_step * np.arange(spec.length, dtype=np.int64)
        return _check_fits(indices, method, window)
    gaps = np.asarray(spec.jitter_gaps, dtype=np.int64)
    if spec.train_firsts[0] + gaps.min() * (spec.length - 1) >= window:
        raise ValueError(f'sampling method {method} cannot fit {spec.length} frames in a '
                         f'{window}-frame window')
    for _ in range(_MAX_REJECTIONS):
        first = int(rng.choice(spec.train_firsts))
        steps = rng.choice(gaps, size=spec.length - 1)
        indices = np.concatenate(([first], first + np.cumsum(steps))).astype(np.int64)
        if indices[-1] < window:
            return indices
    raise RuntimeError(f'sampling method {method}: no clip fitted the window after '
                       f'{_MAX_REJECTIONS} draws')


def test_clip_indices(method: int, window: int = WINDOW) -> List[np.ndarray]:
    """Return every test clip of ``method`` (the prediction averages over them)."""
    spec = sampling_method(method)
    offsets = spec.test_step * np.arange(spec.length, dtype=np.int64)
    return [_check_fits(first + offsets, method, window) for first in spec.test_firsts]


test_clip_indices.__test__ = False  # a sampling function, not a pytest test
