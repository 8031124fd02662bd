"""Message conversion: every supported encoding and every way a message can be broken."""

from types import SimpleNamespace as NS

import cv2
import numpy as np
from pitch_predictor.runtime.messages import (
    compressed_msg_to_rgb, image_msg_to_rgb, K4ABT_FOR_KINECT_V2, marker_array_to_joints,
    MessageError, pose_array_to_joints, stamp_to_ns)
import pytest


def _rgb(height=6, width=5):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _image(pixels: np.ndarray, encoding: str, pad: int = 0, data=None):
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    padded = np.concatenate([rows, np.zeros((height, pad), np.uint8)], axis=1)
    return NS(height=height, width=width, encoding=encoding, step=padded.shape[1],
              is_bigendian=0, data=padded.tobytes() if data is None else data)


@pytest.mark.parametrize('encoding,build', [
    ('rgb8', lambda p: p),
    ('bgr8', lambda p: p[..., ::-1]),
    ('rgba8', lambda p: np.dstack([p, np.full(p.shape[:2], 7, np.uint8)])),
    ('bgra8', lambda p: np.dstack([p[..., ::-1], np.full(p.shape[:2], 7, np.uint8)])),
])
def test_raw_encodings_give_rgb(encoding, build):
    pixels = _rgb()
    wire = np.ascontiguousarray(build(pixels))
    np.testing.assert_array_equal(image_msg_to_rgb(_image(wire, encoding)), pixels)
    # Padded rows (step > width * channels) are read row by row.
    np.testing.assert_array_equal(image_msg_to_rgb(_image(wire, encoding, pad=3)), pixels)


def test_mono8_is_grey_rgb():
    grey = _rgb()[..., 0]
    out = image_msg_to_rgb(_image(grey[..., None], 'mono8'))
    assert out.shape == grey.shape + (3,)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_array_array_data_like_rclpy():
    import array
    pixels = _rgb()
    msg = _image(pixels, 'rgb8', data=array.array('B', pixels.tobytes()))
    np.testing.assert_array_equal(image_msg_to_rgb(msg), pixels)


@pytest.mark.parametrize('change,reason', [
    ({'encoding': '16UC1'}, 'unsupported_encoding'),
    ({'encoding': 'yuv422'}, 'unsupported_encoding'),
    ({'width': 0}, 'bad_size'),
    ({'height': 100000}, 'bad_size'),
    ({'step': 4}, 'bad_size'),
    ({'data': b'\x00' * 20}, 'truncated'),
    ({'data': b''}, 'truncated'),
])
def test_broken_images_are_refused_with_a_reason(change, reason):
    msg = _image(_rgb(), 'rgb8')
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(MessageError) as err:
        image_msg_to_rgb(msg)
    assert err.value.reason == reason


def test_compressed_png_roundtrip_and_corrupt_data():
    pixels = _rgb(16, 12)
    ok, png = cv2.imencode('.png', cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    assert ok
    np.testing.assert_array_equal(
        compressed_msg_to_rgb(NS(format='rgb8; png compressed bgr8', data=png.tobytes())),
        pixels)
    with pytest.raises(MessageError) as err:
        compressed_msg_to_rgb(NS(format='jpeg', data=png.tobytes()[:40]))
    assert err.value.reason == 'decode_failed'
    with pytest.raises(MessageError) as err:
        compressed_msg_to_rgb(NS(format='h264', data=png.tobytes()))
    assert err.value.reason == 'unsupported_encoding'


def _pose_array(joints):
    return NS(poses=[NS(position=NS(x=float(x), y=float(y), z=float(z)))
                     for x, y, z in joints])


def test_pose_array_to_joints_keeps_sdk_order():
    joints = np.arange(75, dtype=np.float32).reshape(25, 3) / 10
    np.testing.assert_array_equal(pose_array_to_joints(_pose_array(joints)), joints)


@pytest.mark.parametrize('joints,reason', [
    (np.zeros((0, 3)), 'no_skeleton'),
    (np.zeros((24, 3)), 'wrong_joint_count'),
    (np.where(np.eye(25, 3) > 0, np.nan, 1.0), 'non_finite_joints'),
    (np.full((25, 3), np.inf), 'non_finite_joints'),
])
def test_bad_pose_arrays(joints, reason):
    with pytest.raises(MessageError) as err:
        pose_array_to_joints(_pose_array(joints))
    assert err.value.reason == reason


def _markers(bodies):
    """Azure Kinect driver layout: id = body * 100 + k4abt joint, optical frame."""
    markers = []
    for body_id, optical in bodies.items():
        for k4abt, (x, y, z) in enumerate(optical):
            markers.append(NS(id=body_id * 100 + k4abt, action=0,
                              pose=NS(position=NS(x=x, y=y, z=z))))
    return NS(markers=markers)


def test_marker_array_picks_the_central_body_and_converts_axes():
    rng = np.random.default_rng(1)
    central = rng.normal(0.0, 0.1, (32, 3)) + [0.05, 0.0, 3.0]
    aside = rng.normal(0.0, 0.1, (32, 3)) + [1.5, 0.0, 3.0]
    joints = marker_array_to_joints(_markers({7: aside, 3: central}))
    assert joints.shape == (25, 3)
    # SpineBase comes from PELVIS (0), Head from HEAD (26); optical x right/y down
    # becomes Kinect V2 x left/y up.
    np.testing.assert_allclose(joints[0], central[0] * [-1, -1, 1], rtol=1e-6)
    np.testing.assert_allclose(joints[3], central[26] * [-1, -1, 1], rtol=1e-6)
    assert len(set(K4ABT_FOR_KINECT_V2)) == 25


def test_marker_array_without_complete_body():
    partial = {1: np.ones((10, 3))}
    with pytest.raises(MessageError) as err:
        marker_array_to_joints(_markers(partial))
    assert err.value.reason == 'no_skeleton'


def test_stamp_to_ns():
    assert stamp_to_ns(NS(sec=3, nanosec=25)) == 3_000_000_025
