"""
The running node over real DDS: same answer as offline, bad input, looping, parameters.

One ``predictor_node`` process serves the whole module (start-up costs seconds); the
test process publishes into it and listens to its outputs. Each test starts its stream
a minute after the previous one, so the node sees a gap and starts afresh.
"""

import signal
import time

from node_harness import (
    FRAME_NS, open_peer, qhd_trial, require_module, SECOND, start_node, Streams)
import numpy as np
from pitch_predictor.runtime.core import PredictorCore
import pytest
from runtime_fixtures import make_checkpoint

rclpy = require_module('rclpy')

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """Save a random streamable fast model (early estimates and finals)."""
    return make_checkpoint(tmp_path_factory.mktemp('node') / 'fwd.pt', 'convgru1d_alexnet')


@pytest.fixture(scope='module')
def trial():
    """Render a qHD pitch here, independent of the simulator."""
    return qhd_trial()


@pytest.fixture(scope='module')
def peer():
    """Create the test's own DDS participant."""
    with open_peer() as p:
        yield p


@pytest.fixture(scope='module')
def node(checkpoint, peer, tmp_path_factory):
    """Start the node under test (annotated images on)."""
    proc = start_node(checkpoint, peer, tmp_path_factory.mktemp('node') / 'node.log',
                      '-p', 'publish_annotated_image:=true')
    yield proc
    proc.stop()


@pytest.fixture(scope='module')
def streams():
    """Stream start stamps for the module."""
    return Streams()


def _offline_predictions(checkpoint, frames, joints, first_stamp):
    core = PredictorCore(checkpoint, device='cpu')
    out = []
    for k in range(len(frames)):
        out += core.ingest(first_stamp + k * FRAME_NS, frames[k], joints[k])
    return out


def test_node_answers_like_the_offline_core(node, peer, checkpoint, trial, streams):
    frames, joints = trial
    first = streams.start()
    finals_before = len(peer.finals())
    early_before = len(peer.early)
    peer.publish_stream(frames, joints, first)
    assert peer.spin_until(lambda: len(peer.finals()) > finals_before, 30, node), \
        str(peer.diagnostics) + node.log()
    start_ns, block, probabilities = peer.finals()[-1]

    offline = _offline_predictions(checkpoint, frames, joints, first)
    final = [p for p in offline if not p.early]
    assert len(final) == 1
    assert start_ns == final[0].start_stamp_ns
    assert block == final[0].block
    np.testing.assert_allclose(probabilities, final[0].probabilities, atol=1e-5)
    # Early estimates arrived too (fraction seen, then 9 probabilities): each is the
    # offline core's estimate at the same fraction (float32 on the wire). Only how many
    # arrive can vary: the node drops an estimate its worker is too busy for.
    early = peer.early[early_before:]
    offline_early = {p.fraction_seen: p.probabilities for p in offline if p.early}
    assert len(early) >= 1
    for estimate in early:
        same = [f for f in offline_early if abs(f - estimate.data[0]) < 1e-6]
        assert len(same) == 1, (estimate.data[0], sorted(offline_early))
        np.testing.assert_allclose(np.asarray(estimate.data[1:]), offline_early[same[0]],
                                   atol=1e-5)
    peer.wait_counter('frames_received', len(frames), node)
    # publish_annotated_image is on: frames come back annotated, same size and stamp.
    assert peer.annotated and peer.annotated[-1][:3] == (960, 540, 'rgb8')
    assert peer.annotated[-1][3] >= first // SECOND


def test_looping_stream_resets_and_predicts_the_same_again(node, peer, trial, streams):
    frames, joints = trial
    first = streams.start()
    resets = peer.counter('resets.stamp_backwards')
    finals = len(peer.finals())
    peer.publish_stream(frames, joints, first)
    peer.publish_stream(frames, joints, first)  # the bag loops: stamps jump back
    assert peer.spin_until(lambda: len(peer.finals()) >= finals + 2, 30, node), node.log()
    peer.wait_counter('resets.stamp_backwards', resets + 1, node)
    (s1, b1, p1), (s2, b2, p2) = peer.finals()[-2:]
    assert (s1, b1) == (s2, b2)
    np.testing.assert_allclose(p1, p2, atol=1e-6)


def _publish_one(peer, msg, kind='image'):
    (peer.image_pub if kind == 'image' else peer.skeleton_pub).publish(msg)


@pytest.mark.parametrize('case,counter', [
    ('encoding', 'frames_rejected.unsupported_encoding'),
    ('truncated', 'frames_rejected.truncated'),
    ('step', 'frames_rejected.bad_size'),
    ('narrow', 'frames_rejected.bad_size'),
    ('nan_joints', 'skeletons_rejected.non_finite_joints'),
    ('joint_count', 'skeletons_rejected.wrong_joint_count'),
    ('no_body', 'skeletons_rejected.no_skeleton'),
    ('missing_skeleton', 'frames_without_skeleton'),
    ('gap', 'resets.stream_gap'),
    ('backwards', 'resets.stamp_backwards'),
    ('dropped', 'frames_missing'),
])
def test_bad_input_is_counted_and_survived(node, peer, trial, streams, case, counter):
    frames, joints = trial
    first = streams.start()
    before = peer.counter(counter)
    rgb = frames[0]
    if case == 'encoding':
        msg = peer.image_msg(rgb, first)
        msg.encoding = '16UC1'
        _publish_one(peer, msg)
    elif case == 'truncated':
        msg = peer.image_msg(rgb, first)
        msg.data = bytes(msg.data)[:1000]
        _publish_one(peer, msg)
    elif case == 'step':
        msg = peer.image_msg(rgb, first)
        msg.step = 10
        _publish_one(peer, msg)
    elif case == 'narrow':
        _publish_one(peer, peer.image_msg(np.zeros((540, 20, 3), np.uint8), first))
    elif case == 'nan_joints':
        bad = joints[0].copy()
        bad[5] = np.nan
        _publish_one(peer, peer.skeleton_msg(bad, first), 'skeleton')
    elif case == 'joint_count':
        _publish_one(peer, peer.skeleton_msg(joints[0][:20], first), 'skeleton')
    elif case == 'no_body':
        _publish_one(peer, peer.skeleton_msg(np.zeros((0, 3)), first), 'skeleton')
    elif case == 'missing_skeleton':
        # Skeletons stop for 8 frames, then come back: those 8 go on unpaired.
        peer.publish_stream(frames[:8], None, first)
        peer.publish_stream(frames[8:11], joints[8:11], first + 8 * FRAME_NS)
    elif case == 'gap':
        # This stream starts a minute after the previous test's: one reset for that
        # first, then exactly one more for the 5 s pause under test.
        peer.publish_stream(frames[:2], joints[:2], first)
        peer.wait_counter(counter, before + 1, node)
        before += 1
        peer.publish_stream(frames[:2], joints[:2], first + 5 * SECOND)
        peer.wait_counter('frames_received', peer.counter('frames_received') + 2, node)
    elif case == 'backwards':
        peer.publish_stream(frames[:3], joints[:3], first)
        peer.publish_stream(frames[:3], joints[:3], first - SECOND)
    elif case == 'dropped':
        peer.publish_stream(frames[:2], joints[:2], first)
        peer.publish_stream(frames[:2], joints[:2], first + 4 * FRAME_NS)  # 2 lost
    peer.wait_counter(counter, before + 1, node)
    if case == 'gap':
        assert peer.counter(counter) == before + 1
    assert node.alive()


def test_parameters_are_checked_at_run_time(node, peer):
    results = peer.set_parameters('pitch_predictor', {'pair_tolerance_ms': -5.0})
    assert not results[0].successful and results[0].reason
    results = peer.set_parameters('pitch_predictor', {'sampling_method': 9})
    assert not results[0].successful
    results = peer.set_parameters('pitch_predictor', {'device': 'cpu'})  # read-only
    assert not results[0].successful
    results = peer.set_parameters('pitch_predictor', {'sampling_method': 'two'})
    assert not results[0].successful
    results = peer.set_parameters('pitch_predictor', {'detector.rest_frames': 0})
    assert not results[0].successful
    results = peer.set_parameters('pitch_predictor', {'early_every_frames': 10})
    assert results[0].successful, results[0].reason
    # A new pitcher's row offsets are set while the node runs, and reset for the next.
    results = peer.set_parameters('pitch_predictor', {'pitcher_row_offset_top': 30.0})
    assert not results[0].successful and 'pitcher_row_offset_top' in results[0].reason
    for top, bottom, shown in ((1.5, -1.75, '1.5/-1.75'), (0.0, 0.0, '0/0')):
        results = peer.set_parameters('pitch_predictor', {'pitcher_row_offset_top': top,
                                                          'pitcher_row_offset_bottom': bottom})
        assert all(r.successful for r in results), [r.reason for r in results]
        assert peer.spin_until(
            lambda shown=shown: peer.diagnostics.get('pitcher_row_offset') == shown, 5,
            node), peer.diagnostics.get('pitcher_row_offset')
    assert peer.spin_until(lambda: node.alive(), 1)


def test_incompatible_publisher_is_reported(node, peer):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    # A camera driver publishing with sensor-data QoS (best effort) never matches the
    # node's reliable image subscription: the node must say so, where and what to do.
    before = peer.counter('qos_incompatible')
    publisher = peer.node.create_publisher(Image, '/kinect2/qhd/image_color',
                                           qos_profile_sensor_data)
    try:
        peer.wait_counter('qos_incompatible', before + 1, node)
        assert peer.counter('qos_incompatible.images') >= 1
        assert peer.spin_until(lambda: peer.status[0] == 1
                               and 'incompatible QoS' in peer.status[1], 5, node), peer.status
        assert peer.spin_until(lambda: 'qos_reliability: best_effort' in node.log(), 5, node)
        warning = [line for line in node.log().splitlines()
                   if 'qos_reliability: best_effort' in line]
        assert '/kinect2/qhd/image_color' in warning[0]
    finally:
        peer.node.destroy_publisher(publisher)


def test_sigint_after_load_stops_the_node_within_a_second(node, peer, trial, streams):
    frames, joints = trial
    first = streams.start()
    finals = len(peer.finals())
    # 21 s of 30 Hz qHD input, a pitch every 3 s, then SIGINT at once (still loaded:
    # decisions may be running). The stream belongs to this test alone.
    loops = 7
    peer.publish_stream(np.concatenate([frames] * loops), np.concatenate([joints] * loops),
                        first)
    started = time.monotonic()
    code = node.stop(signal.SIGINT, timeout_s=10)
    took_s = time.monotonic() - started
    assert code == 0, node.log()[-3000:]
    assert took_s < 1.0, f'exit took {took_s:.2f} s'
    assert len(peer.finals()) > finals, 'no prediction under load'
    log = node.log()
    assert 'Traceback' not in log, log
