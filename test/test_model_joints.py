"""Pitcher-centred joint features against hand-built skeletons."""

import math

from pitch_predictor.kinect import JOINT_INDEX, JOINT_NAMES
from pitch_predictor.models.joints import (
    centred_joint_features, centred_joint_features_step, FEATURES_PER_JOINT,
    image_joint_features, image_joint_features_step, init_feature_state, joint_input_width,
    joint_inputs, joint_inputs_step, select_channels)
import pytest
import torch

# A standing pitcher in its own body frame (right, up, forward) in metres, feet on the
# floor, right arm raised to throw. Torso SpineBase -> SpineShoulder = 0.5 m.
BODY = {
    'SpineBase': (0.0, 1.0, 0.0), 'SpineMid': (0.0, 1.25, 0.0), 'Neck': (0.0, 1.58, 0.0),
    'Head': (0.0, 1.72, 0.02), 'SpineShoulder': (0.0, 1.5, 0.0),
    'ShoulderLeft': (-0.18, 1.47, 0.0), 'ElbowLeft': (-0.22, 1.2, 0.02),
    'WristLeft': (-0.24, 0.95, 0.05), 'HandLeft': (-0.24, 0.88, 0.05),
    'HandTipLeft': (-0.24, 0.8, 0.06), 'ThumbLeft': (-0.21, 0.87, 0.08),
    'ShoulderRight': (0.18, 1.47, 0.0), 'ElbowRight': (0.3, 1.6, -0.1),
    'WristRight': (0.34, 1.8, -0.15), 'HandRight': (0.36, 1.87, -0.16),
    'HandTipRight': (0.37, 1.95, -0.17), 'ThumbRight': (0.33, 1.88, -0.12),
    'HipLeft': (-0.1, 0.95, 0.0), 'KneeLeft': (-0.1, 0.5, 0.05),
    'AnkleLeft': (-0.1, 0.08, 0.0), 'FootLeft': (-0.1, 0.02, 0.1),
    'HipRight': (0.1, 0.95, 0.0), 'KneeRight': (0.1, 0.5, 0.05),
    'AnkleRight': (0.1, 0.08, 0.0), 'FootRight': (0.1, 0.02, 0.1),
}
TORSO = 0.5


def body_skeleton() -> torch.Tensor:
    """Return the pitcher in body coordinates ``(25, 3)`` in Kinect joint order."""
    return torch.tensor([BODY[name] for name in JOINT_NAMES], dtype=torch.float64)


def to_camera(body: torch.Tensor, distance: float = 3.0, height: float = 0.8,
              heading: float = 0.0, scale: float = 1.0,
              shift=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """
    Place body coordinates ``(..., 25, 3)`` in Kinect camera space.

    Facing the sensor (heading 0), the pitcher's right is the sensor's left (+x), up is +y
    and forward (towards the sensor) is -z. ``heading`` turns the pitcher about the
    vertical through SpineBase, ``scale`` resizes the body, ``shift`` moves it.
    """
    right, up, forward = body.unbind(-1)
    x, y, z = right * scale, up * scale, -forward * scale
    cos, sin = math.cos(heading), math.sin(heading)
    x, z = cos * x + sin * z, -sin * x + cos * z
    camera = torch.stack([x, y - height, z + distance], dim=-1)
    return (camera + torch.tensor(shift, dtype=camera.dtype)).float()


def throw(steps: int = 6) -> torch.Tensor:
    """Return body coordinates ``(T, 25, 3)``: the right hand moves forward and down."""
    body = body_skeleton().repeat(steps, 1, 1)
    for t in range(steps):
        for name in ('WristRight', 'HandRight', 'HandTipRight', 'ThumbRight'):
            body[t, JOINT_INDEX[name]] += torch.tensor([0.0, -0.12 * t, 0.15 * t],
                                                       dtype=body.dtype)
    return body


def test_features_are_the_body_frame_in_torso_lengths():
    features = centred_joint_features(to_camera(throw(3))[None])[0]
    assert features.shape == (3, 25, FEATURES_PER_JOINT)
    expected = (throw(3) - torch.tensor(BODY['SpineBase'], dtype=torch.float64)) / TORSO
    torch.testing.assert_close(features[..., :3], expected.float(), atol=1e-5, rtol=0)
    # SpineShoulder straight above SpineBase, one torso length up.
    torch.testing.assert_close(features[0, JOINT_INDEX['SpineShoulder'], :3],
                               torch.tensor([0.0, 1.0, 0.0]), atol=1e-6, rtol=0)
    assert (features[..., 6] == 1).all()


@pytest.mark.parametrize('heading, scale, shift', [
    (0.6, 1.0, (0.0, 0.0, 0.0)),
    (-1.2, 1.0, (0.4, -0.2, 1.5)),
    (0.0, 1.25, (0.0, 0.0, 0.0)),
    (2.5, 0.8, (-0.7, 0.3, 0.9)),
])
def test_camera_placement_and_body_size_do_not_change_the_features(heading, scale, shift):
    reference = centred_joint_features(to_camera(throw())[None])
    moved = centred_joint_features(
        to_camera(throw(), heading=heading, scale=scale, shift=shift)[None])
    torch.testing.assert_close(moved, reference, atol=1e-5, rtol=0)


def test_a_pure_translation_over_time_gives_its_velocity():
    # The pitcher steps towards the sensor (forward) and to its right, 0.05 and 0.02 m
    # per frame: every joint's velocity is that step, in torso lengths, from frame 1 on.
    steps = 5
    camera = to_camera(body_skeleton().repeat(steps, 1, 1))
    step = torch.tensor([0.02, 0.0, -0.05])  # camera space: +x = right, -z = forward
    camera = camera + torch.arange(steps).float()[:, None, None] * step
    features = centred_joint_features(camera[None])[0]
    velocity = features[..., 3:6]
    assert (velocity[0] == 0).all()
    expected = torch.tensor([0.02, 0.0, 0.05]) / TORSO
    torch.testing.assert_close(velocity[1:], expected.expand(steps - 1, 25, 3),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(features[-1, :, :3] - features[0, :, :3],
                               (steps - 1) * expected.expand(25, 3), atol=1e-5, rtol=0)


def test_missing_joints_are_zero_with_validity_zero():
    joints = to_camera(throw(4))
    hand = JOINT_INDEX['HandRight']
    joints[1, hand] = float('nan')
    joints[2, JOINT_INDEX['Head'], 1] = float('nan')  # one coordinate is enough
    features = centred_joint_features(joints[None])[0]
    assert torch.isfinite(features).all()
    assert (features[1, hand] == 0).all()
    assert (features[2, JOINT_INDEX['Head']] == 0).all()
    # No velocity into or out of the gap; the other joints are unaffected.
    assert (features[2, hand, 3:6] == 0).all() and features[2, hand, 6] == 1
    full = centred_joint_features(to_camera(throw(4))[None])[0]
    others = [j for j in range(25) if j not in (hand, JOINT_INDEX['Head'])]
    torch.testing.assert_close(features[:, others], full[:, others])


def test_reference_is_the_first_frame_with_a_body():
    joints = to_camera(throw(5))
    joints[0] = float('nan')  # frame lost
    joints[1, JOINT_INDEX['SpineBase']] = float('nan')  # no origin
    features = centred_joint_features(joints[None])[0]
    assert (features[:2] == 0).all()  # nothing before the reference (frame 2)
    expected = (throw(5)[2:] - throw(5)[2, JOINT_INDEX['SpineBase']]) / TORSO
    valid = features[2:, :, 6] == 1
    assert valid.sum() == 3 * 25
    torch.testing.assert_close(features[2:, :, :3], expected.float(), atol=1e-5, rtol=0)
    assert (features[2, :, 3:6] == 0).all()  # no previous frame to differ from


def test_one_pair_is_enough_for_the_heading():
    shoulders_only = to_camera(throw(3), heading=0.9)
    shoulders_only[:, JOINT_INDEX['HipLeft']] = float('nan')
    features = centred_joint_features(shoulders_only[None])[0]
    expected = centred_joint_features(to_camera(throw(3))[None])[0]
    keep = [j for j in range(25) if j != JOINT_INDEX['HipLeft']]
    torch.testing.assert_close(features[:, keep], expected[:, keep], atol=1e-5, rtol=0)


def test_no_skeleton_at_all_gives_zeros():
    joints = torch.full((2, 4, 25, 3), float('nan'))
    joints[1, :, :2] = 1.0  # SpineBase and SpineMid only: no heading, no reference
    features = centred_joint_features(joints)
    assert (features == 0).all()


def test_streaming_gives_the_clip_features():
    joints = torch.stack([to_camera(throw(6)), to_camera(throw(6), heading=1.0, scale=1.1)])
    joints[0, :2] = float('nan')
    joints[1, 3, 4:9] = float('nan')
    whole = centred_joint_features(joints)
    state = init_feature_state(2)
    for t in range(6):
        frame, state = centred_joint_features_step(joints[:, t], state)
        torch.testing.assert_close(frame, whole[:, t], atol=1e-6, rtol=0)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match='joints'):
        centred_joint_features(torch.zeros(2, 4, 20, 3))
    with pytest.raises(ValueError, match='one frame'):
        centred_joint_features_step(torch.zeros(2, 4, 25, 3), init_feature_state(2))


def test_channel_selections():
    features = centred_joint_features(to_camera(throw(3))[None])
    assert select_channels(features, 'centred').shape == (1, 3, 25 * 7)
    velocity = select_channels(features, 'centred_velocity').unflatten(-1, (25, 4))
    torch.testing.assert_close(velocity, features[..., 3:])
    with pytest.raises(ValueError, match='unknown joint feature kind'):
        select_channels(features, 'speed')


def test_metric_features_keep_metres_and_drop_only_origin_and_heading():
    # A skeleton and the same one twice as large (about its SpineBase), turned and moved:
    # the scaled features agree, the metric ones differ by exactly the factor 2.
    torch.manual_seed(0)
    base = torch.randn(1, 5, 25, 3) * 0.3
    base[:, :, JOINT_INDEX['SpineShoulder'], 1] += 0.5  # a torso of about 0.5 m
    angle = 0.7
    rot = torch.tensor([[math.cos(angle), 0.0, math.sin(angle)], [0.0, 1.0, 0.0],
                        [-math.sin(angle), 0.0, math.cos(angle)]])
    origin = base[:, :1, JOINT_INDEX['SpineBase']:JOINT_INDEX['SpineBase'] + 1]
    big = (origin + 2.0 * (base - origin)) @ rot.T + torch.tensor([1.0, 0.2, 3.0])
    torch.testing.assert_close(centred_joint_features(big), centred_joint_features(base),
                               atol=1e-5, rtol=1e-5)
    metric_small = centred_joint_features(base, scaled=False)
    metric_big = centred_joint_features(big, scaled=False)
    torch.testing.assert_close(metric_big[..., :6], 2.0 * metric_small[..., :6],
                               atol=1e-5, rtol=1e-5)
    # Streaming gives the whole-clip values, metric too.
    state = init_feature_state(1)
    for t in range(5):
        frame, state = centred_joint_features_step(big[:, t], state, scaled=False)
        torch.testing.assert_close(frame, metric_big[:, t], atol=1e-6, rtol=1e-6)


def image_reference(joints, reference: int = 0) -> torch.Tensor:
    """Independent numpy-free reference of the image features of one clip ``(T, 25, 3)``."""
    out = torch.zeros(joints.shape[0], 25, 5)
    base, top = JOINT_INDEX['SpineBase'], JOINT_INDEX['SpineShoulder']
    ref = joints[reference]
    u0, v0 = ref[base, 0] / ref[base, 2], ref[base, 1] / ref[base, 2]
    torso = math.hypot(ref[top, 0] / ref[top, 2] - u0, ref[top, 1] / ref[top, 2] - v0)
    previous = None
    for t in range(reference, joints.shape[0]):
        for j in range(25):
            x, y, z = joints[t, j].tolist()
            if any(math.isnan(c) for c in (x, y, z)) or z <= 0.1:
                continue
            u, v = (x / z - u0) / torso, (y / z - v0) / torso
            out[t, j, 0], out[t, j, 1], out[t, j, 4] = u, v, 1.0
            if previous is not None and previous[j, 4] == 1.0:
                out[t, j, 2], out[t, j, 3] = u - previous[j, 0], v - previous[j, 1]
        previous = out[t]
    return out


def test_image_features_are_the_pinhole_view_in_projected_torso_lengths():
    joints = to_camera(throw(5), heading=0.6)
    joints[2, JOINT_INDEX['HandLeft']] = float('nan')
    joints[3, JOINT_INDEX['FootLeft'], 2] = 0.05  # in front of the sensor's range: missing
    torch.testing.assert_close(image_joint_features(joints[None])[0], image_reference(joints),
                               atol=1e-5, rtol=0)
    # A clip whose first frame has no torso: the reference is frame 1, nothing before it.
    late = joints.clone()
    late[0, JOINT_INDEX['SpineShoulder']] = float('nan')
    torch.testing.assert_close(image_joint_features(late[None])[0],
                               image_reference(late, reference=1), atol=1e-5, rtol=0)


def test_image_features_ignore_depth_along_the_line_of_sight():
    # Every joint slid along its ray (a camera cannot tell): identical features. The 3D
    # features see the difference.
    joints = to_camera(throw(4))
    slid = joints * torch.linspace(0.8, 1.3, 25)[None, :, None]
    torch.testing.assert_close(image_joint_features(slid[None]),
                               image_joint_features(joints[None]), atol=1e-5, rtol=0)
    assert (centred_joint_features(slid[None]) - centred_joint_features(joints[None])
            ).abs().max() > 0.05


def test_image_features_stream_like_the_clip_and_select_their_channels():
    joints = torch.stack([to_camera(throw(6)), to_camera(throw(6), heading=0.4)])
    joints[0, :2] = float('nan')
    joints[1, 3, 4:9] = float('nan')
    whole = image_joint_features(joints)
    state = init_feature_state(2)
    for t in range(6):
        frame, state = image_joint_features_step(joints[:, t], state)
        torch.testing.assert_close(frame, whole[:, t], atol=1e-6, rtol=0)
    assert joint_input_width('image') == 5 and joint_input_width('image_velocity') == 3
    torch.testing.assert_close(joint_inputs(joints, 'image_velocity').unflatten(-1, (25, 3)),
                               whole[..., 2:])
    streamed, state = [], init_feature_state(2)
    for t in range(6):
        step, state = joint_inputs_step(joints[:, t], state, 'image')
        streamed.append(step)
    torch.testing.assert_close(torch.stack(streamed, 1), joint_inputs(joints, 'image'),
                               atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match='one frame'):
        image_joint_features_step(joints, init_feature_state(2))


def test_an_image_features_model_exports_to_onnx_and_takes_nan_joints(tmp_path):
    import sys
    from pathlib import Path
    import onnxruntime
    from pitch_predictor.models.checkpoint import save_checkpoint
    from pitch_predictor.models.preprocessing import fast_preprocess
    from pitch_predictor.models.registry import build_model
    from pitch_predictor.models.sampling import clip_length
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)  # `training` runs from the repo root; it is not installed
    from training.export import export
    torch.manual_seed(0)
    model = build_model('skeleton_gru', hidden=16, layers=2, dropout=0.0, num_classes=9,
                        features='image').eval()
    save_checkpoint(tmp_path / 'model.pt', model, model_name='skeleton_gru',
                    model_config=model.config, preprocess=fast_preprocess(),
                    sampling_method=2)
    report = export(tmp_path / 'model.pt', onnx_path=tmp_path / 'model.onnx', tolerance=1e-4)
    assert report['max_abs_diff_logits'] < 1e-4 and report['finite']
    steps = clip_length(2)  # the exported graph's clip length
    joints = torch.stack([to_camera(throw(steps)), to_camera(throw(steps), heading=0.5)])
    joints[0, 4, 3] = float('nan')
    joints[1, :3] = float('nan')
    session = onnxruntime.InferenceSession(str(tmp_path / 'model.onnx'),
                                           providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    got = session.run(None, {name: joints.numpy()})[0]
    with torch.no_grad():
        expected = model(joints)
    assert abs(got - expected.numpy()).max() < 1e-4
