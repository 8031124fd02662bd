"""
The decision over a window's test clips: one source of truth for training and the node.

Table II's test rule: run every listed clip and average the class probabilities. A
calibration temperature (fitted on validation data, stored in the checkpoint's
``meta['temperature']``, 1.0 when absent) divides the logits before the softmax; it
changes the probabilities a robot reads, never the argmax of one clip.
"""

from typing import Any, Dict, List, Mapping, Sequence

import numpy as np
import torch


def checkpoint_temperature(meta: Mapping[str, Any]) -> float:
    """Return the calibration temperature a checkpoint's meta records (1.0 if none)."""
    value = float(meta.get('temperature', 1.0) or 1.0)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f'checkpoint meta temperature must be > 0, got {value!r}')
    return value


def mean_clip_probabilities(logits: torch.Tensor, temperature: float = 1.0,
                            clip_dim: int = 0) -> torch.Tensor:
    """
    Average the calibrated softmax over the clips.

    ``logits``: float ``(..., 9)`` with the clips along ``clip_dim`` (e.g. ``(K, 9)`` or
    ``(K, B, 9)``). Returns float32 probabilities with ``clip_dim`` removed.
    """
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
