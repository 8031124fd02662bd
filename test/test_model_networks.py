"""The Table I networks, their fusions, streaming, the peers and the registry."""

import json
import math

from pitch_predictor.models.networks import FAST_CONFIG, FUSIONS, NotStreamableError
from pitch_predictor.models.registry import (
    build_model, fast_config, list_models, model_config_defaults)
from pitch_predictor.models.sampling import test_clip_indices
import pytest
import torch
import torch.nn.functional as F
import torchvision.models.video as video

ALEXNETS = ['gru_alexnet', 'convgru1d_alexnet', 'convgru2d_alexnet', 'convgru2d2_alexnet']
CONVGRUS = ALEXNETS[1:]
VIDEO_PEERS = ['r3d_18', 'mc3_18', 'r2plus1d_18']
TWO_STREAM = ['two_stream_1d', 'two_stream_2d']


def small(name, **overrides):
    """Fast variant with few frames' worth of cost; dropout off for exact comparisons."""
    config = fast_config(name)
    config.update(overrides)
    return build_model(name, **config)


def test_registry_lists_every_network():
    assert set(list_models()) == set(ALEXNETS + VIDEO_PEERS + ['skeleton_gru'] + TWO_STREAM
                                     + ['pose_gru_alexnet'])


def test_registry_errors_and_copies():
    with pytest.raises(KeyError, match='unknown model'):
        build_model('alexnet')
    with pytest.raises(TypeError, match='unknown config keys'):
        build_model('convgru2d_alexnet', widths=[1, 2])
    with pytest.raises(ValueError, match='fusion'):
        build_model('convgru2d_alexnet', fusion='max')
    defaults = model_config_defaults('convgru2d_alexnet')
    defaults['channels'][0] = 1
    assert model_config_defaults('convgru2d_alexnet')['channels'][0] == 96


@pytest.mark.parametrize('name', ALEXNETS)
def test_paper_size_network(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    assert model.config == model_config_defaults(name)
    assert model.config['channels'] == [96, 256, 384, 384, 256]
    json.dumps(model.config)  # plain data, storable in a checkpoint
    with torch.no_grad():
        logits = model(torch.randn(1, 10, 3, 224, 224))
    assert logits.shape == (1, 9) and torch.isfinite(logits).all()
    # 256 x 13 x 13 = 43,264 inputs to the first FC layer.
    first_fc = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert first_fc.in_features == 43264
    assert first_fc.out_features == 4096
    lrn = [m for m in model.modules() if isinstance(m, torch.nn.LocalResponseNorm)]
    assert len(lrn) == 2
    slopes = {m.negative_slope for m in model.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.1}
    dropouts = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert dropouts == {0.8}


def test_paper_size_backbone_shapes():
    expected = {'gru_alexnet': (256, 13, 13), 'convgru1d_alexnet': (384, 13, 13),
                'convgru2d_alexnet': (384, 13, 13), 'convgru2d2_alexnet': (384, 13, 13)}
    frames = torch.randn(2, 3, 224, 224)
    for name, shape in expected.items():
        model = build_model(name, fc_sizes=[8, 8], gru_hidden=8) if name == 'gru_alexnet' \
            else build_model(name, fc_sizes=[8, 8])
        assert model.feature_shape == shape
        with torch.no_grad():
            assert model.backbone(frames).shape == (2,) + shape


@pytest.mark.parametrize('name', VIDEO_PEERS)
def test_video_peers_are_torchvisions_networks(name):
    model = build_model(name).eval()
    reference = getattr(video, name)(weights=None, num_classes=9)
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    theirs = [(k, tuple(v.shape)) for k, v in reference.state_dict().items()]
    assert ours == theirs
    model.load_state_dict(reference.state_dict())
    reference.eval()
    clip = torch.randn(1, 4, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(clip), reference(clip.transpose(1, 2)))


@pytest.mark.slow
@pytest.mark.parametrize('name', VIDEO_PEERS)
def test_video_peers_at_paper_size(name):
    with torch.no_grad():
        assert build_model(name).eval()(torch.randn(1, 10, 3, 224, 224)).shape == (1, 9)


def test_skeleton_gru():
    torch.manual_seed(0)
    model = build_model('skeleton_gru').eval()
    assert model.input_kind == 'joints'
    joints = torch.randn(2, 10, 25, 3)
    with torch.no_grad():
        logits = model(joints)
        shifted = model(joints + torch.tensor([0.3, -0.1, 1.2]))
        joints[0, 3, 7] = float('nan')
        with_gap = model(joints)
    assert logits.shape == (2, 9)
    torch.testing.assert_close(logits, shifted, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(with_gap).all()


@pytest.mark.parametrize('name', CONVGRUS)
@pytest.mark.parametrize('fusion', FUSIONS)
def test_fusions_and_feature_path(name, fusion):
    torch.manual_seed(0)
    model = small(name, fusion=fusion).eval()
    clips = torch.randn(2, 4, 3, 112, 112)
    with torch.no_grad():
        logits = model(clips)
        feats = model.backbone(clips.flatten(0, 1))
        assert feats.shape == (8,) + model.feature_shape
        via_features = model.forward_features(feats.unflatten(0, (2, 4)))
        per_frame = torch.cat([model.backbone(frame[None]) for frame in clips.flatten(0, 1)])
    assert logits.shape == (2, 9)
    torch.testing.assert_close(logits, via_features)
    # Frames are independent in the backbone: per-frame features can be cached.
    torch.testing.assert_close(per_frame, feats, atol=1e-5, rtol=1e-4)
    width = model.config['channels'][-1]
    head_inputs = width if fusion == 'last_avg' else width * 6 * 6
    first_fc = next(m for m in model.head.modules() if isinstance(m, torch.nn.Linear))
    assert first_fc.in_features == head_inputs


@pytest.mark.parametrize('name', ['convgru1d_alexnet', 'convgru2d_alexnet'])
def test_fusions_agree_on_one_frame_and_differ_on_more(name):
    # With T = 1, h_T, the mean over t and (bi) (h^_1 + h_T) / 2 are the same map, and
    # late fusion averages one output: last_flat, mean_flat and flat must agree.
    torch.manual_seed(0)
    models = {f: small(name, fusion=f).eval() for f in ('last_flat', 'mean_flat', 'flat')}
    state = models['last_flat'].state_dict()
    for model in models.values():
        model.load_state_dict(state)
    one, two = torch.randn(1, 1, 3, 112, 112), torch.randn(1, 3, 3, 112, 112)
    with torch.no_grad():
        outs_one = {f: m(one) for f, m in models.items()}
        outs_two = {f: m(two) for f, m in models.items()}
    torch.testing.assert_close(outs_one['mean_flat'], outs_one['last_flat'])
    torch.testing.assert_close(outs_one['flat'], outs_one['last_flat'])
    assert not torch.allclose(outs_two['mean_flat'], outs_two['last_flat'])
    assert not torch.allclose(outs_two['flat'], outs_two['last_flat'])


def test_bidirectional_last_flat_sees_the_first_frame_from_the_backward_pass():
    # 1D last_flat depends on frame 1 only through h_T; the bi-directional one also
    # through h^_1, the backward state right at frame 1. Zeroing the forward cell's input
    # weights removes every path except the backward one.
    torch.manual_seed(0)
    model = small('convgru2d_alexnet').eval()
    with torch.no_grad():
        model.recurrent[0].forward_cell.input_conv.weight.zero_()
        clips = torch.randn(1, 5, 3, 112, 112)
        changed = clips.clone()
        changed[:, 0] += 1.0
        assert not torch.allclose(model(clips), model(changed))
        model.recurrent[0].backward_cell.input_conv.weight.zero_()
        torch.testing.assert_close(model(clips), model(changed))


@pytest.mark.parametrize('fusion', FUSIONS)
def test_streaming_matches_whole_clip(fusion):
    torch.manual_seed(0)
    model = small('convgru1d_alexnet', fusion=fusion).eval()
    assert model.streamable
    clips = torch.randn(2, 5, 3, 112, 112)
    with torch.no_grad():
        feats = model.backbone(clips.flatten(0, 1)).unflatten(0, (2, 5))
        state = model.init_state(2)
        for t in range(5):
            now, state = model.step_features(feats[:, t], state)
            # Bit for bit: the early estimate after t frames is the whole-clip answer.
            assert torch.equal(now, model.forward_features(feats[:, :t + 1]))
        assert torch.equal(now, model(clips))


@pytest.mark.parametrize('name', ALEXNETS)
def test_batch_norm_option(name):
    torch.manual_seed(0)
    plain = small(name, batch_norm=False)  # the paper's networks have none
    model = small(name)  # the fast preset has BatchNorm
    assert model_config_defaults(name)['batch_norm'] is False
    norms = [m for m in model.features if isinstance(m, torch.nn.BatchNorm2d)]
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    # One BatchNorm per per-frame conv, which then has no bias (the norm's shift replaces it).
    assert len(norms) == len(convs) > 0
    assert all(conv.bias is None for conv in convs)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert model.feature_shape == plain.feature_shape
    assert model.config['batch_norm'] is True
    # Training mode uses batch statistics: the backbone output is zero-mean per channel
    # right after the first norm; eval mode is a fixed affine map, so features cached one
    # frame at a time equal the batched ones.
    frames = torch.randn(6, 3, 112, 112) * 3 + 1
    model.train()
    first = model.features[:2](frames)
    torch.testing.assert_close(first.mean(dim=(0, 2, 3)), torch.zeros(norms[0].num_features),
                               atol=1e-4, rtol=0)
    model.eval()
    with torch.no_grad():
        batched = model.backbone(frames)
        one_by_one = torch.cat([model.backbone(f[None]) for f in frames])
    torch.testing.assert_close(one_by_one, batched, atol=1e-5, rtol=1e-5)


def test_batch_norm_streaming_matches_whole_clip():
    torch.manual_seed(0)
    model = small('convgru1d_alexnet', batch_norm=True, fusion='mean_flat')
    model.train()
    model(torch.randn(2, 3, 3, 112, 112))  # move the running statistics off their init
    model.eval()
    clips = torch.randn(1, 4, 3, 112, 112)
    with torch.no_grad():
        state = model.init_state(1)
        for t in range(4):
            now, state = model.step_features(model.backbone(clips[:, t]), state)
        torch.testing.assert_close(now, model(clips), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('fusion', ['flat', 'last_flat', 'mean_flat'])
def test_gru_alexnet_streaming(fusion):
    torch.manual_seed(0)
    model = small('gru_alexnet', fusion=fusion).eval()
    clips = torch.randn(1, 4, 3, 112, 112)
    with torch.no_grad():
        feats = model.backbone(clips.flatten(0, 1)).unflatten(0, (1, 4))
        state = model.init_state(1)
        for t in range(4):
            now, state = model.step_features(feats[:, t], state)
        torch.testing.assert_close(now, model(clips), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('name', ['convgru2d_alexnet', 'convgru2d2_alexnet', 'r3d_18'])
def test_non_streaming_models_say_so(name):
    model = small(name)
    assert not model.streamable
    with pytest.raises(NotStreamableError):
        model.init_state(1)


@pytest.mark.parametrize('name', ALEXNETS + VIDEO_PEERS + ['skeleton_gru'])
def test_fast_variant_learns(name):
    torch.manual_seed(0)
    config = fast_config(name)
    if name in ALEXNETS:
        assert {k: config[k] for k in FAST_CONFIG} == FAST_CONFIG
        config['dropout'] = 0.0
    model = build_model(name, **config)
    assert config.get('input_size', 112) == 112
    if model.input_kind == 'joints':
        inputs = torch.randn(4, 10, 25, 3)
    elif name in VIDEO_PEERS:
        inputs = torch.randn(4, 4, 3, 48, 48)  # no per-position bias: any size works
    else:
        inputs = torch.randn(4, 3, 3, 112, 112)
    labels = torch.arange(4) % 9
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        optimiser.zero_grad()
        loss = F.cross_entropy(model(inputs), labels)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_load_imagenet_alexnet_weights_from_a_local_file(torchvision_alexnet_file):
    from torchvision.models import alexnet
    from pitch_predictor.models.networks import load_imagenet_alexnet
    reference = alexnet(weights=None)
    reference.load_state_dict(torch.load(torchvision_alexnet_file, weights_only=True))
    path = torchvision_alexnet_file
    model = build_model('convgru1d_alexnet', channels=[64, 192, 384, 256, 128],
                        fc_sizes=[8, 8], per_position_bias=False)
    loaded = load_imagenet_alexnet(model, str(path))
    assert len(loaded) == 8  # conv1-3 and the layer-6 conv, weight and bias each
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    torch.testing.assert_close(convs[0].weight, reference.features[0].weight)
    torch.testing.assert_close(convs[3].bias, reference.features[8].bias)
    with pytest.raises(ValueError, match='channel widths'):
        load_imagenet_alexnet(build_model('convgru1d_alexnet', fc_sizes=[8, 8]), str(path))


def test_grouped_alexnet_weights_become_block_diagonal(tmp_path):
    from pitch_predictor.models.networks import load_imagenet_alexnet
    torch.manual_seed(0)
    model = build_model('convgru2d2_alexnet', channels=[8, 6, 4, 4, 4], fc_sizes=[8, 8],
                        input_size=112)
    grouped = {'features.0.weight': torch.randn(8, 3, 11, 11),
               'features.3.weight': torch.randn(6, 4, 5, 5),  # 2 groups of 4 inputs
               'features.3.bias': torch.randn(6),
               'features.6.weight': torch.randn(4, 6, 3, 3)}
    torch.save(grouped, tmp_path / 'bvlc.pt')
    load_imagenet_alexnet(model, str(tmp_path / 'bvlc.pt'))
    conv2 = [m for m in model.features if isinstance(m, torch.nn.Conv2d)][1]
    x = torch.randn(1, 8, 9, 9)
    expected = torch.nn.functional.conv2d(x, grouped['features.3.weight'],
                                          grouped['features.3.bias'], padding=2, groups=2)
    torch.testing.assert_close(conv2(x), expected, atol=1e-5, rtol=1e-5)


def rotate_about_vertical(joints, angle):
    """Turn joints ``(..., 3)`` about the camera's y axis (the camera panned)."""
    cos, sin = math.cos(angle), math.sin(angle)
    x, y, z = joints.unbind(-1)
    return torch.stack([cos * x + sin * z, y, -sin * x + cos * z], dim=-1)


def test_skeleton_gru_feature_options():
    assert model_config_defaults('skeleton_gru')['features'] == 'spinebase'  # old files
    assert fast_config('skeleton_gru')['features'] == 'centred'
    with pytest.raises(ValueError, match='skeleton features'):
        build_model('skeleton_gru', features='world')
    torch.manual_seed(0)
    centred = small('skeleton_gru').eval()
    spinebase = small('skeleton_gru', features='spinebase').eval()
    joints = torch.randn(2, 6, 25, 3) * 0.3 + torch.tensor([0.0, 0.0, 2.5])
    moved = rotate_about_vertical(joints, 0.7) * 1.2 + torch.tensor([0.5, -0.1, 0.8])
    with torch.no_grad():
        # The camera's heading and the pitcher's size drop out of the centred inputs only.
        torch.testing.assert_close(centred(moved), centred(joints), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(spinebase(moved), spinebase(joints), atol=1e-3)


@pytest.mark.parametrize('features', ['centred', 'centred_velocity', 'spinebase'])
def test_skeleton_gru_encoder_steps_like_the_whole_clip(features):
    torch.manual_seed(0)
    model = small('skeleton_gru', features=features).eval()
    joints = torch.randn(2, 5, 25, 3) + torch.tensor([0.0, 0.0, 2.5])
    joints[0, 0] = float('nan')
    joints[1, 2, :4] = float('nan')
    with torch.no_grad():
        state = model.init_encoder_state(2)
        for t in range(5):
            vector, state = model.encode_step(joints[:, t], state)
            torch.testing.assert_close(vector, model.encode(joints[:, :t + 1]),
                                       atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('name', ALEXNETS)
@pytest.mark.parametrize('preset', ['fast', 'paper'])
def test_torchvision_widths_take_every_conv_of_a_torchvision_file(
        name, preset, torchvision_alexnet_file):
    from pitch_predictor.models.networks import (
        load_imagenet_alexnet, TORCHVISION_ALEXNET_CHANNELS)
    assert TORCHVISION_ALEXNET_CHANNELS == (64, 192, 384, 256, 256)
    config = fast_config(name) if preset == 'fast' else model_config_defaults(name)
    config.update(channels=list(TORCHVISION_ALEXNET_CHANNELS), fc_sizes=[8, 8],
                  input_size=112)
    model = build_model(name, **config)
    state = torch.load(torchvision_alexnet_file, weights_only=True)
    loaded = load_imagenet_alexnet(model, str(torchvision_alexnet_file))
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    # Per-frame convs: GRU AlexNet 5, 1D/2D-ConvGRU 4 (layer 7 is the ConvGRU), 2D-2 3.
    assert len(convs) == {'gru_alexnet': 5, 'convgru2d2_alexnet': 3}.get(name, 4)
    for conv, layer in zip(convs, (0, 3, 6, 8, 10)):
        assert torch.equal(conv.weight, state[f'features.{layer}.weight'])
        if preset == 'paper':  # without BatchNorm the convs have biases, loaded too
            assert torch.equal(conv.bias, state[f'features.{layer}.bias'])
        else:
            assert conv.bias is None
    assert len(loaded) == len(convs) * (2 if preset == 'paper' else 1)


def test_a_weight_file_of_another_layout_is_refused(tmp_path, torchvision_alexnet_file):
    from pitch_predictor.models.networks import load_imagenet_alexnet
    fast = build_model('convgru2d_alexnet', **{**fast_config('convgru2d_alexnet'),
                                               'fc_sizes': [8, 8]})
    state = torch.load(torchvision_alexnet_file, weights_only=True)
    # The fast widths (32/64/...) are not torchvision's.
    with pytest.raises(ValueError, match='channel widths'):
        load_imagenet_alexnet(fast, str(torchvision_alexnet_file))
    cases = {
        # A VGG-like file: 3x3 first conv.
        'vgg.pt': ({'features.0.weight': torch.zeros(64, 3, 3, 3),
                    'features.2.weight': torch.zeros(64, 64, 3, 3),
                    'features.5.weight': torch.zeros(128, 64, 3, 3),
                    'features.7.weight': torch.zeros(128, 128, 3, 3)}, 'channel widths'),
        'two_convs.pt': ({k: v for k, v in state.items()
                          if k.startswith(('features.0.', 'features.3.'))}, '2 conv layers'),
        'resnet.pt': ({'conv1.weight': torch.zeros(64, 3, 7, 7)}, 'no AlexNet conv weights'),
        'tensor.pt': (torch.zeros(3), 'not a state dict'),
        # A pickled module: weights_only refuses it, nothing of it runs.
        'module.pt': (torch.nn.Conv2d(3, 64, 11), 'not a plain state dict'),
    }
    for file_name, (content, message) in cases.items():
        torch.save(content, tmp_path / file_name)
        with pytest.raises(ValueError, match=message):
            load_imagenet_alexnet(fast, str(tmp_path / file_name))
    with pytest.raises(ValueError, match='no such file'):
        load_imagenet_alexnet(fast, str(tmp_path / 'missing.pt'))


# ---------------------------------------------- the motion input (issue 13, item 3c)

def motion_model(name, **overrides):
    """Return a fast motion model in eval mode whose BatchNorms are not the identity."""
    torch.manual_seed(0)
    model = small(name, motion=True, dropout=0.0, **overrides).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    return model


def by_hand(model, clips):
    """Return the logits of conv1 on [x_t, x_t - x_{t-1}] (zero for t = 0), then the rest."""
    difference = torch.cat([torch.zeros_like(clips[:, :1]), clips[:, 1:] - clips[:, :-1]], 1)
    inputs = torch.cat([clips, difference], dim=2)  # (B, T, 6, S, S)
    x = model.features(inputs.flatten(0, 1)).unflatten(0, tuple(clips.shape[:2]))
    for layer in model.recurrent[:-1]:
        x = layer(x)
    return model._logits(*model.recurrent[-1].directions(x))


def test_motion_is_off_by_default_and_a_config_key():
    for name in CONVGRUS:
        assert fast_config(name)['motion'] is False
        assert model_config_defaults(name)['motion'] is False
        assert small(name).features[0].in_channels == 3
    with pytest.raises(TypeError, match='unknown config keys'):  # not a GRU AlexNet option
        small('gru_alexnet', motion=True)


@pytest.mark.parametrize('name', CONVGRUS)
def test_motion_shapes(name):
    model = motion_model(name)
    # conv1 takes image + difference; the backbone is conv1's two linear maps (27x27 at 112).
    assert tuple(model.features[0].weight.shape) == (32, 6, 11, 11)
    assert model.feature_shape == (64, 27, 27)
    assert model.config['motion'] is True
    with torch.no_grad():
        assert model.backbone(torch.randn(4, 3, 112, 112)).shape == (4, 64, 27, 27)
        assert model.encode_frames(torch.randn(4, 3, 112, 112)).shape == (4, 64, 27, 27)
        assert model(torch.randn(2, 5, 3, 112, 112)).shape == (2, 9)


@pytest.mark.parametrize('name', CONVGRUS)
def test_motion_equals_the_hand_computation(name):
    model = motion_model(name)
    clips = torch.randn(2, 5, 3, 112, 112)
    with torch.no_grad():
        expected = by_hand(model, clips)
        feats = model.backbone(clips.flatten(0, 1)).unflatten(0, (2, 5))
        encoded = model.encode_frames(clips.flatten(0, 1)).unflatten(0, (2, 5))
        for logits in (model(clips), model.forward_features(feats),
                       model.forward_encoded(encoded)):
            assert torch.allclose(logits, expected, atol=1e-5, rtol=1e-5)
        # The difference matters: the same frames without it give other logits.
        assert not torch.allclose(model(clips[:, :1].expand(-1, 5, -1, -1, -1)), expected,
                                  atol=1e-3)


def test_motion_first_frame_has_a_zero_difference():
    model = motion_model('convgru2d_alexnet')
    clips = torch.randn(2, 4, 3, 112, 112)
    with torch.no_grad():
        feats = model._motion_features(model.backbone(clips.flatten(0, 1)).unflatten(0, (2, 4)))
        first = model.features(torch.cat([clips[:, 0], torch.zeros_like(clips[:, 0])], dim=1))
        second = model.features(torch.cat([clips[:, 1], clips[:, 1] - clips[:, 0]], dim=1))
        assert torch.allclose(feats[:, 0], first, atol=1e-5)
        assert torch.allclose(feats[:, 1], second, atol=1e-5)
        # A clip of one frame sees no motion: conv1's difference weights play no part.
        single = model(clips[:, :1])
        model.features[0].weight[:, 3:].normal_()
        assert torch.allclose(model(clips[:, :1]), single, atol=1e-5)


def test_motion_streaming_equals_the_whole_clip():
    model = motion_model('convgru1d_alexnet')
    clips = torch.randn(2, 5, 3, 112, 112)
    with torch.no_grad():
        encoded = model.encode_frames(clips.flatten(0, 1)).unflatten(0, (2, 5))
        state = model.init_state(2)
        for t in range(5):
            logits, state = model.step_encoded(encoded[:, t], state)
            assert torch.allclose(logits, by_hand(model, clips[:, :t + 1]), atol=1e-5)
    with pytest.raises(NotStreamableError):
        motion_model('convgru2d_alexnet').init_state(1)


def test_motion_test_time_clips_equal_per_clip_forward():
    from training.evaluate import clip_logits
    model = motion_model('convgru2d_alexnet')
    windows = torch.randn(2, 40, 3, 112, 112)
    with torch.no_grad():
        logits = clip_logits(model, windows, 2)  # backbone once per frame, then per clip
        for k, index in enumerate(test_clip_indices(2)):
            assert torch.allclose(logits[k], by_hand(model, windows[:, index]), atol=1e-5)


def test_motion_refuses_imagenet_weights(tmp_path, torchvision_alexnet_file):
    from pitch_predictor.models.networks import load_imagenet_alexnet
    model = motion_model('convgru2d_alexnet')
    with pytest.raises(ValueError, match='6-channel conv1'):
        load_imagenet_alexnet(model, str(torchvision_alexnet_file))
