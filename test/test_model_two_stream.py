"""Two-stream networks: shapes, the feature path, streaming, missing joints, late fusion."""

from pathlib import Path
import sys

from pitch_predictor.models.networks import NotStreamableError
from pitch_predictor.models.registry import build_model, fast_config, model_config_defaults
from pitch_predictor.models.two_stream import load_branch_weights
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
@pytest.mark.parametrize('fusion', ['last_flat', 'mean_flat', 'last_avg'])
def test_streaming_matches_whole_clip(mode, fusion):
    model = small('two_stream_1d', fusion_mode=mode, fusion=fusion)
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


def test_config_errors():
    with pytest.raises(ValueError, match='fusion_mode'):
        small('two_stream_1d', fusion_mode='middle')
    with pytest.raises(ValueError, match='fusion'):
        small('two_stream_1d', fusion='flat')  # no single vector to fuse
    with pytest.raises(ValueError, match='joints must be'):
        clips, joints = inputs()
        small('two_stream_1d')(clips, joints[:, :2])


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


@pytest.mark.parametrize('features', [False, True])
def test_onnx_export_takes_both_inputs_with_nan_joints(tmp_path, features):
    import numpy as np
    import onnxruntime
    from pitch_predictor.models.checkpoint import save_checkpoint
    from pitch_predictor.models.preprocessing import fast_preprocess
    from pitch_predictor.models.sampling import clip_length
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)  # `training` runs from the repo root; it is not installed
    from training.export import export

    model = small('two_stream_1d', channels=[8, 16, 16, 16, 16], fc_sizes=[16, 16])
    save_checkpoint(tmp_path / 'model.pt', model, model_name='two_stream_1d',
                    model_config=model.config, preprocess=fast_preprocess(),
                    sampling_method=2)
    report = export(tmp_path / 'model.pt', onnx_path=tmp_path / 'model.onnx',
                    features=features, tolerance=1e-4)
    print('ONNX max |logit diff|', report['max_abs_diff_logits'])
    assert report['max_abs_diff_logits'] < 1e-4 and report['finite']
    # Independently of export's own check: the node's kind of joints, fed as they are.
    clips, joints = inputs(batch=2, steps=clip_length(2), seed=5)
    joints[0, 3] = float('nan')
    joints[1] = float('nan')
    with torch.no_grad():
        first = clips
        if features:
            first = model.backbone(clips.flatten(0, 1)).unflatten(0, clips.shape[:2])
        expected = model.forward_features(first, joints) if features else model(clips, joints)
    session = onnxruntime.InferenceSession(str(tmp_path / 'model.onnx'),
                                           providers=['CPUExecutionProvider'])
    names = [i.name for i in session.get_inputs()]
    assert names == ['features' if features else 'clips', 'joints']
    got = session.run(None, {names[0]: first.numpy(), 'joints': joints.numpy()})[0]
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4)


@pytest.mark.parametrize('mode', MODES)
def test_training_step_with_missing_joints_has_finite_gradients(mode):
    model = small('two_stream_1d', fusion_mode=mode).train()
    clips, joints = inputs(batch=3, steps=3)
    joints[0] = float('nan')
    joints[1, :, 10:] = float('nan')
    feats = model.backbone(clips.flatten(0, 1)).unflatten(0, (3, 3))
    out = model.forward_branches(feats, joints)
    labels = torch.tensor([0, 4, 8])
    loss = sum(torch.nn.functional.cross_entropy(logits, labels)
               for logits in (out.logits, out.rgb_logits, out.joint_logits))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.joints.gru.weight_ih_l0.grad.abs().sum() > 0


def test_skeleton_only_checkpoint_of_old_kind_fits_a_spinebase_branch():
    skeleton = build_model('skeleton_gru', hidden=64).eval()  # the original peer
    model = small('two_stream_2d', fusion_mode='late', joint_features='spinebase')
    load_branch_weights(model, joints_state_dict=skeleton.state_dict())
    _, joints = inputs()
    with torch.no_grad():
        torch.testing.assert_close(model.joint_branch_logits(joints), skeleton(joints))
    with pytest.raises(ValueError, match='do not fit'):
        load_branch_weights(small('two_stream_2d', fusion_mode='late'),
                            joints_state_dict=skeleton.state_dict())


def test_features_mode_loads_an_rgb_checkpoint_without_its_head():
    rgb = build_model('convgru2d_alexnet', **fast_config('convgru2d_alexnet')).eval()
    model = small('two_stream_2d', fusion_mode='features')
    loaded = load_branch_weights(model, rgb_state_dict=rgb.state_dict())
    assert loaded and not any(k.startswith('rgb.head.') for k in loaded)
    torch.testing.assert_close(model.rgb.features[0].weight, rgb.features[0].weight)


def test_late_fusion_from_checkpoints(tmp_path):
    from pitch_predictor.models.checkpoint import load_checkpoint, save_checkpoint
    from pitch_predictor.models.preprocessing import fast_preprocess
    from training.fuse import late_fusion_from_checkpoints
    torch.manual_seed(2)
    rgb = build_model('convgru1d_alexnet', **fast_config('convgru1d_alexnet')).eval()
    skeleton = build_model('skeleton_gru', **fast_config('skeleton_gru')).eval()
    for name, net in (('convgru1d_alexnet', rgb), ('skeleton_gru', skeleton)):
        save_checkpoint(tmp_path / f'{name}.pt', net, model_name=name,
                        model_config=net.config, preprocess=fast_preprocess(),
                        sampling_method=5)
    model = late_fusion_from_checkpoints(load_checkpoint(tmp_path / 'convgru1d_alexnet.pt'),
                                         load_checkpoint(tmp_path / 'skeleton_gru.pt'), 0.4)
    assert model.name == 'two_stream_1d' and model.config['late_weight'] == 0.4
    clips, joints = inputs()
    with torch.no_grad():
        expected = (0.4 * rgb(clips).log_softmax(-1)
                    + 0.6 * skeleton(joints).log_softmax(-1))
        torch.testing.assert_close(model(clips, joints), expected)
    model.set_late_weight(0.9)
    assert model.config['late_weight'] == 0.9


@pytest.mark.parametrize('joint_features', ['centred_velocity', 'spinebase'])
def test_other_joint_features_stream_too(joint_features):
    model = small('two_stream_1d', joint_features=joint_features)
    clips, joints = inputs(steps=3)
    joints[0, 1] = float('nan')
    with torch.no_grad():
        feats = model.backbone(clips.flatten(0, 1)).unflatten(0, (2, 3))
        state = model.init_state(2)
        for t in range(3):
            now, state = model.step_features(feats[:, t], joints[:, t], state)
        torch.testing.assert_close(now, model.forward_features(feats, joints),
                                   atol=1e-5, rtol=1e-5)
