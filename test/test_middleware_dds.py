"""Real middleware: a qHD bgr8 image crosses process boundaries over Fast DDS."""

import os
from pathlib import Path
import subprocess
import sys
import time

from node_harness import require_module
import numpy as np
import pytest

rclpy = require_module('rclpy')

HERE = Path(__file__).resolve().parent
COUNT = 10


def expected_pixels(index: int) -> np.ndarray:
    """Independent restatement of the publisher's pattern."""
    out = np.empty((540, 960, 3), dtype=np.uint8)
    for c in range(3):
        r = np.arange(540).reshape(-1, 1)
        k = np.arange(960).reshape(1, -1)
        out[:, :, c] = (7 * r + 3 * k + 50 * c + 11 * index) % 256
    return out


@pytest.mark.ros
def test_qhd_image_between_processes():
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    topic = f'/test_qhd_{os.getpid()}'
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    received = []
    try:
        node = rclpy.create_node('qhd_image_subscriber', context=ctx)
        qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE,
                         history=HistoryPolicy.KEEP_LAST, depth=COUNT)
        node.create_subscription(Image, topic, received.append, qos)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        proc = subprocess.Popen(
            [sys.executable, str(HERE / 'processes' / 'image_publisher.py'), topic, str(COUNT)],
            stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60.0
        while len(received) < COUNT and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)

    assert len(received) == COUNT
    for msg in received:
        index = msg.header.stamp.sec
        assert (msg.width, msg.height, msg.encoding, msg.step) == (960, 540, 'bgr8', 2880)
        pixels = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(540, 960, 3)
        np.testing.assert_array_equal(pixels, expected_pixels(index))
    assert sorted(m.header.stamp.sec for m in received) == list(range(COUNT))
