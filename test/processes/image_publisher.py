"""
Publish Kinect qHD-sized bgr8 images from a separate process (middleware test peer).

Usage: image_publisher.py TOPIC COUNT
Waits until a subscriber has matched (never a fixed sleep), publishes COUNT frames
whose pixels are a known function of the frame index, then lingers so the reliable
writer can finish delivery.
"""

import sys
import time

import numpy as np
import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

WIDTH, HEIGHT = 960, 540


def frame_pixels(index: int) -> np.ndarray:
    """Return the bgr8 pixels of frame ``index`` (the test recomputes them independently)."""
    rows = np.arange(HEIGHT, dtype=np.uint32)[:, None, None]
    cols = np.arange(WIDTH, dtype=np.uint32)[None, :, None]
    chans = np.arange(3, dtype=np.uint32)[None, None, :]
    return ((rows * 7 + cols * 3 + chans * 50 + index * 11) % 256).astype(np.uint8)


def main() -> int:
    """Publish the frames and exit 0, or 2 if no subscriber appeared."""
    topic, count = sys.argv[1], int(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node('qhd_image_publisher')
    qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE,
                     history=HistoryPolicy.KEEP_LAST, depth=count)
    pub = node.create_publisher(Image, topic, qos)
    deadline = time.monotonic() + 30.0
    while pub.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            print('no subscriber matched within 30 s', file=sys.stderr)
            return 2
        rclpy.spin_once(node, timeout_sec=0.05)
    for index in range(count):
        msg = Image()
        msg.header.frame_id = 'kinect2_rgb_optical_frame'
        msg.header.stamp.sec = index
        msg.height, msg.width, msg.encoding = HEIGHT, WIDTH, 'bgr8'
        msg.step = WIDTH * 3
        msg.data = frame_pixels(index).tobytes()
        pub.publish(msg)
        time.sleep(1.0 / 30.0)
    # A reliable writer keeps resending lost fragments only while it exists.
    end = time.monotonic() + 5.0
    while time.monotonic() < end and pub.get_subscription_count() > 0:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
