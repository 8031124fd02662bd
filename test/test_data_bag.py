"""rosbag2 recordings: written and read back, frames, joints, stamps and labels agree."""

from dataclasses import replace
import json

import cv2
import numpy as np
from pitch_predictor.data.bag import (
    BagError, COMPRESSED_TOPIC, read_ground_truth, read_recording, RGB_TOPIC, SKELETON_TOPIC,
    TRUTH_TOPIC, write_recording)
from pitch_predictor.sim.generator import generate_trials, plan_dataset, small_config
import pytest

GAP = 3
WALK = 24


@pytest.fixture(scope='module')
def trials():
    """Render two small generated trials at 160x90, which keeps the test fast."""
    cfg = small_config(seed=9)
    # One session (camera, room), as in a continuous recording.
    specs = [replace(s, session=0) for s in plan_dataset(cfg)[:2]]
    return list(generate_trials(cfg, specs, workers=1, width=160, height=90, progress=False))


def read_all(path):
    by_topic = {}
    for topic, stamp, msg in read_recording(path):
        by_topic.setdefault(topic, []).append((stamp, msg))
    return by_topic


def stamp_of(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def test_raw_recording_round_trip(tmp_path, trials):
    path = tmp_path / 'stream.mcap'
    records = write_recording(path, trials, gap_frames=GAP, start_time_ns=10 ** 18,
                              walk_back_frames=0)
    assert path.is_file()
    topics = read_all(path)
    images, skeletons = topics[RGB_TOPIC], topics[SKELETON_TOPIC]
    assert len(images) == len(skeletons) == 2 * (90 + GAP)
    stamps = [s for s, _ in images]
    # One continuous 30 Hz stream: strictly increasing, 33.3 ms +- the 1 ms clock jitter.
    steps = np.diff(stamps)
    assert np.all(steps > 0) and np.all(np.abs(steps - 1e9 / 30) <= 2e6 + 1)
    assert [s for s, _ in skeletons] == stamps
    assert [stamp_of(m) for _, m in images] == stamps == [stamp_of(m) for _, m in skeletons]
    for k, (trial, rec) in enumerate(zip(trials, records)):
        offset = k * (90 + GAP) + GAP
        assert rec.frame_stamps_ns == stamps[offset:offset + 90]
        frames = trial.frames()
        for i in (0, 45, 89):
            msg = images[offset + i][1]
            assert (msg.encoding, msg.width, msg.height, msg.step) == ('bgr8', 160, 90, 480)
            bgr = np.asarray(msg.data, np.uint8).reshape(90, 160, 3)
            np.testing.assert_array_equal(bgr[..., ::-1], frames[i])  # exact for raw
            poses = skeletons[offset + i][1].poses
            joints = np.array([[p.position.x, p.position.y, p.position.z] for p in poses])
            np.testing.assert_array_equal(joints.astype(np.float32), trial.joints[i])
        # The gap before a trial shows the pitcher at rest: its own pre-motion frames.
        for g in range(GAP):
            gap_msg = images[offset - GAP + g][1]
            np.testing.assert_array_equal(
                np.asarray(gap_msg.data, np.uint8).reshape(90, 160, 3)[..., ::-1], frames[g])


def test_ground_truth_round_trip(tmp_path, trials):
    path = tmp_path / 'stream.mcap'
    written = write_recording(path, trials, gap_frames=GAP, walk_back_frames=WALK)
    truth = read_ground_truth(path)
    assert [(t.trial_id, t.block, t.participant) for t in truth] == \
        [(tr.trial_id, tr.block, tr.participant) for tr in trials]
    for t, w, tr in zip(truth, written, trials):
        assert t.first_stamp_ns == w.frame_stamps_ns[0]
        assert t.last_stamp_ns == w.frame_stamps_ns[-1]
        assert t.start_stamp_ns == w.frame_stamps_ns[tr.true_start]
        assert t.true_start == tr.true_start
        assert t.intended_block == tr.spec.intended_block
    raw = [(s, json.loads(m.data)) for _, s, m in read_recording(path, [TRUTH_TOPIC])]
    assert [r['trial_id'] for _, r in raw] == [tr.trial_id for tr in trials]
    # Published at the trial's first frame stamp.
    assert [s for s, _ in raw] == [w.frame_stamps_ns[0] for w in written]


def test_compressed_recording_carries_the_generator_jpegs(tmp_path, trials):
    path = tmp_path / 'bagdir'
    write_recording(path, trials, compressed=True, gap_frames=0, walk_back_frames=0)
    assert (path / 'metadata.yaml').exists()  # a rosbag2 folder when not *.mcap
    msgs = [m for _, _, m in read_recording(path, [COMPRESSED_TOPIC])]
    assert len(msgs) == 180 and msgs[0].format == 'jpeg'
    assert bytes(np.asarray(msgs[5].data, np.uint8)) == trials[0].jpegs[5]
    decoded = cv2.cvtColor(cv2.imdecode(np.asarray(msgs[95].data, np.uint8), cv2.IMREAD_COLOR),
                           cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(decoded, trials[1].frames()[5])


def test_existing_and_missing_paths(tmp_path, trials):
    path = tmp_path / 'x.mcap'
    write_recording(path, trials[:1], gap_frames=0)
    with pytest.raises(BagError, match='exists'):
        write_recording(path, trials[:1])
    with pytest.raises(BagError, match='does not exist'):
        list(read_recording(tmp_path / 'nothing.mcap'))


def test_walk_back_between_pitches_is_rendered_and_continuous(tmp_path, trials):
    path = tmp_path / 'walk.mcap'
    records = write_recording(path, trials, gap_frames=GAP, walk_back_frames=WALK)
    topics = read_all(path)
    images, skeletons = topics[RGB_TOPIC], topics[SKELETON_TOPIC]
    # Per trial: gap, the 90 frames, then the walk back to the rest spot.
    assert len(images) == len(skeletons) == 2 * (GAP + 90 + WALK)
    stamps = [s for s, _ in images]
    assert records[1].first_stamp_ns == stamps[2 * GAP + 90 + WALK]
    walk = trials[0].walk_back(trials[1], WALK)
    after = 90 + GAP
    for k in range(WALK):
        msg = images[after + k][1]
        decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(walk.jpegs[k], np.uint8),
                                            cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(
            np.asarray(msg.data, np.uint8).reshape(90, 160, 3)[..., ::-1], decoded)
    joints = np.array([[[p.position.x, p.position.y, p.position.z] for p in m.poses]
                       for _, m in skeletons])
    # No jump from the trial's last frame through the walk and the gap to the next trial
    # (a 24-frame walk, brisker than the default 40: under 0.2 m per frame and joint).
    between = joints[after - 1:after + WALK + GAP + 1]
    assert np.linalg.norm(np.diff(between, axis=0), axis=-1).max() < 0.2
    # The walk leaves the finish stance and ends at the next pitch's rest pose.
    assert np.linalg.norm(joints[after - 1] - joints[after + WALK - 1], axis=-1).mean() > 0.2
    # Up to the Kinect noise drawn on both frames (statistical).
    np.testing.assert_allclose(joints[after + WALK - 1], trials[1].joints[0], atol=0.05)


def test_bag_of_misses_records_intended_and_actual_block(tmp_path):
    from pitch_predictor.sim.cli import main
    from pitch_predictor.sim.generator import plan_misses

    misses = plan_misses(small_config(seed=123, trials_per_block=2))  # the bag defaults
    assert misses  # this plan has misses (about one throw in five misses)
    path = tmp_path / 'miss.mcap'
    assert main(['bag', '--miss', '--out', str(path), '--width', '160', '--height', '90',
                 '--workers', '1', '--walk-back-frames', '0', '--compressed']) == 0
    truth = read_ground_truth(path)
    assert sorted(t.trial_id for t in truth) == sorted(m.trial_id for m in misses)
    by_id = {m.trial_id: m for m in misses}
    for t in truth:
        assert (t.block, t.intended_block) == (by_id[t.trial_id].block,
                                               by_id[t.trial_id].intended_block)
        assert t.block != t.intended_block


def test_recordings_use_the_nodes_topic_names():
    from pitch_predictor import topics
    from pitch_predictor.runtime import node_params

    # One definition (pitch_predictor.topics): what a bag stores is what the node hears.
    assert RGB_TOPIC == '/' + topics.IMAGE_TOPIC
    assert COMPRESSED_TOPIC == '/' + topics.IMAGE_TOPIC + topics.COMPRESSED_SUFFIX
    assert SKELETON_TOPIC == '/' + topics.SKELETON_TOPIC
    assert node_params.SKELETON_TOPIC == topics.SKELETON_TOPIC
