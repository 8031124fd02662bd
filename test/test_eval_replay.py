"""
A generated recording replayed over DDS into predictor_node and offline agree.

The DDS run starts the real node as a separate process (real rclpy, Fast DDS); the
offline run feeds the same bag through PredictorCore in this process. The model is a
tiny randomly initialised checkpoint: the test is about the plumbing, not accuracy.
"""

import json

import numpy as np
from pitch_predictor.data.bag import (
    read_ground_truth, read_recording, RGB_TOPIC, write_recording)
from pitch_predictor.models.checkpoint import save_checkpoint
from pitch_predictor.models.preprocessing import fast_preprocess
from pitch_predictor.models.registry import build_model, fast_config
from pitch_predictor.sim.generator import generate_trials, plan_dataset, SimConfig
import pytest
import torch

TRIALS = 3


@pytest.fixture(scope='module')
def recording(tmp_path_factory):
    """Write a 3-trial recording at the simulator's size and a random fast checkpoint."""
    folder = tmp_path_factory.mktemp('eval_replay')
    cfg = SimConfig(participants=1, trials_per_block=1, seed=4242)
    specs = plan_dataset(cfg)[:TRIALS]
    trials = generate_trials(cfg, specs, workers=1, progress=False)
    bag = folder / 'three.mcap'
    write_recording(bag, trials, seed=4242)
    torch.manual_seed(0)
    model = build_model('convgru2d_alexnet', **fast_config('convgru2d_alexnet'))
    checkpoint = folder / 'tiny.pt'
    save_checkpoint(checkpoint, model, model_name='convgru2d_alexnet',
                    model_config=model.config, preprocess=fast_preprocess(), sampling_method=1)
    return bag, checkpoint, folder


def test_rosbags_messages_become_rclpy_messages():
    pytest.importorskip('sensor_msgs.msg')
    from rosbags.typesys import get_typestore, Stores
    from sensor_msgs.msg import Image

    from pitch_predictor.evaluation.rosbags_to_rclpy import to_rclpy

    types = get_typestore(Stores.ROS2_JAZZY).types
    stamp = types['builtin_interfaces/msg/Time'](sec=12, nanosec=345)
    header = types['std_msgs/msg/Header'](stamp=stamp, frame_id='cam')
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8)
    bag_msg = types['sensor_msgs/msg/Image'](
        header=header, height=2, width=3, encoding='bgr8', is_bigendian=0, step=9,
        data=pixels)
    msg = to_rclpy(bag_msg)
    assert isinstance(msg, Image)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 345)
    assert msg.header.frame_id == 'cam'
    assert (msg.height, msg.width, msg.step, msg.encoding) == (2, 3, 9, 'bgr8')
    assert list(msg.data) == list(range(18))


@pytest.fixture(scope='module')
def two_stream_checkpoint(recording):
    """Save a random fast two-stream model (RGB + joints, fixed seed) beside the bag."""
    _, _, folder = recording
    torch.manual_seed(1)
    config = fast_config('two_stream_2d')
    model = build_model('two_stream_2d', **config)
    checkpoint = folder / 'two_stream.pt'
    save_checkpoint(checkpoint, model, model_name='two_stream_2d', model_config=config,
                    preprocess=fast_preprocess(), sampling_method=1)
    return checkpoint


@pytest.fixture(scope='module')
def joints_checkpoint(recording):
    """Save a random fast joints-only skeleton GRU (the validated recipe, fixed seed)."""
    from runtime_fixtures import make_checkpoint, SKELETON_RECIPE

    _, _, folder = recording
    return make_checkpoint(folder / 'skeleton_gru.pt', 'skeleton_gru', seed=2,
                           sampling_method=1, config=SKELETON_RECIPE)


def _frames_in(bag) -> int:
    """Count the recording's image messages (what the replay publishes as frames)."""
    return sum(1 for _ in read_recording(bag, topics=[RGB_TOPIC]))


def _dds_equals_offline(bag, checkpoint, out_dir, params=()):
    """Run offline and over DDS; assert identical predictions; return both results."""
    from pitch_predictor.evaluation.offline import run_offline
    from pitch_predictor.evaluation.run import EvalOptions, evaluate, predictions_agree

    offline, offline_stats = run_offline(bag, checkpoint,
                                         node_params_overrides=['device:=cpu', *params],
                                         progress=False)
    truths = read_ground_truth(bag)
    assert len(truths) == TRIALS
    # Start detection does not depend on the (random) model: a pitch must be found.
    assert offline, 'offline run found no pitch at all'

    # A deep input queue: on a busy CI machine the node may fall behind for a moment;
    # this test is about identical processing, not about keeping up in real time.
    result = evaluate(EvalOptions(bag=bag, mode='dds', model=checkpoint, rate=1.0,
                                  out_dir=out_dir,
                                  node_params=['device:=cpu', 'qos_depth:=1000', *params],
                                  drain_timeout_s=10.0, progress=False))
    problem = predictions_agree(offline, result.predictions, atol=1e-5)
    assert problem is None, problem
    # Every message reached the node: nothing was dropped on the way.
    frames = _frames_in(bag)
    assert result.stats['frames_published'] == frames
    assert int(result.stats['node_diagnostics']['frames_received']) == frames
    # Each DDS prediction came back with a delivery latency measured from outside.
    assert all(p.delivery_latency_s is not None and p.delivery_latency_s > 0
               for p in result.predictions)
    summary = json.loads((out_dir / 'summary.json').read_text())
    assert summary['trials'] == TRIALS
    assert (out_dir / 'confusion.png').stat().st_size > 0
    return offline_stats, result


@pytest.mark.ros
@pytest.mark.slow
def test_dds_replay_and_offline_give_identical_predictions(recording):
    bag, checkpoint, folder = recording
    _dds_equals_offline(bag, checkpoint, folder / 'dds')


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize('fixture, model, kind', [
    ('two_stream_checkpoint', 'two_stream_2d', 'rgb+joints'),
    ('joints_checkpoint', 'skeleton_gru', 'joints')])
def test_models_reading_joints_give_identical_predictions_offline_and_over_dds(
        recording, request, fixture, model, kind):
    bag, _, folder = recording
    offline_stats, result = _dds_equals_offline(bag, request.getfixturevalue(fixture),
                                                folder / f'dds_{model}')
    diagnostics = result.stats['node_diagnostics']
    assert diagnostics['model'] == model
    assert diagnostics['input_kind'] == kind
    # The skeleton-gap policy decided the same windows in both runs.
    counters = offline_stats['core_counters']
    for key in ('windows_skipped_no_skeleton', 'decisions_with_filled_skeleton',
                'frames_paired', 'predictions'):
        assert int(diagnostics[key]) == counters.get(key, 0), key


@pytest.mark.ros
@pytest.mark.slow
def test_a_pitchers_row_offsets_give_identical_predictions_offline_and_over_dds(
        recording, joints_checkpoint):
    from pitch_predictor.evaluation.offline import run_offline
    from pitch_predictor.models.decision import apply_row_offset, row_offset_vector
    bag, _, folder = recording
    params = ['pitcher_row_offset_top:=2.0', 'pitcher_row_offset_bottom:=-3.0']
    _, result = _dds_equals_offline(bag, joints_checkpoint, folder / 'dds_row_offset', params)
    # The node applied them: each prediction is the plain one, reweighed by row.
    plain, _ = run_offline(bag, joints_checkpoint, node_params_overrides=['device:=cpu'],
                           progress=False)
    assert len(result.predictions) == len(plain) > 0
    offsets = row_offset_vector(2.0, -3.0)
    for shifted, base in zip(result.predictions, plain):
        assert shifted.start_stamp_ns == base.start_stamp_ns
        np.testing.assert_allclose(shifted.probabilities,
                                   apply_row_offset(base.probabilities, offsets), atol=1e-5)


@pytest.mark.ros
@pytest.mark.slow
def test_the_shipped_rgb_only_pose_gru_gives_identical_predictions_offline_and_over_dds(
        recording):
    from pitch_predictor.shipped_model import shipped_model_path
    bag, _, folder = recording
    _, result = _dds_equals_offline(bag, shipped_model_path('pose_gru_fast.pt'),
                                    folder / 'dds_pose_gru')
    diagnostics = result.stats['node_diagnostics']
    assert diagnostics['model'] == 'pose_gru_alexnet'
    assert diagnostics['input_kind'] == 'rgb'


def test_the_final_node_status_must_have_seen_the_last_skeleton_too():
    # The last frame is paired only when its skeleton is in: a status sent between the
    # two (seen once in CI: frames_paired 449 of 450) is not the final one.
    from pitch_predictor.evaluation.replay import _saw_everything, ReplayStats
    stats = ReplayStats(frames_published=450, skeletons_published=450)
    assert not _saw_everything({'frames_received': '450', 'skeletons_received': '449'}, stats)
    assert not _saw_everything({'frames_received': '449', 'skeletons_received': '450'}, stats)
    assert not _saw_everything({'frames_received': '450'}, stats)
    assert _saw_everything({'frames_received': '450', 'skeletons_received': '450'}, stats)
