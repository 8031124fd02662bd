"""The streaming start detector on a generated recording: one event per pitch, on time."""

from dataclasses import replace

import cv2
import numpy as np
from pitch_predictor.data.bag import (
    COMPRESSED_TOPIC, read_ground_truth, read_recording, RGB_TOPIC, SKELETON_TOPIC,
    write_recording)
from pitch_predictor.models.preprocessing import crop_frames, fast_preprocess
from pitch_predictor.sim.generator import (
    generate_trials, plan_dataset, small_config, WALK_BACK_FRAMES)
from pitch_predictor.start_detector import (
    image_signature, StartDetectorConfig, StreamingStartDetector)


def stream_starts(path):
    """Run the node's streaming detector over a recording; return (stamps, start stamps)."""
    frames, joints = {}, {}
    for topic, stamp, msg in read_recording(path, [RGB_TOPIC, COMPRESSED_TOPIC,
                                                   SKELETON_TOPIC]):
        if topic == RGB_TOPIC:
            bgr = np.asarray(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
            frames[stamp] = bgr[..., ::-1]
        elif topic == COMPRESSED_TOPIC:
            bgr = cv2.imdecode(np.asarray(msg.data, np.uint8), cv2.IMREAD_COLOR)
            frames[stamp] = bgr[..., ::-1]
        else:
            joints[stamp] = np.array([[p.position.x, p.position.y, p.position.z]
                                      for p in msg.poses])
    stamps = sorted(frames)
    assert stamps == sorted(joints)
    det_cfg = StartDetectorConfig()
    detector = StreamingStartDetector(det_cfg)
    pre = fast_preprocess()
    starts = []
    for k, stamp in enumerate(stamps):
        crop = crop_frames(np.ascontiguousarray(frames[stamp]), pre)[0]
        event = detector.update(k, image_signature(crop, det_cfg), joints[stamp])
        if event is not None:
            starts.append(stamps[event.start_index])
        if detector.state == 'in_action' and k - stamps.index(starts[-1]) >= 39:
            detector.action_done()  # what the node does when the 40-frame window is full
    return stamps, starts


def score_starts(path, stamps, starts, walk_frames):
    """Return (errors per trial in frames or None, false starts in walk-backs, elsewhere)."""
    truth = read_ground_truth(path)
    period = 1e9 / 30
    errors, in_walk, elsewhere = [], 0, 0
    for t in truth:
        inside = [s for s in starts if t.first_stamp_ns <= s <= t.last_stamp_ns]
        assert len(inside) <= 1, f'{t.trial_id}: {len(inside)} starts'
        errors.append(round((inside[0] - t.start_stamp_ns) / period) if inside else None)
    ends = {stamps.index(t.last_stamp_ns) for t in truth}
    for s in starts:
        if any(t.first_stamp_ns <= s <= t.last_stamp_ns for t in truth):
            continue
        k = stamps.index(s)
        if any(0 < k - e <= walk_frames for e in ends):
            in_walk += 1
        else:
            elsewhere += 1
    return errors, in_walk, elsewhere


def test_streaming_detector_finds_every_pitch_in_a_recording(tmp_path):
    cfg = small_config(seed=21)
    specs = [replace(s, session=0) for s in plan_dataset(cfg)]  # one camera set-up
    trials = generate_trials(cfg, specs, workers=1, width=213, height=120, progress=False)
    path = tmp_path / 'stream.mcap'
    write_recording(path, trials)  # default gap and walk-back, as the demo's
    stamps, starts = stream_starts(path)
    errors, in_walk, elsewhere = score_starts(path, stamps, starts, WALK_BACK_FRAMES)
    # Every pitch found (the detector re-arms at the rest spot after each walk-back) ...
    assert all(e is not None for e in errors), errors
    # Timing over drawn pitches (statistical): all but one within 3 frames.
    assert sum(abs(e) <= 3 for e in errors) >= len(errors) - 1, errors
    # ... and no start fires while the pitcher stands at rest. Walking back from the
    # finish stance is a motion from a still pose, which the paper's detector takes for
    # a start when it re-armed in the finish stance (docs/data.md): counted, not hidden.
    assert elsewhere == 0
    assert in_walk <= len(errors)
