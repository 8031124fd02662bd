"""
A generated recording replayed over DDS into predictor_node and offline agree.

The DDS run starts the real node as a separate process (real rclpy, Fast DDS); the
offline run feeds the same bag through PredictorCore in this process. The model is a
tiny randomly initialised checkpoint: the test is about the plumbing, not accuracy.
"""

import json

import numpy as np
from pitch_predictor.checkpoint import save_checkpoint
from pitch_predictor.data.bag import read_ground_truth, write_recording
from pitch_predictor.networks import build_model, fast_config
from pitch_predictor.preprocessing import fast_preprocess
from pitch_predictor.sim.generator import generate_trials, plan_dataset, SimConfig
import pytest
import torch

TRIALS = 3


@pytest.fixture(scope='module')
def recording(tmp_path_factory):
    """Write a 3-trial recording at the stored 426x240 size and a random fast checkpoint."""
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


@pytest.mark.ros
@pytest.mark.slow
def test_dds_replay_and_offline_give_identical_predictions(recording):
    from pitch_predictor.evaluation.offline import run_offline
    from pitch_predictor.evaluation.run import EvalOptions, evaluate, predictions_agree

    bag, checkpoint, folder = recording
    offline, _ = run_offline(bag, checkpoint, node_params_overrides=['device:=cpu'],
                             progress=False)
    truths = read_ground_truth(bag)
    assert len(truths) == TRIALS
    # Start detection does not depend on the (random) model: a pitch must be found.
    assert offline, 'offline run found no pitch at all'

    # A deep input queue: on a busy CI machine the node may fall behind for a moment;
    # this test is about identical processing, not about keeping up in real time.
    result = evaluate(EvalOptions(bag=bag, mode='dds', model=checkpoint, rate=1.0,
                                  out_dir=folder / 'dds',
                                  node_params=['device:=cpu', 'qos_depth:=1000'],
                                  drain_timeout_s=10.0, progress=False))
    problem = predictions_agree(offline, result.predictions, atol=1e-5)
    assert problem is None, problem
    # Every message reached the node: nothing was dropped on the way.
    assert result.stats['frames_published'] == 3 * 90 + 3 * 15
    # Each DDS prediction came back with a delivery latency measured from outside.
    assert all(p.delivery_latency_s is not None and p.delivery_latency_s > 0
               for p in result.predictions)
    summary = json.loads((folder / 'dds' / 'summary.json').read_text())
    assert summary['trials'] == TRIALS
    assert (folder / 'dds' / 'confusion.png').stat().st_size > 0
