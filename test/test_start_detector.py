"""
The start-frame detector (paper Section IV-A) on hand-built sequences.

Signatures are 1x1 "images" whose value is the wanted dx (the reference frame is 0),
and joint arrays whose first coordinate is the wanted dtheta, so every distance the
detector sees is written out in the test.
"""

import numpy as np
from pitch_predictor.start_detector import (
    detect_start, image_signature, StartDetectorConfig, StartNotFound,
    StreamingStartDetector)
import pytest

T = 40


def sequence(dx_values: dict, dtheta_values: dict, length: int = T):
    """Return (signatures (T,1,1), joints (T,25,3)) with dx/dtheta set per frame."""
    # float64: the detector compares in float64, so 0.16 here is exactly the threshold.
    sig = np.zeros((length, 1, 1), np.float64)
    joints = np.zeros((length, 25, 3), np.float64)
    for t, v in dx_values.items():
        sig[t, 0, 0] = v
    for t, v in dtheta_values.items():
        joints[t, 0, 0] = v
    return sig, joints


def rising(start: int, first: float = 7.0, step: float = 1.0, length: int = T) -> dict:
    """Return the dx of a motion from ``start`` on: first, first + step, ..."""
    return {t: first + step * (t - start) for t in range(start, length)}


def two_pitches(rest_frames: int):
    """Return a 30-frame pitch (motion from frame 12), ``rest_frames`` still, the pitch again."""
    one_sig, one_joints = sequence(rising(12, length=30), dict.fromkeys(range(12, 30), 0.3),
                                   length=30)
    rest_sig, rest_joints = sequence({}, {}, length=rest_frames)
    return (np.concatenate([one_sig, rest_sig, one_sig]),
            np.concatenate([one_joints, rest_joints, one_joints]))


def stream(sig, joints, cfg=None, offset=0):
    det = StreamingStartDetector(cfg)
    events = []
    for t in range(len(sig)):
        ev = det.update(offset + t, sig[t], joints[t])
        if ev is not None:
            events.append(ev)
    return det, events


def test_clean_start_is_found():
    sig, joints = sequence(rising(12), dict.fromkeys(range(12, T), 0.3))
    assert detect_start(sig, joints) == 12


def test_condition_a_failing_alone_moves_the_start():
    # At 12: dx non-decreasing (b holds), dtheta large (c holds), but dx < 6.
    dx = rising(12)
    dx[12] = 5.99
    sig, joints = sequence(dx, dict.fromkeys(range(12, T), 0.3))
    assert detect_start(sig, joints) == 13


def test_condition_b_failing_alone_moves_the_start():
    # dx >= 6 everywhere from 12 and dtheta large, but dx drops once at 16 -> 17.
    dx = rising(12)
    dx[17] = dx[16] - 0.01
    for t in range(18, T):
        dx[t] = dx[16] + (t - 17)
    sig, joints = sequence(dx, dict.fromkeys(range(12, T), 0.3))
    # Every i in 12..16 has the drop inside its 8-frame run; 17 is the first clean one.
    assert detect_start(sig, joints) == 17


def test_condition_c_failing_alone_moves_the_start():
    dth = dict.fromkeys(range(12, T), 0.3)
    dth[12] = 0.159
    sig, joints = sequence(rising(12), dth)
    assert detect_start(sig, joints) == 13


def test_exact_boundary_values_count():
    # dx exactly 6 and flat (equal values are non-decreasing), dtheta exactly 0.16.
    dx = dict.fromkeys(range(12, T), 6.0)
    sig, joints = sequence(dx, {12: 0.16})
    assert detect_start(sig, joints) == 12


def test_run_shorter_than_eight_frames_is_not_a_start():
    dx = {t: 6.0 + t for t in range(12, 19)}  # 7 frames only, then back to rest
    sig, joints = sequence(dx, dict.fromkeys(range(12, 19), 0.3))
    with pytest.raises(StartNotFound):
        detect_start(sig, joints)


def test_no_start_found_says_why():
    sig, joints = sequence({}, {})
    with pytest.raises(StartNotFound, match='max dx 0.00'):
        detect_start(sig, joints)


def test_start_never_before_min_start_index():
    # Motion already in frames 0..9 relative to the reference at 9 does not count.
    sig, joints = sequence({t: 7.0 + t for t in range(0, T)}, dict.fromkeys(range(T), 0.3))
    sig[9] = 0.0
    joints[9] = 0.0
    start = detect_start(sig, joints)
    assert start == StartDetectorConfig().min_start_index


def test_reference_frame_is_frame_ten():
    # Frames before the reference differ from it; only distances to frame 9 matter.
    sig, joints = sequence(rising(20), dict.fromkeys(range(20, T), 0.3))
    sig[:9] = 50.0
    joints[:9] = 1.0
    assert detect_start(sig, joints) == 20


def test_short_sequence_is_reported():
    sig, joints = sequence({}, {}, length=12)
    with pytest.raises(StartNotFound, match='too short'):
        detect_start(sig, joints)


def test_image_signature_normalisation():
    cfg = StartDetectorConfig(signature_size=8)
    crop = np.full((120, 120, 3), 255, np.uint8)
    sig = image_signature(crop, cfg)
    assert sig.shape == (8, 8) and sig.dtype == np.float32
    np.testing.assert_allclose(sig, (1.0 - cfg.signature_mean) / cfg.signature_std, rtol=1e-6)
    # A crop of any stored size gives the same signature of a uniform image.
    np.testing.assert_allclose(image_signature(np.full((240, 240, 3), 255, np.uint8), cfg), sig)


def test_detect_start_accepts_crops():
    cfg = StartDetectorConfig(signature_size=16)
    crops = np.full((T, 32, 32, 3), 100, np.uint8)
    for t in range(14, T):  # a growing bright square: dx grows every frame
        crops[t, :, : min(32, 2 + (t - 14) * 2)] = 255
    joints = np.zeros((T, 25, 3), np.float32)
    joints[14:, 0, 0] = 0.5
    assert detect_start(crops, joints, cfg) == 14


@pytest.mark.parametrize('case', ['clean', 'a', 'b', 'c', 'boundary'])
def test_streaming_equals_whole_trial(case):
    dx, dth = rising(12), dict.fromkeys(range(12, T), 0.3)
    if case == 'a':
        dx[12] = 5.99
    elif case == 'b':
        dx[17] = dx[16] - 0.01
    elif case == 'c':
        dth[12] = 0.159
    elif case == 'boundary':
        dx, dth = dict.fromkeys(range(12, T), 6.0), {12: 0.16}
    sig, joints = sequence(dx, dth)
    expected = detect_start(sig, joints)
    det, events = stream(sig, joints, offset=1000)
    assert [e.start_index for e in events] == [1000 + expected]
    assert events[0].reference_index == 1009
    assert events[0].detected_index == 1000 + expected + 7
    assert det.state == 'in_action'


def test_streaming_on_noisy_random_sequences_matches():
    rng = np.random.default_rng(3)
    for _ in range(20):
        onset = int(rng.integers(10, 25))
        dx = {t: abs(rng.normal(0, 0.5)) for t in range(T)}
        dx.update({t: 3.0 + 1.5 * (t - onset) + rng.normal(0, 0.8) for t in range(onset, T)})
        dth = {t: abs(rng.normal(0, 0.03)) for t in range(T)}
        dth.update({t: 0.05 * (t - onset + 1) for t in range(onset, T)})
        sig, joints = sequence(dx, dth)
        sig[9] = 0.0
        joints[9] = 0.0
        try:
            expected = [detect_start(sig, joints)]
        except StartNotFound:
            expected = []
        _, events = stream(sig, joints)
        assert [e.start_index for e in events] == expected


def test_streaming_refractory_and_rearm():
    # Two pitches in one stream: rest 12, pitch, rest, pitch.
    sig, joints = two_pitches(rest_frames=12)
    cfg = StartDetectorConfig(action_frames=1000)
    det = StreamingStartDetector(cfg)
    events = []
    for t in range(len(sig)):
        ev = det.update(t, sig[t], joints[t])
        if ev is not None:
            events.append(ev.start_index)
            assert det.state == 'in_action'
        if t == 25:  # the node's window is complete: back to waiting for rest
            det.action_done()
            assert det.state == 'waiting_for_rest'
    # Second pitch: rest is frames 30..41 + 0..11 of the copy, its motion starts at 42+12.
    assert events == [12, 54]


def test_streaming_without_action_done_stays_quiet_until_timeout():
    sig, joints = sequence(rising(12), dict.fromkeys(range(12, T), 0.3))
    det, events = stream(sig, joints, cfg=StartDetectorConfig(action_frames=1000))
    assert len(events) == 1 and det.state == 'in_action'


def test_streaming_action_frames_timeout_rearms_without_action_done():
    # Pitch (start 12), 20 rest frames, pitch again; nobody calls action_done().
    sig, joints = two_pitches(rest_frames=20)
    det = StreamingStartDetector(StartDetectorConfig(action_frames=20))
    events, states = [], {}
    for t in range(len(sig)):
        ev = det.update(t, sig[t], joints[t])
        states[t] = det.state
        if ev is not None:
            events.append(ev.start_index)
    # 20 frames after the start at 12 the action times out; the still run restarts at 33
    # and arms after 10 frames (reference 42); the second motion starts at 50 + 12.
    assert states[31] == 'in_action' and states[32] == 'waiting_for_rest'
    assert states[41] == 'waiting_for_rest' and states[42] == 'armed'
    assert events == [12, 62]
    # Without the timeout the second pitch is never seen.
    _, late = stream(sig, joints, cfg=StartDetectorConfig(action_frames=1000))
    assert [e.start_index for e in late] == [12]


def test_streaming_reset_when_index_goes_back():
    sig, joints = sequence(rising(12), dict.fromkeys(range(12, T), 0.3))
    det = StreamingStartDetector()
    for t in range(11):
        det.update(t, sig[t], joints[t])
    assert det.state == 'armed'
    det.update(5, sig[0], joints[0])  # stamps went backwards
    assert det.state == 'waiting_for_rest' and det.reference_index is None
    det.reset()
    assert det.state == 'waiting_for_rest'


def test_streaming_rest_tolerance_blocks_arming():
    # A person who keeps moving a little (above the rest tolerance) never arms.
    cfg = StartDetectorConfig()
    sig, joints = sequence({t: (t % 2) * (cfg.rest_image_tol + 0.5) for t in range(T)}, {})
    det, events = stream(sig, joints, cfg)
    assert det.state == 'waiting_for_rest' and events == []


def test_untracked_skeleton_restarts_rest_search():
    sig, joints = sequence({}, {})
    joints[5] = np.nan
    det = StreamingStartDetector()
    for t in range(12):
        det.update(t, sig[t], joints[t])
    assert det.state == 'waiting_for_rest'  # only 6 still frames since the gap
    for t in range(12, 16):
        det.update(t, sig[t], joints[t])
    assert det.state == 'armed' and det.reference_index == 15


def finish_walk_back_stream():
    """
    Return a stream with a walk back between two pitches.

    Rest, pitch (start 12), 30 still frames in the finish stance 0.5 m forward, a walk
    back (a motion from that stance: frames 60..79), rest at home, pitch again (start 92).
    """
    length = 130
    sig = np.zeros((length, 1, 1))
    joints = np.zeros((length, 25, 3))
    for t in range(12, 30):  # the pitch
        sig[t], joints[t, 0, 0] = 7.0 + (t - 12), 0.3
    sig[30:60], joints[30:60, 0, 0] = 20.0, 0.5  # finish stance: SpineBase 0.5 m away
    for t in range(60, 80):  # walking back: a rising change from the finish stance
        sig[t], joints[t, 0, 0] = 13.0 - (t - 60), 0.2
    for t in range(92, length):  # the next pitch, from home
        sig[t], joints[t, 0, 0] = 7.0 + (t - 92), 0.3
    return sig, joints


@pytest.mark.parametrize('rearm_distance, expected', [(0.25, [12, 92]), (0.0, [12, 60])])
def test_streaming_rearms_only_near_home_after_a_pitch(rearm_distance, expected):
    sig, joints = finish_walk_back_stream()
    det = StreamingStartDetector(StartDetectorConfig(rearm_distance=rearm_distance))
    events = []
    for t in range(len(sig)):
        ev = det.update(t, sig[t], joints[t])
        if ev is not None:
            events.append(ev.start_index)
        if t == 29:  # the node's window is complete
            det.action_done()
    # Without the guard the walk back is taken for a pitch (60) and the real one is lost
    # in its refractory time; with it the stance 0.5 m from home never arms.
    assert events == expected


def test_streaming_rearm_timeout_arms_at_a_new_spot():
    sig, joints = finish_walk_back_stream()
    det = StreamingStartDetector(StartDetectorConfig(rearm_timeout_frames=20))
    states = {}
    for t in range(len(sig)):
        det.update(t, sig[t], joints[t])
        states[t] = det.state
        if t == 29:
            det.action_done()
    # Still in the stance from frame 30: 20 frames later (49) it counts as a new spot.
    assert states[48] == 'waiting_for_rest' and states[49] == 'armed'
