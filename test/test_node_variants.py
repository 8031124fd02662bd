"""The node's other inputs over DDS: JPEG CompressedImage and Azure Kinect MarkerArray."""

import time

import cv2
from node_harness import (
    FRAME_NS, node_command, NodeProcess, require_module, SECOND, TestPeer)
import numpy as np
from pitch_predictor.runtime.core import PredictorCore
from pitch_predictor.runtime.messages import K4ABT_FOR_KINECT_V2
import pytest
from runtime_fixtures import make_checkpoint, synthetic_trial

rclpy = require_module('rclpy')

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            [int(cv2.IMWRITE_JPEG_QUALITY), 90])
    assert ok
    return data.tobytes()


def _markers(joints_by_body: dict, stamp_ns: int):
    """Azure Kinect ROS driver layout: id = body * 100 + K4ABT joint, optical frame."""
    from visualization_msgs.msg import Marker, MarkerArray

    array = MarkerArray()
    for body, joints in joints_by_body.items():
        k4abt = np.repeat(joints[:1], 32, axis=0)  # joints V2 lacks: any finite value
        k4abt[list(K4ABT_FOR_KINECT_V2)] = joints
        for index, (x, y, z) in enumerate(k4abt):
            marker = Marker(id=body * 100 + index, action=Marker.ADD, type=Marker.SPHERE)
            marker.header.stamp.sec, marker.header.stamp.nanosec = divmod(stamp_ns, SECOND)
            # Kinect V2 camera space (x left, y up) -> optical frame (x right, y down).
            marker.pose.position.x, marker.pose.position.y = -float(x), -float(y)
            marker.pose.position.z = float(z)
            array.markers.append(marker)
    return array


def test_compressed_images_and_marker_arrays(tmp_path):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage
    from visualization_msgs.msg import MarkerArray

    model = make_checkpoint(tmp_path / 'bi.pt', 'convgru2d_alexnet')
    frames, joints = synthetic_trial(width=960, height=540, seed=1)
    jpegs = [_jpeg(f) for f in frames]
    decoded = np.stack([cv2.cvtColor(cv2.imdecode(np.frombuffer(j, np.uint8),
                                                  cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                        for j in jpegs])
    # Someone standing still 1.5 m to the side: if the node tracked them instead of the
    # pitcher (nearest the image centre), no pitch would be detected.
    bystander = np.repeat(joints[:1], len(joints), axis=0)
    bystander[..., 0] += 1.5

    peer = TestPeer(image_topic='/unused/image', skeleton_topic='/unused/skeleton')
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    image_pub = peer.node.create_publisher(
        CompressedImage, '/kinect2/qhd/image_color/compressed', qos)
    marker_pub = peer.node.create_publisher(MarkerArray, '/body_tracking/skeleton', qos)
    node = NodeProcess(node_command([
        '-p', f'model_path:={model}', '-p', 'device:=cpu', '-p', 'qos_depth:=100',
        '-p', 'image_transport:=compressed', '-p', 'skeleton_type:=marker_array',
        '-p', 'diagnostics_period_s:=0.2', '-p', 'max_pending_frames:=300']),
        tmp_path / 'node.log')
    try:
        assert peer.spin_until(
            lambda: image_pub.get_subscription_count() > 0
            and marker_pub.get_subscription_count() > 0
            and all(s.get_publisher_count() > 0 for s in peer.subscriptions), 60, node), \
            node.log()
        first = 50 * SECOND
        start = time.monotonic()
        for k in range(len(frames)):
            stamp = first + k * FRAME_NS
            marker_pub.publish(_markers({4: bystander[k], 1: joints[k]}, stamp))
            msg = CompressedImage(format='jpeg', data=jpegs[k])
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, SECOND)
            image_pub.publish(msg)
            while time.monotonic() < start + (k + 1) / 30:
                peer.executor.spin_once(timeout_sec=0.005)
        assert peer.spin_until(lambda: len(peer.finals()) == 1, 30, node), \
            str(peer.diagnostics) + node.log()
    finally:
        assert node.stop() == 0
        peer.close()

    core = PredictorCore(model, device='cpu')
    offline = []
    for k in range(len(frames)):
        offline += core.ingest(first + k * FRAME_NS, decoded[k], joints[k])
    assert len(offline) == 1
    start_ns, block, probabilities = peer.finals()[0]
    assert (start_ns, block) == (offline[0].start_stamp_ns, offline[0].block)
    np.testing.assert_allclose(probabilities, offline[0].probabilities, atol=1e-5)
