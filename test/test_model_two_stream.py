"""Two-stream networks: shapes, the feature path, streaming, missing joints, late fusion."""

from pitch_predictor.networks import (
    build_model, fast_config, model_config_defaults, NotStreamableError)
from pitch_predictor.two_stream import load_branch_weights
import pytest
import torch

NAMES = ['two_stream_1d', 'two_stream_2d']
MODES = ['features', 'late']


def small(name, **overrides):
    """Fast two-stream model in eval mode."""
    torch.manual_seed(0)
    return build_model(name, **{**fast_config(name), **overrides}).eval()


def inputs(batch=2, steps=4, seed=0):
    """Clips and joints (a plausible standing skeleton plus noise)."""
    generator = torch.Generator().manual_seed(seed)
    clips = torch.randn(batch, steps, 3, 112, 112, generator=generator)
    joints = torch.randn(batch, steps, 25, 3, generator=generator) * 0.3
    joints = joints + torch.tensor([0.0, 0.0, 2.5])
    return clips, joints


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('mode', MODES)
def test_shapes_and_feature_path(name, mode):
    model = small(name, fusion_mode=mode)
    assert model.input_kind == 'rgb+joints'
    assert model.streamable == (name == 'two_stream_1d')
    clips, joints = inputs()
    with torch.no_grad():
        logits = model(clips, joints)
        feats = model.backbone(clips.flatten(0, 1))
        assert feats.shape == (8,) + model.feature_shape
        via_features = model.forward_features(feats.unflatten(0, (2, 4)), joints)
        branches = model.forward_branches(feats.unflatten(0, (2, 4)), joints)
    assert logits.shape == (2, 9)
    torch.testing.assert_close(logits, via_features)
    torch.testing.assert_close(branches.logits, logits)
    assert branches.rgb_logits.shape == branches.joint_logits.shape == (2, 9)


@pytest.mark.parametrize('mode', MODES)
def test_streaming_matches_whole_clip(mode):
    model = small('two_stream_1d', fusion_mode=mode)
    clips, joints = inputs(steps=5)
    joints[0, 0] = float('nan')  # no skeleton yet in the first frame
    joints[1, 2, 3] = float('nan')
    with torch.no_grad():
        feats = model.backbone(clips.flatten(0, 1)).unflatten(0, (2, 5))
        state = model.init_state(2)
        for t in range(5):
            now, state = model.step_features(feats[:, t], joints[:, t], state)
            whole = model.forward_features(feats[:, :t + 1], joints[:, :t + 1])
            torch.testing.assert_close(now, whole, atol=1e-5, rtol=1e-5)


def test_bidirectional_is_not_streamable():
    model = small('two_stream_2d')
    with pytest.raises(NotStreamableError):
        model.init_state(1)


@pytest.mark.parametrize('mode', MODES)
def test_missing_joints_give_finite_logits(mode):
    model = small('two_stream_1d', fusion_mode=mode)
    clips, joints = inputs()
    joints[0, 1] = float('nan')  # a lost frame
    joints[1, :, 5:9] = float('nan')  # joints never tracked
    with torch.no_grad():
        assert torch.isfinite(model(clips, joints)).all()
        assert torch.isfinite(model(clips, torch.full_like(joints, float('nan')))).all()


def test_late_fusion_is_the_weighted_log_softmax_of_the_branches():
    model = small('two_stream_2d', fusion_mode='late', late_weight=0.25)
    clips, joints = inputs()
    with torch.no_grad():
        feats = model.backbone(clips.flatten(0, 1)).unflatten(0, (2, 4))
        rgb = model.rgb_branch_logits(feats)
        skeleton = model.joint_branch_logits(joints)
        expected = 0.25 * rgb.log_softmax(-1) + 0.75 * skeleton.log_softmax(-1)
        torch.testing.assert_close(model.forward_features(feats, joints), expected)


@pytest.mark.parametrize('name, rgb_name', [('two_stream_2d', 'convgru2d_alexnet'),
                                            ('two_stream_1d', 'convgru1d_alexnet')])
def test_late_fusion_from_separately_trained_branches(name, rgb_name):
    torch.manual_seed(1)
    rgb = build_model(rgb_name, **fast_config(rgb_name)).eval()
    skeleton = build_model('skeleton_gru', **fast_config('skeleton_gru')).eval()
    model = small(name, fusion_mode='late')
    loaded = load_branch_weights(model, rgb.state_dict(), skeleton.state_dict())
    assert len(loaded) == len(rgb.state_dict()) + len(skeleton.state_dict())
    clips, joints = inputs()
    with torch.no_grad():
        feats = model.backbone(clips.flatten(0, 1)).unflatten(0, (2, 4))
        torch.testing.assert_close(model.rgb_branch_logits(feats), rgb(clips))
        torch.testing.assert_close(model.joint_branch_logits(joints), skeleton(joints))


def test_paper_size_defaults():
    defaults = model_config_defaults('two_stream_2d')
    assert defaults['channels'] == [96, 256, 384, 384, 256]
    assert defaults['fusion_mode'] == 'features'
    assert fast_config('two_stream_1d')['input_size'] == 112
