"""Counters and decision latencies of the core, safe to read while decisions run elsewhere."""

from collections import Counter, deque
import threading
from typing import Deque, Dict

import numpy as np


class CoreStatistics:
    """
    ``counters``: everything counted (input, resets, windows, decisions).

    Ingest updates ``counters`` on its own thread; decisions (possibly on a worker
    thread) record under the lock, and :meth:`snapshot` copies under it.
    """

    def __init__(self, latency_history: int = 500) -> None:
        self.counters: Counter = Counter()
        self.latencies_s: Deque[float] = deque(maxlen=latency_history)
        self.ingest_s: Deque[float] = deque(maxlen=latency_history)
        self.lock = threading.Lock()

    def record_ingest(self, seconds: float) -> None:
        """Keep the time one frame took to ingest (message to cached features)."""
        self.ingest_s.append(seconds)  # deque.append is atomic: no lock needed

    def ingest_mean_ms(self) -> float:
        """Mean ingest time of the recent frames in ms (NaN before the first frame)."""
        values = list(self.ingest_s)
        return float(np.mean(values)) * 1e3 if values else float('nan')

    def record_decision(self, latency_s: float, early: bool, filled_frames: int) -> None:
        """Count one decision made and keep its latency."""
        with self.lock:
            self.latencies_s.append(latency_s)
            self.counters['early_estimates' if early else 'predictions'] += 1
            if filled_frames:
                self.counters['early_estimates_with_filled_skeleton' if early
                              else 'decisions_with_filled_skeleton'] += 1

    def snapshot(self) -> Dict[str, int]:
        """Return a copy of the counters."""
        with self.lock:
            return dict(self.counters)

    def latency_percentiles(self) -> Dict[str, float]:
        """Return decision latency p50/p95/last in seconds (NaN before the first one)."""
        with self.lock:
            values = np.asarray(list(self.latencies_s), dtype=float)
        if values.size == 0:
            return {'p50': float('nan'), 'p95': float('nan'), 'last': float('nan')}
        return {'p50': float(np.percentile(values, 50)),
                'p95': float(np.percentile(values, 95)), 'last': float(values[-1])}
