"""
Run decisions on a worker thread so frame callbacks never wait for inference.

Policy when decisions arrive faster than they run: one decision runs, at most one waits.
A newer job replaces the waiting one (the newest data wins), except that an early
estimate never replaces a waiting final prediction. Every job thrown away is counted:
``superseded_early`` and ``superseded_final`` (a lost final = a pitch without answer).
"""

from collections import Counter
import threading
from typing import Callable, Optional, TYPE_CHECKING

if TYPE_CHECKING:
    from pitch_predictor.runtime.jobs import DecisionJob, Prediction


class DecisionWorker:
    """A single background thread with a one-slot mailbox of :class:`DecisionJob`."""

    def __init__(self, decide: Callable[['DecisionJob'], 'Prediction'],
                 deliver: Callable[['Prediction'], None],
                 on_error: Callable[[BaseException], None]) -> None:
        self._decide = decide
        self._deliver = deliver
        self._on_error = on_error
        self._pending: Optional[DecisionJob] = None
        self._busy = False
        self._stopping = False
        self._wake = threading.Condition()
        self.counters: Counter = Counter()
        self._thread = threading.Thread(target=self._run, name='decision_worker', daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """Tell whether a decision runs or waits."""
        with self._wake:
            return self._busy or self._pending is not None

    def snapshot(self) -> dict:
        """Return a copy of the counters."""
        with self._wake:
            return dict(self.counters)

    def submit(self, job: 'DecisionJob') -> None:
        """Queue ``job`` without blocking (see the module docstring for what gets dropped)."""
        with self._wake:
            waiting = self._pending
            if waiting is not None:
                if job.early and not waiting.early:
                    self.counters['superseded_early'] += 1
                    return
                self.counters['superseded_early' if waiting.early else 'superseded_final'] += 1
            self._pending = job
            self.counters['submitted'] += 1
            self._wake.notify()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Finish the running decision, drop the waiting one; True if the thread ended."""
        with self._wake:
            self._stopping = True
            self._pending = None
            self._wake.notify()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                job, self._pending = self._pending, None
                self._busy = True
            try:
                self._deliver(self._decide(job))
                outcome = 'completed'
            except Exception as exc:  # a failed decision must not kill the worker
                outcome = 'failed'
                self._on_error(exc)
            with self._wake:
                self.counters[outcome] += 1
                self._busy = False
