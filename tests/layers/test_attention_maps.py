"""The R=2 reach of a pixel (compose_pixel_attention) and the per-loop recorder (AttentionRecorder).

Independent checks: two loops of the slow reference operator on one-hot values (value channel k is
the indicator of pixel k, so the output at u is u's weight on every pixel), and a closed form for
uniform attention.
"""
import pytest
import torch

from ccnet_d2.layers import AttentionRecorder, RCCAHeadBlock, compose_pixel_attention, criss_cross_attention_map
from ccnet_d2.layers import pixel_attention_map
from tests.layers.reference import loop_criss_cross

B, C, H, W = 2, 3, 5, 6
PIXELS = [(0, 0), (2, 3), (4, 5), (1, 5)]


def _query_key(seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, C, H, W, generator=g, dtype=torch.float64),
            torch.randn(B, C, H, W, generator=g, dtype=torch.float64))


def _one_hot_values():
    return torch.eye(H * W, dtype=torch.float64).view(1, H * W, H, W).expand(B, -1, -1, -1)


@pytest.mark.parametrize("y,x", PIXELS)
def test_composition_equals_two_loops_on_one_hot_values(y, x):
    (q1, k1), (q2, k2) = _query_key(0), _query_key(1)
    first, att1 = loop_criss_cross(q1, k1, _one_hot_values())  # first[:, p, i] = weight of i on pixel p
    second, att2 = loop_criss_cross(q2, k2, first)
    expected = second[:, :, y, x].reshape(B, H, W)
    reach = compose_pixel_attention(criss_cross_attention_map(q1, k1), criss_cross_attention_map(q2, k2), y, x)
    torch.testing.assert_close(reach.double(), expected, rtol=0, atol=1e-6)
    # the reference's own maps give the same composition in float64
    torch.testing.assert_close(compose_pixel_attention(att1, att2, y, x), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("y,x", PIXELS)
def test_composition_sums_to_one_and_reaches_off_the_cross(y, x):
    (q1, k1), (q2, k2) = _query_key(2), _query_key(3)
    att1, att2 = criss_cross_attention_map(q1, k1), criss_cross_attention_map(q2, k2)
    reach = compose_pixel_attention(att1, att2, y, x)
    torch.testing.assert_close(reach.sum(dim=(1, 2)), torch.ones(B), rtol=0, atol=1e-5)
    off_cross = torch.ones(H, W, dtype=torch.bool)
    off_cross[y, :] = False
    off_cross[:, x] = False
    assert (pixel_attention_map(att1, y, x)[:, off_cross] == 0).all()  # one loop: the cross only
    assert (reach[:, off_cross] > 0).all()  # two loops: every pixel


def test_uniform_attention_matches_the_closed_form():
    """With zero queries every weight is 1/n (n = H+W-1). Counting two-step paths: a pixel off the
    cross is reached through 2 cross pixels, a row pixel through W, a column pixel through H, the pixel
    itself through n; each path weighs 1/n^2."""
    n, (y, x) = H + W - 1, (1, 2)
    att = criss_cross_attention_map(torch.zeros(1, 2, H, W), torch.randn(1, 2, H, W))
    expected = torch.full((H, W), 2.0)
    expected[y, :] = W
    expected[:, x] = H
    expected[y, x] = n
    torch.testing.assert_close(compose_pixel_attention(att, att, y, x)[0], expected / n**2, rtol=0, atol=1e-7)


def test_composition_rejects_maps_of_different_shapes():
    att = criss_cross_attention_map(*_query_key(0))
    with pytest.raises(ValueError, match=r"\[B, H\+W-1, H, W\]"):
        compose_pixel_attention(att, att[:, :, :, :-1], 0, 0)


def test_recorder_captures_each_loop_of_rcca():
    """Loop 2 attends over loop 1's output, so with gamma != 0 its map differs from loop 1's; both must
    be the maps of the slow reference on the inputs each loop actually received."""
    torch.manual_seed(0)
    block = RCCAHeadBlock(8, out_channels=8, inner_channels=8, recurrence=2, reduction=2, norm="", backend="torch").eval()
    attention = block.rcca.attention
    attention.gamma.data.fill_(0.7)
    x = torch.randn(2, 8, H, W)
    with torch.no_grad():
        with AttentionRecorder(attention) as recorder:
            block(x)
        loop1_input = block.reduce(x)
        loop2_input = attention(loop1_input)
    assert len(recorder.maps) == 2
    for recorded, inputs in zip(recorder.maps, (loop1_input, loop2_input)):
        q, k = attention.query_conv(inputs), attention.key_conv(inputs)
        _, expected = loop_criss_cross(q, k, k)
        torch.testing.assert_close(recorded.double(), expected, rtol=0, atol=1e-5)
    assert not torch.allclose(recorder.maps[0], recorder.maps[1], atol=1e-3)
    assert not attention._forward_hooks  # the hook is removed on exit


def test_recorder_needs_a_criss_cross_module():
    with pytest.raises(TypeError, match="CrissCrossAttention"):
        AttentionRecorder(torch.nn.Conv2d(1, 1, 1))
