"""
Models that take joints in the running node over real DDS, skeleton gaps too.

The module runs once per model, each in its own ``predictor_node`` process: a random
fast ``two_stream_1d`` (RGB + joints: finals and early estimates) and a random fast
``skeleton_gru`` with the validated recipe (joints only, ``centred_velocity``, hidden
128: finals only). The test publishes rendered pitches into the node and compares every
answer with :class:`PredictorCore` run offline on the same frames and skeletons.
Skeleton gaps follow docs/node.md, "Skeleton gaps": a short one is filled and decided,
a long one gets no prediction and shows in ``/diagnostics`` at WARN level.
"""

import signal
import time

from node_harness import (
    FRAME_NS, open_peer, qhd_trial, require_module, start_node, Streams)
import numpy as np
from pitch_predictor.runtime.core import CoreConfig, PredictorCore
import pytest
from runtime_fixtures import make_checkpoint, SKELETON_RECIPE

rclpy = require_module('rclpy')

pytestmark = [pytest.mark.ros, pytest.mark.slow]

OK, WARN = 0, 1

# Model name -> (input_kind, make_checkpoint keywords).
MODELS = {
    'two_stream_1d': ('rgb+joints', {'seed': 5}),
    'skeleton_gru': ('joints', {'seed': 6, 'config': SKELETON_RECIPE}),
}


@pytest.fixture(scope='module', params=sorted(MODELS))
def checkpoint(request, tmp_path_factory):
    """Save a random fast model that takes joints (fixed seed), named after the model."""
    name = request.param
    return make_checkpoint(tmp_path_factory.mktemp('ts_node') / f'{name}.pt', name,
                           **MODELS[name][1])


@pytest.fixture(scope='module')
def trial():
    """Render a qHD pitch here, independent of the simulator."""
    return qhd_trial()


@pytest.fixture(scope='module')
def peer(checkpoint):
    """Create the test's own DDS participant (one per node: no stale diagnostics)."""
    with open_peer() as p:
        yield p


@pytest.fixture(scope='module')
def node(checkpoint, peer, tmp_path_factory):
    """Start the node under test."""
    proc = start_node(checkpoint, peer, tmp_path_factory.mktemp('ts_node') / 'node.log')
    yield proc
    proc.stop()


@pytest.fixture(scope='module')
def streams():
    """Stream start stamps for the module."""
    return Streams(first_s=300)


def _offline(checkpoint, frames, joints, first_stamp, without=(), **settings):
    """Run the core offline; frames in ``without`` have no skeleton."""
    core = PredictorCore(checkpoint, CoreConfig(max_pending_frames=300, **settings),
                         device='cpu')
    out = []
    for k in range(len(frames)):
        out += core.ingest(first_stamp + k * FRAME_NS, frames[k],
                           None if k in without else joints[k])
    return out, core


def _check_early(received, offline):
    """Each early estimate received equals the offline one of the same fraction seen."""
    expected = {round(p.fraction_seen, 3): p.probabilities for p in offline if p.early}
    if not expected:  # a model that cannot stream (skeleton_gru): none published
        assert received == []
        return
    assert received, 'no early estimate arrived'
    for message in received:
        fraction = round(float(message.data[0]), 3)
        assert fraction in expected, (fraction, sorted(expected))
        np.testing.assert_allclose(np.array(message.data[1:]), expected[fraction], atol=1e-5)


def _publish(peer, node, frames, joints, first, **gaps):
    finals, early = len(peer.finals()), len(peer.early)
    received = peer.counter('frames_received')
    peer.publish_stream(frames, joints, first, **gaps)
    peer.wait_counter('frames_received', received + len(frames), node)
    return finals, early


@pytest.fixture(scope='module')
def start(node, peer, checkpoint, trial, streams):
    """Publish the whole pitch once; return its start frame (checked against offline)."""
    frames, joints = trial
    first = streams.start()
    finals, early = _publish(peer, node, frames, joints, first)
    assert peer.spin_until(lambda: len(peer.finals()) > finals, 30, node), \
        str(peer.diagnostics) + node.log()
    start_ns, block, probabilities = peer.finals()[-1]
    offline, core = _offline(checkpoint, frames, joints, first)
    final = [p for p in offline if not p.early]
    assert len(final) == 1
    assert (start_ns, block) == (final[0].start_stamp_ns, final[0].block)
    np.testing.assert_allclose(probabilities, final[0].probabilities, atol=1e-5)
    _check_early(peer.early[early:], offline)
    return (start_ns - first) // FRAME_NS


def test_node_answers_like_the_offline_core(node, peer, checkpoint, start):
    name = checkpoint.stem
    assert peer.diagnostics['model'] == name
    assert peer.diagnostics['input_kind'] == MODELS[name][0]
    assert peer.counter('windows_skipped_no_skeleton') == 0
    assert peer.counter('decisions_with_filled_skeleton') == 0
    assert 'windows skipped' not in peer.status[1]


def test_short_gap_no_body_is_filled_and_answered_like_offline(
        node, peer, checkpoint, trial, streams, start):
    frames, joints = trial
    first = streams.start()
    gap = set(range(start + 10, start + 20))  # window frames 10..19: the tracker sees no one
    rejected = peer.counter('skeletons_rejected.no_skeleton')
    filled = peer.counter('decisions_with_filled_skeleton')
    finals, early = _publish(peer, node, frames, joints, first, no_body=gap)
    assert peer.spin_until(lambda: len(peer.finals()) > finals, 30, node), node.log()
    peer.wait_counter('decisions_with_filled_skeleton', filled + 1, node)
    peer.wait_counter('skeletons_rejected.no_skeleton', rejected + len(gap), node)
    offline, core = _offline(checkpoint, frames, joints, first, without=gap)
    final = [p for p in offline if not p.early]
    assert len(final) == 1 and final[0].skeleton_filled_frames == 10
    start_ns, block, probabilities = peer.finals()[-1]
    assert (start_ns, block) == (final[0].start_stamp_ns, final[0].block)
    np.testing.assert_allclose(probabilities, final[0].probabilities, atol=1e-5)
    _check_early(peer.early[early:], offline)
    assert peer.counter('windows_skipped_no_skeleton') == 0


def test_long_gap_gets_no_prediction_and_warns(node, peer, checkpoint, trial, streams,
                                               start):
    frames, joints = trial
    first = streams.start()
    gap = set(range(start + 8, start + 40))  # 32 of the window's 40 frames: no skeleton
    skipped = peer.counter('windows_skipped_no_skeleton')
    finals, early = _publish(peer, node, frames, joints, first, no_skeleton=gap)
    peer.wait_counter('windows_skipped_no_skeleton', skipped + 1, node)
    assert peer.spin_until(lambda: peer.status[0] == WARN
                           and 'windows skipped: skeleton missing' in peer.status[1], 5, node), \
        peer.status
    offline, core = _offline(checkpoint, frames, joints, first, without=gap)
    assert [p for p in offline if not p.early] == []
    assert core.counters['windows_skipped_no_skeleton'] == 1
    assert len(peer.finals()) == finals  # nothing published for this pitch
    _check_early(peer.early[early:], offline)  # the estimates made before the gap grew
    assert 'no prediction for the pitch starting at' in node.log()


def test_the_limit_changes_at_run_time(node, peer, checkpoint, trial, streams, start):
    results = peer.set_parameters('pitch_predictor', {'max_missing_skeleton_fraction': 1.5})
    assert not results[0].successful and results[0].reason
    results = peer.set_parameters('pitch_predictor', {'max_missing_skeleton_fraction': 0.9})
    assert results[0].successful, results[0].reason
    frames, joints = trial
    first = streams.start()
    gap = set(range(start + 8, start + 40))  # 32/40 = 0.8: now decided
    filled = peer.counter('decisions_with_filled_skeleton')
    finals, _ = _publish(peer, node, frames, joints, first, no_skeleton=gap)
    assert peer.spin_until(lambda: len(peer.finals()) > finals, 30, node), node.log()
    peer.wait_counter('decisions_with_filled_skeleton', filled + 1, node)
    offline, _ = _offline(checkpoint, frames, joints, first, without=gap,
                          max_missing_skeleton_fraction=0.9)
    final = [p for p in offline if not p.early]
    assert len(final) == 1 and final[0].skeleton_filled_frames == 32
    start_ns, block, probabilities = peer.finals()[-1]
    assert (start_ns, block) == (final[0].start_stamp_ns, final[0].block)
    np.testing.assert_allclose(probabilities, final[0].probabilities, atol=1e-5)


def test_sigterm_stops_the_node_cleanly(node):
    started = time.monotonic()
    assert node.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 1.0
    assert 'Traceback' not in node.log(), node.log()
