"""
The decision over a window's test clips: one source of truth for training and the node.

Table II's test rule: run every listed clip and average the class probabilities. A
calibration temperature (fitted on validation data, stored in the checkpoint's
``meta['temperature']``, 1.0 when absent) divides the logits before the softmax; it
changes the probabilities a robot reads, never the argmax of one clip.

A per-pitcher row offset (:func:`apply_row_offset`; the node's
``pitcher_row_offset_top`` / ``_bottom``, fitted on a new person's labelled throws by
``training.pitcher_offset --fit``) adds a log-probability to every block of the top and
bottom grid rows of the averaged probabilities and renormalises: it corrects a person's
bias to throw higher or lower than the model reads. 0 and 0 (the default) change nothing.

Torch is imported where it is used: the node's torch-free settings check row offsets
with this module before any model loads.
"""

from typing import Any, Dict, List, Mapping, Sequence, TYPE_CHECKING

import numpy as np
from pitch_predictor.kinect import block_to_row_col, NUM_BLOCKS

if TYPE_CHECKING:  # pragma: no cover - annotations only
    import torch

# The grid row (0 = top) of each class (block - 1).
ROW_OF_CLASS = np.array([block_to_row_col(c + 1)[0] for c in range(NUM_BLOCKS)])
MAX_ROW_OFFSET = 20.0  # log-probability: e^20 is beyond any sensible correction


def row_offset_vector(top: float, bottom: float) -> np.ndarray:
    """Return the per-row offsets (3,) (the middle row's 0); refuse non-finite or huge ones."""
    offsets = np.array([top, 0.0, bottom], dtype=np.float64)
    if not np.isfinite(offsets).all() or np.abs(offsets).max() > MAX_ROW_OFFSET:
        raise ValueError(f'row offsets must be finite and within +-{MAX_ROW_OFFSET:g}, '
                         f'got top {top!r}, bottom {bottom!r}')
    return offsets


def apply_row_offset(probabilities: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """
    Return ``probabilities`` (..., 9) times ``exp(offsets[row])``, renormalised (float64).

    ``offsets``: (3,) log-probability per grid row (:func:`row_offset_vector`). All zero:
    the probabilities come back unchanged (as float64).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if not np.any(offsets):
        return probabilities
    shifted = probabilities * np.exp(np.asarray(offsets, dtype=np.float64)[ROW_OF_CLASS])
    return shifted / shifted.sum(axis=-1, keepdims=True)


def checkpoint_temperature(meta: Mapping[str, Any]) -> float:
    """Return the calibration temperature a checkpoint's meta records (1.0 if none)."""
    value = float(meta.get('temperature', 1.0) or 1.0)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f'checkpoint meta temperature must be > 0, got {value!r}')
    return value


def mean_clip_probabilities(logits: 'torch.Tensor', temperature: float = 1.0,
                            clip_dim: int = 0) -> 'torch.Tensor':
    """
    Average the calibrated softmax over the clips.

    ``logits``: float ``(..., 9)`` with the clips along ``clip_dim`` (e.g. ``(K, 9)`` or
    ``(K, B, 9)``). Returns float32 probabilities with ``clip_dim`` removed.
    """
    import torch
    return torch.softmax(logits.float() / float(temperature), dim=-1).mean(dim=clip_dim)


def prefix_groups(clips: Sequence[np.ndarray], seen: int) -> List[np.ndarray]:
    """
    Group the test clips' frames already seen (index < ``seen``) by prefix length.

    The streaming early estimate runs each group as one batch: returns ``(k, L)`` index
    arrays, one per distinct prefix length ``L > 0``, in first-seen order.
    """
    by_length: Dict[int, List[np.ndarray]] = {}
    for clip in clips:
        prefix = np.asarray(clip)[np.asarray(clip) < seen]
        if len(prefix):
            by_length.setdefault(len(prefix), []).append(prefix)
    return [np.stack(group) for group in by_length.values()]
