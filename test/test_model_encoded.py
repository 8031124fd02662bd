"""Per-frame encodings (backbone + ConvGRU input gates) decide as the whole-clip path does."""

from pitch_predictor.models.convgru import ConvGRU
from pitch_predictor.models.registry import build_model, fast_config
import pytest
import torch


def test_run_from_frame_gates_equals_run_on_the_frames():
    torch.manual_seed(0)
    layer = ConvGRU(8, 6, bidirectional=True, spatial_size=5).eval()
    x = torch.randn(3, 7, 8, 5, 5)
    with torch.no_grad():
        # Gates computed frame by frame, one frame at a time, as a stream would.
        gates = torch.stack([layer.frame_gates(x[:, t]) for t in range(7)], dim=1)
        expected = layer.directions(x)
        got = layer.directions_from_gates(gates)
    assert gates.shape == (3, 7, 2 * 3 * 6, 5, 5)
    for a, b in zip(expected, got):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)


@pytest.mark.parametrize('name', ['convgru1d_alexnet', 'convgru2d_alexnet',
                                  'convgru2d2_alexnet', 'gru_alexnet', 'two_stream_1d',
                                  'two_stream_2d'])
def test_forward_encoded_equals_forward_features(name):
    torch.manual_seed(0)
    model = build_model(name, **fast_config(name)).eval()
    frames = torch.randn(2 * 6, 3, 112, 112)
    joints = torch.randn(2, 6, 25, 3)
    joints[:, 2] = float('nan')  # a frame without a skeleton
    extra = (joints,) if model.input_kind == 'rgb+joints' else ()
    with torch.no_grad():
        feats = model.backbone(frames).unflatten(0, (2, 6))
        encoded = torch.stack([model.encode_frames(f[None])[0] for f in frames]).unflatten(
            0, (2, 6))
        expected = model.forward_features(feats, *extra)
        got = model.forward_encoded(encoded, *extra)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    if model.streamable:
        with torch.no_grad():
            state = model.init_state(2)
            for t in range(6):
                step = (joints[:, t],) if extra else ()
                logits, state = model.step_encoded(encoded[:, t], *step, state)
        torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5)
