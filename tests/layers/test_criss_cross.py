"""The criss-cross operator (torch backend and "auto" on CPU) against the slow loop reference."""
import random

import pytest
import torch

from ccnet_d2.layers import (
    criss_cross_attention,
    criss_cross_attention_map,
    criss_cross_attention_torch,
    pixel_attention_map,
)

from .reference import cross_positions, loop_criss_cross


def _inputs(b, cq, c, h, w, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, cq, h, w, generator=g, dtype=dtype),
            torch.randn(b, cq, h, w, generator=g, dtype=dtype),
            torch.randn(b, c, h, w, generator=g, dtype=dtype))


@pytest.mark.parametrize("h,w", [(1, 1), (1, 7), (7, 1), (5, 3), (13, 17), (2, 2)])
@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_matches_loop_reference(h, w, backend):
    q, k, v = _inputs(2, 3, 4, h, w)
    expected, _ = loop_criss_cross(q, k, v)
    out = criss_cross_attention(q, k, v, backend=backend)
    assert out.dtype == torch.float64 and out.shape == (2, 4, h, w)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


def test_matches_loop_reference_on_random_sizes():
    """Sizes, batch and channel counts drawn by a generator, not hand-picked."""
    rng = random.Random(20261123)
    for trial in range(6):
        b, cq, c = rng.randint(1, 3), rng.randint(1, 5), rng.randint(1, 6)
        h, w = rng.randint(1, 12), rng.randint(1, 12)
        q, k, v = _inputs(b, cq, c, h, w, seed=trial)
        expected, _ = loop_criss_cross(q, k, v)
        torch.testing.assert_close(criss_cross_attention(q, k, v), expected, rtol=1e-6, atol=1e-6,
                                   msg=lambda m: f"size {(b, cq, c, h, w)}: {m}")


def test_non_contiguous_inputs():
    q, k, v = _inputs(2, 3, 5, 6, 9)
    # transposed storage and strided slices give the same values through non-contiguous views
    qn = q.transpose(2, 3).contiguous().transpose(2, 3)
    kn = torch.stack([k, torch.zeros_like(k)], dim=2).flatten(1, 2)[:, ::2]
    vn = v.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    assert not (qn.is_contiguous() or kn.is_contiguous() or vn.is_contiguous())
    torch.testing.assert_close(criss_cross_attention(qn, kn, vn), loop_criss_cross(q, k, v)[0],
                               rtol=1e-6, atol=1e-6)


def test_gradcheck():
    q, k, v = (t.requires_grad_() for t in _inputs(2, 2, 3, 4, 5))
    assert torch.autograd.gradcheck(criss_cross_attention_torch, (q, k, v), eps=1e-6, atol=1e-6)


def test_gradients_match_loop_reference():
    q, k, v = (t.requires_grad_() for t in _inputs(1, 2, 3, 3, 4, seed=3))
    grad_out = torch.randn(1, 3, 3, 4, dtype=torch.float64)
    grads = torch.autograd.grad((criss_cross_attention(q, k, v) * grad_out).sum(), (q, k, v))
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    ref = torch.autograd.grad((loop_criss_cross(q2, k2, v2)[0] * grad_out).sum(), (q2, k2, v2))
    for got, exp in zip(grads, ref):
        torch.testing.assert_close(got, exp, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("h,w", [(1, 1), (4, 9), (8, 3)])
def test_uniform_energies_count_each_pixel_once(h, w):
    """Zero queries make every energy equal: each of the H+W-1 positions weighs exactly 1/(H+W-1),
    and the output is the mean of the values on the cross (the pixel itself counted once)."""
    _, k, v = _inputs(1, 2, 3, h, w)
    q = torch.zeros_like(k)
    weights = criss_cross_attention_map(q, k)
    assert weights.shape == (1, h + w - 1, h, w)
    assert torch.all(weights == torch.tensor(1.0 / (h + w - 1), dtype=weights.dtype))
    out = criss_cross_attention(q, k, v)
    for y in range(h):
        for x in range(w):
            cross = torch.stack([v[0, :, i, j] for i, j in cross_positions(h, w, y, x)])
            torch.testing.assert_close(out[0, :, y, x], cross.mean(0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("h,w", [(1, 6), (6, 1), (5, 7)])
def test_attention_map_layout_matches_reference(h, w):
    q, k, _ = _inputs(2, 3, 1, h, w, seed=5)
    _, expected = loop_criss_cross(q, k, torch.zeros(2, 1, h, w))
    got = criss_cross_attention_map(q, k)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


def test_pixel_attention_map_scatters_onto_the_cross():
    h, w, y, x = 5, 7, 3, 2
    q, k, _ = _inputs(1, 3, 1, h, w, seed=7)
    att = criss_cross_attention_map(q, k)
    image = pixel_attention_map(att, y, x)
    _, ref_w = loop_criss_cross(q, k, torch.zeros(1, 1, h, w))
    for p, (i, j) in enumerate(cross_positions(h, w, y, x)):
        assert image[0, i, j].item() == pytest.approx(ref_w[0, p, y, x].item(), rel=1e-5)
    off_cross = torch.ones(h, w, dtype=torch.bool)
    off_cross[y, :] = False
    off_cross[:, x] = False
    assert torch.all(image[0][off_cross] == 0)
    assert image.sum().item() == pytest.approx(1.0, rel=1e-6)
    with pytest.raises(ValueError, match="outside"):
        pixel_attention_map(att, h, 0)


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 2e-2), (torch.float16, 2e-3)])
def test_reduced_precision_against_float32(dtype, tol):
    """fp16/bf16 inputs: float32 softmax inside, result in the input dtype, close to float32 run on
    the same (rounded) inputs; tolerance is relative to the output's scale."""
    q, k, v = (t.to(dtype) for t in _inputs(2, 8, 16, 9, 11, dtype=torch.float32))
    out = criss_cross_attention(q, k, v)
    assert out.dtype == dtype
    ref = criss_cross_attention(q.float(), k.float(), v.float())
    err = (out.float() - ref).abs().max().item()
    assert err <= tol * ref.abs().max().item(), f"{dtype}: max error {err}"


def test_half_precision_softmax_does_not_overflow():
    """Energies beyond fp16's range (65504) must not turn into inf/nan: the softmax runs in float32."""
    q = torch.full((1, 4, 3, 3), 200.0, dtype=torch.float16)
    k = torch.full((1, 4, 3, 3), 200.0, dtype=torch.float16)
    v = torch.randn(1, 2, 3, 3).half()
    out = criss_cross_attention(q, k, v)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("shapes,match", [
    (((1, 3, 4, 4), (1, 2, 4, 4), (1, 5, 4, 4)), "query and key must have the same shape"),
    (((1, 3, 4, 4), (1, 3, 4, 4), (1, 5, 4, 3)), r"value must be \[B=1, C, H=4, W=4\]"),
    (((2, 3, 4, 4), (2, 3, 4, 4), (1, 5, 4, 4)), r"value must be \[B=2"),
    (((3, 4, 4), (3, 4, 4), (5, 4, 4)), "must be 4-D"),
])
def test_shape_errors_name_the_problem(shapes, match):
    q, k, v = (torch.randn(s) for s in shapes)
    with pytest.raises(ValueError, match=match):
        criss_cross_attention(q, k, v)


def test_dtype_errors_name_the_problem():
    q = torch.ones(1, 2, 3, 3, dtype=torch.int64)
    with pytest.raises(TypeError, match="query must be a floating-point tensor.*torch.int64"):
        criss_cross_attention(q, q.float(), q.float())
    f = torch.ones(1, 2, 3, 3)
    with pytest.raises(TypeError, match="share one dtype.*torch.float32.*torch.float64"):
        criss_cross_attention(f, f, f.double())


def test_backend_errors():
    q = torch.randn(1, 2, 3, 3)
    with pytest.raises(ValueError, match="backend must be one of"):
        criss_cross_attention(q, q, q, backend="triton")
    with pytest.raises(ValueError, match="backend='cuda' needs CUDA tensors"):
        criss_cross_attention(q, q, q, backend="cuda")
