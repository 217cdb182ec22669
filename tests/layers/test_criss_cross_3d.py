"""The 3D criss-cross operator and its modules against the voxel-by-voxel reference, the 2D operator
(T = 1) and the counting rule (T+H+W-2 positions, each voxel once)."""
import pytest
import torch

from ccnet_d2.layers import (
    RCCA,
    RCCA3d,
    CrissCrossAttention3d,
    criss_cross_attention,
    criss_cross_attention_3d,
)
from tests.common import build_cfg, config_path

from .reference import cross_positions_3d, loop_criss_cross_3d
from .test_modules import _randomize


def _qkv(shape, value_channels=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(shape, generator=g, dtype=dtype) for _ in range(2))
    v = torch.randn((shape[0], value_channels, *shape[2:]), generator=g, dtype=dtype)
    return q, k, v


@pytest.mark.parametrize("shape", [(2, 3, 3, 5, 4), (1, 2, 1, 3, 5), (1, 2, 4, 1, 3), (1, 2, 3, 4, 1),
                                   (1, 1, 2, 1, 1)])
def test_matches_the_voxel_loop_on_odd_sizes(shape):
    q, k, v = _qkv(shape)
    torch.testing.assert_close(criss_cross_attention_3d(q, k, v), loop_criss_cross_3d(q, k, v), rtol=1e-10, atol=1e-10)


def test_each_voxel_is_counted_once_among_t_plus_h_plus_w_minus_2_positions():
    """Uniform energies (zero query) and one-hot values, one channel per voxel: the output at u is the
    weight u gives to every voxel, which must be 1/(T+H+W-2) on u's three lines (u itself once) and 0 off them."""
    t, h, w = 3, 4, 5
    n = t * h * w
    q = torch.zeros(1, 2, t, h, w, dtype=torch.float64)
    k = torch.randn(1, 2, t, h, w, dtype=torch.float64)
    v = torch.eye(n, dtype=torch.float64).view(1, n, t, h, w)
    out = criss_cross_attention_3d(q, k, v)
    for f, y, x in [(0, 0, 0), (1, 2, 3), (2, 3, 4)]:
        expected = torch.zeros(t, h, w, dtype=torch.float64)
        for s, i, j in cross_positions_3d(t, h, w, f, y, x):
            expected[s, i, j] += 1.0 / (t + h + w - 2)
        assert expected[f, y, x] == 1.0 / (t + h + w - 2)
        torch.testing.assert_close(out[0, :, f, y, x].view(t, h, w), expected, rtol=0, atol=1e-15)


def test_one_frame_equals_the_2d_operator():
    q, k, v = _qkv((2, 4, 1, 6, 7), value_channels=5, dtype=torch.float32)
    out = criss_cross_attention_3d(q, k, v)
    torch.testing.assert_close(out[:, :, 0], criss_cross_attention(q[:, :, 0], k[:, :, 0], v[:, :, 0], backend="torch"))


def test_frames_interact_only_along_the_time_line():
    """Negative control for the time line: changing one frame's keys changes another frame's output."""
    q, k, v = _qkv((1, 2, 3, 3, 3))
    out = criss_cross_attention_3d(q, k, v)
    k2 = k.clone()
    k2[:, :, 2, 0, 0] += 1.0
    changed = (criss_cross_attention_3d(q, k2, v) - out).abs().amax(dim=1)[0] > 1e-12
    expected = torch.zeros(3, 3, 3, dtype=torch.bool)
    expected[2, 0, :] = expected[2, :, 0] = True  # its row and column in frame 2
    expected[:, 0, 0] = True  # its time line
    assert torch.equal(changed, expected)


def test_gradcheck():
    q, k, v = (x.requires_grad_() for x in _qkv((1, 2, 2, 3, 3), value_channels=2))
    assert torch.autograd.gradcheck(criss_cross_attention_3d, (q, k, v))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_is_computed_in_float32_and_cast_back(dtype):
    q, k, v = _qkv((1, 4, 3, 5, 4), dtype=torch.float32)
    out = criss_cross_attention_3d(q.to(dtype), k.to(dtype), v.to(dtype))
    assert out.dtype == dtype
    reference = criss_cross_attention_3d(q.to(dtype).float(), k.to(dtype).float(), v.to(dtype).float())
    torch.testing.assert_close(out.float(), reference.to(dtype).float(), rtol=0, atol=0)


@pytest.mark.parametrize("shapes,match", [
    (((1, 3, 4, 4), (1, 3, 4, 4), (1, 3, 4, 4)), r"query must be 5-D \[B, C, T, H, W\]"),
    (((1, 3, 2, 4, 4), (1, 2, 2, 4, 4), (1, 5, 2, 4, 4)), r"query and key must have the same shape \[B, C', T, H, W\]"),
    (((1, 3, 2, 4, 4), (1, 3, 2, 4, 4), (1, 5, 3, 4, 4)), r"value must be \[B=1, C, T=2, H=4, W=4\]"),
])
def test_shape_errors_name_the_problem(shapes, match):
    q, k, v = (torch.randn(s) for s in shapes)
    with pytest.raises(ValueError, match="criss_cross_attention_3d: " + match):
        criss_cross_attention_3d(q, k, v)


def test_no_compiled_backend():
    q = torch.randn(1, 2, 2, 3, 3)
    with pytest.raises(ValueError, match="no compiled 3D kernel"):
        criss_cross_attention_3d(q, q, q, backend="cuda")
    with pytest.raises(ValueError, match="CrissCrossAttention3d: backend must be one of"):
        CrissCrossAttention3d(8, backend="cuda")


def test_cca3d_module_matches_the_loop_and_starts_as_identity():
    module = CrissCrossAttention3d(6, reduction=2).double()
    x = torch.randn(2, 6, 3, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(module(x), x, rtol=0, atol=0)
    _randomize(module)
    frames = x.transpose(1, 2)  # [B, T, C, H, W]: the 1x1 convs written out, frame by frame

    def conv(c):
        return (torch.einsum("oc,btchw->bothw", c.weight[:, :, 0, 0], frames) + c.bias.view(1, -1, 1, 1, 1))

    q, k, v = conv(module.query_conv), conv(module.key_conv), conv(module.value_conv)
    torch.testing.assert_close(module(x), module.gamma * loop_criss_cross_3d(q, k, v) + x, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match=r"expected input \[B, 6, T, H, W\], got \(1, 6, 4, 5\)"):
        module(torch.randn(1, 6, 4, 5, dtype=torch.float64))


def test_rcca3d_applies_one_shared_module_r_times_and_equals_rcca_on_one_frame():
    rcca3d = _randomize(RCCA3d(8, recurrence=3, reduction=4).double())
    assert len(list(rcca3d.parameters())) == len(list(rcca3d.attention.parameters()))  # one shared module
    x = torch.randn(1, 8, 3, 4, 4, dtype=torch.float64)
    expected = x
    for _ in range(3):
        expected = rcca3d.attention(expected)
    torch.testing.assert_close(rcca3d(x), expected, rtol=0, atol=0)
    rcca2d = RCCA(8, recurrence=3, reduction=4, backend="torch").double()
    rcca2d.load_state_dict(rcca3d.state_dict())  # same parameters, same names
    one_frame = x[:, :, :1]
    torch.testing.assert_close(rcca3d(one_frame)[:, :, 0], rcca2d(one_frame[:, :, 0]), rtol=1e-10, atol=1e-10)


def test_rcca3d_is_built_from_a_config():
    cfg = build_cfg(config_path("CamVid-VideoSegmentation/ccnet3d_R_101_os8_r2_t5_camvid.yaml"),
                    "MODEL.CCNET.REDUCTION", "4")
    module = RCCA3d(cfg, channels=16)
    assert module.recurrence == 2 and module.attention.query_conv.out_channels == 4
    assert isinstance(module.attention, CrissCrossAttention3d)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
@pytest.mark.parametrize("dtype,tolerance", [(torch.float32, 1e-5), (torch.float16, 2e-3), (torch.bfloat16, 2e-2)])
def test_cuda_tensors_match_the_cpu_result(dtype, tolerance):
    q, k, v = _qkv((2, 8, 5, 17, 23), value_channels=16, dtype=torch.float32)
    q, k, v = (t.to(dtype) for t in (q, k, v))
    out = criss_cross_attention_3d(q.cuda(), k.cuda(), v.cuda())
    assert out.dtype == dtype and out.is_cuda
    expected = criss_cross_attention_3d(q.float(), k.float(), v.float())
    torch.testing.assert_close(out.float().cpu(), expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("t, h, w", [(0, 3, 4), (2, 0, 4), (2, 3, 0)])
def test_an_empty_clip_is_refused(t, h, w):
    q, v = torch.randn(1, 2, t, h, w), torch.randn(1, 3, t, h, w)
    with pytest.raises(ValueError, match=r"T, H and W must be >= 1"):
        criss_cross_attention_3d(q, q, v)
