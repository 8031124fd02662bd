"""The streaming start detector on a generated recording: one event per pitch, on time."""

import numpy as np
from pitch_predictor.data.bag import (
    read_ground_truth, read_recording, RGB_TOPIC, SKELETON_TOPIC, write_recording)
from pitch_predictor.preprocessing import crop_frames, fast_preprocess
from pitch_predictor.sim.generator import generate_trials, plan_dataset, small_config
from pitch_predictor.start_detector import (
    image_signature, StartDetectorConfig, StreamingStartDetector)


def test_streaming_detector_finds_every_pitch_in_a_recording(tmp_path):
    cfg = small_config(seed=21)
    specs = plan_dataset(cfg)
    trials = generate_trials(cfg, specs, workers=1, width=213, height=120, progress=False)
    path = tmp_path / 'stream.mcap'
    write_recording(path, trials, gap_frames=15)
    truth = read_ground_truth(path)

    frames, joints = {}, {}
    for topic, stamp, msg in read_recording(path, [RGB_TOPIC, SKELETON_TOPIC]):
        if topic == RGB_TOPIC:
            bgr = np.asarray(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
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

    period = 1e9 / 30
    errors = []
    for t in truth:
        inside = [s for s in starts if t.first_stamp_ns <= s <= t.last_stamp_ns]
        assert len(inside) <= 1, f'{t.trial_id}: {len(inside)} starts'
        errors.append(round((inside[0] - t.start_stamp_ns) / period) if inside else None)
    assert len(starts) == len(truth), 'a start outside any trial (false alarm)'
    assert sum(e is not None and abs(e) <= 3 for e in errors) >= len(truth) - 1, errors
