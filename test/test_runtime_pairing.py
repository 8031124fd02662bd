"""Stamp pairing, the feature buffer and the decision worker's drop policy."""

import threading

import numpy as np
from pitch_predictor.runtime.feature_buffer import FeatureBuffer, StreamFrame
from pitch_predictor.runtime.pairing import StampPairer
import pytest

MS = 1_000_000


def _j(value: float) -> np.ndarray:
    return np.full((25, 3), value, np.float32)


def test_skeleton_after_frame_pairs_and_releases_in_order():
    pairer = StampPairer(tolerance_ns=5 * MS, max_pending_frames=3)
    assert pairer.add_frame(100 * MS, 'a') == []
    assert pairer.add_frame(133 * MS, 'b') == []
    out = pairer.add_skeleton(102 * MS, _j(1))
    assert [(s.payload, s.joints[0, 0]) for s in out] == [('a', 1.0)]
    out = pairer.add_skeleton(133 * MS, _j(2))
    assert [(s.payload, s.joints[0, 0]) for s in out] == [('b', 2.0)]


def test_skeleton_before_frame_pairs():
    pairer = StampPairer(tolerance_ns=5 * MS)
    assert pairer.add_skeleton(100 * MS, _j(3)) == []
    out = pairer.add_frame(99 * MS, 'a')
    assert len(out) == 1 and out[0].joints[0, 0] == 3.0


def test_frame_without_skeleton_released_when_later_skeleton_arrives():
    pairer = StampPairer(tolerance_ns=5 * MS)
    pairer.add_frame(100 * MS, 'a')
    pairer.add_frame(133 * MS, 'b')
    out = pairer.add_skeleton(133 * MS, _j(1))
    # 'a' can no longer pair (skeletons come in order); both leave, in stamp order.
    assert [s.payload for s in out] == ['a', 'b']
    assert out[0].joints is None and out[1].joints is not None


def test_dead_skeleton_stream_releases_after_max_pending():
    pairer = StampPairer(tolerance_ns=5 * MS, max_pending_frames=2)
    released = []
    for k in range(5):
        released += pairer.add_frame(k * 33 * MS, k)
    assert [s.payload for s in released] == [0, 1, 2]
    assert pairer.pending_frames == 2
    assert [s.payload for s in pairer.flush()] == [3, 4]


def test_outside_tolerance_does_not_pair():
    pairer = StampPairer(tolerance_ns=5 * MS, max_pending_frames=0)
    pairer.add_skeleton(100 * MS, _j(1))
    out = pairer.add_frame(110 * MS, 'a')
    assert out[0].joints is None


def test_skeletons_loop_first_and_wait_for_the_frames_of_their_loop():
    pairer = StampPairer(tolerance_ns=5 * MS)
    pairer.add_skeleton(900 * MS, _j(9))
    pairer.add_frame(900 * MS, 'old')
    pairer.add_skeleton(0, _j(0))  # the bag looped: skeletons first
    pairer.restart_frames()        # then the frames
    out = pairer.add_frame(0, 'new')
    assert out[0].payload == 'new' and out[0].joints[0, 0] == 0.0


def test_late_skeletons_of_the_old_loop_are_stale_after_frames_loop():
    pairer = StampPairer(tolerance_ns=5 * MS, max_pending_frames=50)
    for k in range(3):
        pairer.add_skeleton(k * 33 * MS, _j(k))
        pairer.add_frame(k * 33 * MS, k)
    pairer.restart_frames()  # frames loop while old skeletons are still in flight
    assert pairer.add_frame(0, 'new0') == []
    assert pairer.add_skeleton(99 * MS, _j(3)) == []  # old loop, late: stale
    assert pairer.stale_skeletons == 1 and pairer.pending_frames == 1
    out = pairer.add_skeleton(0, _j(0))  # the skeleton stream loops too
    assert [(s.payload, s.joints[0, 0]) for s in out] == [('new0', 0.0)]


def test_feature_buffer_is_bounded_and_indexed():
    buf = FeatureBuffer(4)
    for k in range(10):
        buf.append(StreamFrame(k, k * 10, k, None))
    assert len(buf) == 4 and buf.oldest_index == 6 and buf.newest_index == 9
    assert buf.get(5) is None and buf.get(7).features == 7
    assert [f.index for f in buf.span(6, 4)] == [6, 7, 8, 9]
    assert buf.span(5, 2) is None and buf.span(9, 2) is None
    with pytest.raises(ValueError):
        buf.append(StreamFrame(12, 0, 0, None))


def test_decision_worker_newest_wins_and_final_beats_early():
    from pitch_predictor.runtime.decision_worker import DecisionWorker

    gate = threading.Event()
    done = []
    started = threading.Event()

    def decide(job):
        started.set()
        gate.wait(10)
        return job

    worker = DecisionWorker(decide, done.append, lambda exc: None)

    def job(name, early):
        return type('Job', (), {'name': name, 'early': early})()

    worker.submit(job('running', False))
    assert started.wait(10)
    worker.submit(job('final-1', False))
    worker.submit(job('early-1', True))      # never replaces a waiting final
    worker.submit(job('final-2', False))     # replaces final-1 (newest wins)
    gate.set()
    for _ in range(200):
        if len(done) == 2:
            break
        threading.Event().wait(0.01)
    assert worker.stop()
    assert [j.name for j in done] == ['running', 'final-2']
    assert worker.counters['superseded_early'] == 1
    assert worker.counters['superseded_final'] == 1


def test_frames_loop_while_their_skeletons_are_still_late():
    """A skeleton stall across the loop: every frame still pairs with its own loop's."""
    pairer = StampPairer(tolerance_ns=5 * MS, max_pending_frames=50)
    out = []
    for k in range(3):  # loop 1: frames arrive, their skeletons are stalled
        out += pairer.add_frame(k * 33 * MS, ('loop1', k))
    pairer.restart_frames()
    for k in range(2):  # loop 2 starts before the stalled skeletons arrive
        out += pairer.add_frame(k * 33 * MS, ('loop2', k), 'stamp_backwards' if k == 0 else None)
    assert out == []
    for k in range(3):  # the stalled skeletons of loop 1
        out += pairer.add_skeleton(k * 33 * MS, _j(10 + k))
    for k in range(2):  # then loop 2's
        out += pairer.add_skeleton(k * 33 * MS, _j(20 + k))
    assert [(s.payload, s.joints[0, 0], s.reset_reason) for s in out] == [
        (('loop1', 0), 10, None), (('loop1', 1), 11, None), (('loop1', 2), 12, None),
        (('loop2', 0), 20, 'stamp_backwards'), (('loop2', 1), 21, None)]
    assert pairer.stale_skeletons == 0


def test_only_the_frames_restart_then_skeletons_are_resynchronised():
    pairer = StampPairer(tolerance_ns=5 * MS, max_pending_frames=2)
    pairer.add_skeleton(1000 * MS, _j(1))
    pairer.add_frame(1000 * MS, 'a')
    pairer.restart_frames()  # a restarted camera driver: frame stamps start again at 0
    out = []
    for k in range(6):
        out += pairer.add_skeleton((1033 + 33 * k) * MS, _j(2))  # skeletons go on
        out += pairer.add_frame((33 + 33 * k) * MS, k)
    # After max_pending_frames frames the streams are re-synchronised; nothing is stuck.
    assert pairer.pending_frames <= 3 and len(out) >= 3
