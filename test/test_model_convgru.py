"""ConvGRU against the paper's equations (1)-(8) written out with plain loops."""

from pitch_predictor.models.convgru import ConvGRU, ConvGRUCell
import pytest
import torch
import torch.nn.functional as F


def reference_direction(x, cell, reverse=False):
    """Equations (1)-(4) frame by frame, each weight used on its own."""
    k = cell.hidden_channels
    w_x = cell.input_conv.weight
    w_zx, w_rx, w_ox = w_x[:k], w_x[k:2 * k], w_x[2 * k:]
    w_zh, w_rh = cell.hidden_conv.weight[:k], cell.hidden_conv.weight[k:]
    w_oh = cell.candidate_conv.weight
    b_z, b_r, b_o = cell.bias[:k], cell.bias[k:2 * k], cell.bias[2 * k:]
    pad_x = w_x.shape[-1] // 2 if cell.padding == 'same' else 0
    pad_h = w_zh.shape[-1] // 2

    def conv_x(w, x_t):
        return F.conv2d(x_t, w, padding=pad_x)

    def conv_h(w, h):
        return F.conv2d(h, w, padding=pad_h)

    steps = x.shape[1]
    probe = conv_x(w_zx, x[:, 0])
    h = torch.zeros_like(probe)
    out = [None] * steps
    for t in (reversed(range(steps)) if reverse else range(steps)):
        x_t = x[:, t]
        z = torch.sigmoid(conv_x(w_zx, x_t) + conv_h(w_zh, h) + b_z)
        r = torch.sigmoid(conv_x(w_rx, x_t) + conv_h(w_rh, h) + b_r)
        o = torch.tanh(conv_x(w_ox, x_t) + conv_h(w_oh, r * h) + b_o)
        h = z * h + (1 - z) * o
        out[t] = h
    return torch.stack(out, dim=1)


def randomise_bias(layer):
    with torch.no_grad():
        for name, param in layer.named_parameters():
            if name.endswith('bias'):
                param.normal_(0.0, 0.5)


@pytest.mark.parametrize('kernel,hidden_kernel,padding,spatial', [
    (3, 1, 'same', (7, 9)),   # the paper: 3x3 input, 1x1 hidden, per-position bias
    (3, 3, 'same', None),     # "3x3 ConvGRU" with per-channel bias
    (5, 1, 'valid', (3, 5)),  # VALID: n = N - d + 1
])
def test_forward_layer_matches_equations(kernel, hidden_kernel, padding, spatial):
    torch.manual_seed(0)
    layer = ConvGRU(4, 6, kernel, hidden_kernel, spatial_size=spatial, padding=padding)
    randomise_bias(layer)
    x = torch.randn(2, 5, 4, 7, 9)
    expected = reference_direction(x, layer.forward_cell)
    out = layer(x)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_bidirectional_layer_matches_equations():
    torch.manual_seed(1)
    layer = ConvGRU(3, 5, bidirectional=True, spatial_size=(6, 6))
    randomise_bias(layer)
    x = torch.randn(2, 4, 3, 6, 6)
    forward_ref = reference_direction(x, layer.forward_cell)
    backward_ref = reference_direction(x, layer.backward_cell, reverse=True)
    forward_states, backward_states = layer.directions(x)
    torch.testing.assert_close(forward_states, forward_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(backward_states, backward_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer(x), (forward_ref + backward_ref) / 2, atol=1e-5,
                               rtol=1e-5)


def test_bias_layout():
    per_position = ConvGRUCell(3, 4, spatial_size=(5, 6))
    per_channel = ConvGRUCell(3, 4)
    assert per_position.bias.shape == (12, 5, 6)
    assert per_channel.bias.shape == (12, 1, 1)
    assert per_position.input_conv.weight.shape == (12, 3, 3, 3)
    assert per_position.hidden_conv.weight.shape == (8, 4, 1, 1)
    assert per_position.candidate_conv.weight.shape == (4, 4, 1, 1)
    with pytest.raises(ValueError, match='per-position bias'):
        per_position(torch.zeros(1, 3, 6, 6))


def test_forward_layer_is_causal_and_bidirectional_is_not():
    torch.manual_seed(2)
    forward_only = ConvGRU(3, 4, spatial_size=(5, 5))
    both = ConvGRU(3, 4, bidirectional=True, spatial_size=(5, 5))
    x = torch.randn(1, 6, 3, 5, 5)
    changed = x.clone()
    changed[:, 4:] = torch.randn(1, 2, 3, 5, 5)
    a, b = forward_only(x), forward_only(changed)
    assert torch.equal(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4:], b[:, 4:])
    a, b = both(x), both(changed)
    assert not torch.allclose(a[:, 0], b[:, 0])


def test_streaming_equals_whole_sequence():
    torch.manual_seed(3)
    layer = ConvGRU(3, 4, spatial_size=(5, 5))
    randomise_bias(layer)
    x = torch.randn(2, 7, 3, 5, 5)
    whole = layer(x)
    hidden = layer.initial_state(2, 5, 5)
    for t in range(7):
        hidden = layer.step(x[:, t], hidden)
        assert torch.equal(hidden, whole[:, t])


def test_bidirectional_layer_refuses_to_stream():
    layer = ConvGRU(3, 4, bidirectional=True)
    with pytest.raises(RuntimeError, match='whole sequence'):
        layer.step(torch.zeros(1, 3, 5, 5))


def test_gradients_reach_every_parameter():
    layer = ConvGRU(3, 4, bidirectional=True, spatial_size=(5, 5))
    layer(torch.randn(2, 3, 3, 5, 5)).square().sum().backward()
    for name, param in layer.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
