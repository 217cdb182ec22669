"""The compiled criss-cross op (ccnet_d2._C) against independent references.

CPU cases run the op's CPU kernel, which is built from the same per-element functions as the CUDA
kernels (csrc/criss_cross/criss_cross.h), so they check the arithmetic, the registration (fake
kernels, autograd, torch.compile) and the C++ checks wherever the extension is built. CUDA cases
(marked `cuda`) need a GPU and an extension compiled with CUDA kernels.
"""
import pytest
import torch

from ccnet_d2.layers import criss_cross_attention, criss_cross_attention_torch
from ccnet_d2.layers import cuda_backend

from .reference import loop_criss_cross

needs_extension = pytest.mark.skipif(
    not cuda_backend.extension_built(),
    reason=f"the compiled op is {cuda_backend.extension_status()}: install with a C++ compiler "
           "(pip install -e . or dev/install.sh) to test it")
needs_cuda = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
    pytest.mark.skipif(not cuda_backend.extension_available(),
                       reason=f"the compiled op is {cuda_backend.extension_status()}, not built with CUDA kernels"),
]

ops = torch.ops.ccnet_d2 if cuda_backend.extension_built() else None
SHAPES = [(1, 1, 1, 1, 1), (1, 2, 3, 1, 7), (1, 2, 3, 7, 1), (2, 3, 4, 5, 3), (2, 4, 5, 13, 17), (3, 1, 2, 2, 2)]


def _inputs(b, cq, c, h, w, dtype=torch.float64, device="cpu", seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return tuple((scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(device=device, dtype=dtype)
                 for shape in ((b, cq, h, w), (b, cq, h, w), (b, c, h, w)))


def _grads(fn, inputs, grad_output):
    inputs = [t.detach().requires_grad_(True) for t in inputs]
    out = fn(*inputs)
    return (out,) + torch.autograd.grad(out, inputs, grad_output)


def _assert_close_scaled(actual, expected, rtol):
    """Relative check against the reference's own scale: |a - e| <= rtol * (|e| + max|e|)."""
    expected = expected.to(torch.float64)
    actual = actual.to(torch.float64)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * max(expected.abs().max().item(), 1e-30))


def _check_against_torch_backend(device, dtype, shape, rtol, seed=0, layout=None):
    """Forward and the three gradients of the op in `dtype` against the torch backend in float64."""
    q, k, v = _inputs(*shape, dtype=dtype, device=device, seed=seed)
    grad_out = _inputs(*shape, dtype=dtype, device=device, seed=seed + 100)[2]
    if layout is not None:
        q, k, v, grad_out = (layout(t) for t in (q, k, v, grad_out))
    got = _grads(ops.criss_cross_attention, (q, k, v), grad_out)
    want = _grads(criss_cross_attention_torch, [t.double() for t in (q, k, v)], grad_out.double())
    assert got[0].dtype == dtype and got[0].shape == v.shape
    for name, a, e in zip(("output", "grad_query", "grad_key", "grad_value"), got, want):
        assert a.shape == e.shape, name
        _assert_close_scaled(a, e, rtol)


# ---------------------------------------------------------------- CPU kernel (same arithmetic)

@needs_extension
@pytest.mark.parametrize("shape", SHAPES)
def test_cpu_forward_and_weights_match_loop_reference(shape):
    q, k, v = _inputs(*shape)
    expected_out, expected_weights = loop_criss_cross(q, k, v)
    torch.testing.assert_close(ops.criss_cross_attention(q, k, v), expected_out, rtol=1e-10, atol=1e-10)
    weights = ops.criss_cross_attention_weights(q, k)
    assert weights.dtype == torch.float64
    torch.testing.assert_close(weights, expected_weights, rtol=1e-10, atol=1e-10)


@needs_extension
@pytest.mark.parametrize("shape", SHAPES + [(2, 8, 16, 9, 11)])
def test_cpu_gradients_match_torch_backend_float64(shape):
    _check_against_torch_backend("cpu", torch.float64, shape, rtol=1e-10)


@needs_extension
def test_cpu_gradcheck_float64():
    q, k, v = (t.requires_grad_(True) for t in _inputs(2, 2, 3, 3, 4, seed=3))
    assert torch.autograd.gradcheck(ops.criss_cross_attention, (q, k, v), eps=1e-6, atol=1e-7)


@needs_extension
@pytest.mark.parametrize("layout", ["channels_last", "transposed", "sliced"])
def test_cpu_non_contiguous_inputs(layout):
    shape = (2, 3, 4, 6, 5)
    make = {
        "channels_last": lambda t: t.contiguous(memory_format=torch.channels_last),
        # the same values, stored [B, C, W, H] and viewed back as [B, C, H, W]
        "transposed": lambda t: t.transpose(2, 3).contiguous().transpose(2, 3),
        "sliced": lambda t: torch.cat([t, t], dim=1)[:, ::2],
    }[layout]
    assert not make(torch.zeros(2, 3, 6, 5)).is_contiguous()
    _check_against_torch_backend("cpu", torch.float64, shape, rtol=1e-10, layout=make)


@needs_extension
@pytest.mark.parametrize("dtype,rtol", [(torch.float32, 1e-5), (torch.float16, 4e-3), (torch.bfloat16, 3e-2)])
def test_cpu_reduced_precision(dtype, rtol):
    """float32 accumulation: the error is the input/output rounding of `dtype`, compared with the
    float64 reference on the same (rounded) inputs."""
    _check_against_torch_backend("cpu", dtype, (2, 8, 16, 9, 13), rtol=rtol)


@needs_extension
def test_cpu_backward_is_deterministic():
    q, k, v = _inputs(2, 4, 6, 11, 9, dtype=torch.float32)
    grad_out = torch.randn_like(v)
    first = _grads(ops.criss_cross_attention, (q, k, v), grad_out)
    second = _grads(ops.criss_cross_attention, (q, k, v), grad_out)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


@needs_extension
def test_cpu_empty_batch_and_channels():
    q, k, v = _inputs(0, 2, 3, 4, 5)
    assert ops.criss_cross_attention(q, k, v).shape == (0, 3, 4, 5)
    q, k, v = _inputs(2, 2, 0, 4, 5)
    assert ops.criss_cross_attention(q, k, v).shape == (2, 0, 4, 5)


@needs_extension
def test_opcheck_registration():
    """Schema, fake kernel, autograd registration and AOT dispatch, as torch.library checks them."""
    q, k, v = (t.requires_grad_(True) for t in _inputs(2, 3, 4, 5, 6, dtype=torch.float32))
    torch.library.opcheck(torch.ops.ccnet_d2.criss_cross_attention.default, (q, k, v))
    torch.library.opcheck(torch.ops.ccnet_d2.criss_cross_attention_weights.default, (q.detach(), k.detach()))
    grad_out = torch.randn_like(v)
    torch.library.opcheck(torch.ops.ccnet_d2.criss_cross_attention_backward.default,
                          (grad_out, q.detach(), k.detach(), v.detach()))


@needs_extension
def test_torch_compile_sees_one_op():
    """fullgraph=True fails if the op breaks the graph; forward and gradients must equal eager."""
    def attend(q, k, v):
        return torch.ops.ccnet_d2.criss_cross_attention(q * 2.0, k, v).sum(dim=1)

    q, k, v = _inputs(2, 3, 4, 7, 5, dtype=torch.float32)
    grad_out = torch.randn(2, 7, 5)
    compiled = torch.compile(attend, fullgraph=True, backend="aot_eager")
    for a, b in zip(_grads(compiled, (q, k, v), grad_out), _grads(attend, (q, k, v), grad_out)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@needs_extension
def test_backend_queries_trace_under_torch_compile():
    """criss_cross_attention(backend="cuda"/"auto") asks extension_available() inside compiled
    models; the query must not break a fullgraph trace."""
    def attend(q, k, v):
        scale = 2.0 if cuda_backend.extension_available() else 3.0
        return torch.ops.ccnet_d2.criss_cross_attention(q, k, v) * scale

    q, k, v = _inputs(1, 2, 3, 4, 5, dtype=torch.float32)
    torch.testing.assert_close(torch.compile(attend, fullgraph=True, backend="aot_eager")(q, k, v), attend(q, k, v))


@needs_extension
@pytest.mark.parametrize("args,message", [
    (((1, 2, 3, 4), (1, 3, 3, 4), (1, 5, 3, 4)), "query and key must have one shape"),
    (((1, 2, 3, 4), (1, 2, 3, 4), (1, 5, 3, 5)), "value must be [B, C, H, W]"),
    (((2, 3, 4), (2, 3, 4), (2, 3, 4)), "must be 4-D"),
])
def test_cpu_errors_name_the_problem(args, message):
    q, k, v = (torch.randn(*s) for s in args)
    with pytest.raises(RuntimeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ops.criss_cross_attention(q, k, v)
    with pytest.raises(RuntimeError, match="must share one dtype"):
        ops.criss_cross_attention(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4).half())


@needs_extension
def test_status_matches_the_build():
    extension = cuda_backend._load()
    assert cuda_backend.extension_available() == extension.compiled_with_cuda()
    assert cuda_backend.extension_status().startswith("built with")


# ---------------------------------------------------------------- CUDA kernels

@pytest.mark.parametrize("shape", SHAPES + [(2, 8, 16, 33, 65), (2, 64, 512, 97, 97)])
@pytest.mark.parametrize("dtype,rtol", [(torch.float32, 1e-5), (torch.float16, 4e-3), (torch.bfloat16, 3e-2)])
def test_cuda_matches_torch_backend(shape, dtype, rtol):
    _check_against_torch_backend("cuda", dtype, shape, rtol=rtol)


@pytest.mark.parametrize("layout", ["channels_last", "transposed"])
def test_cuda_non_contiguous_inputs(layout):
    make = {"channels_last": lambda t: t.contiguous(memory_format=torch.channels_last),
            "transposed": lambda t: t.transpose(2, 3).contiguous().transpose(2, 3)}[layout]
    _check_against_torch_backend("cuda", torch.float32, (2, 8, 16, 19, 23), rtol=1e-5, layout=make)


def test_cuda_gradcheck_float64():
    q, k, v = (t.requires_grad_(True) for t in _inputs(2, 3, 4, 5, 6, device="cuda", seed=5))
    assert torch.autograd.gradcheck(ops.criss_cross_attention, (q, k, v), eps=1e-6, atol=1e-7)


def test_cuda_largest_shape_float32():
    """[8, 512, 129, 129], the issue's largest size, forward and gradients (float32)."""
    _check_against_torch_backend("cuda", torch.float32, (8, 64, 512, 129, 129), rtol=1e-5)


def test_cuda_backward_is_deterministic():
    q, k, v = _inputs(2, 64, 512, 97, 97, dtype=torch.float32, device="cuda")
    grad_out = torch.randn_like(v)
    first = _grads(ops.criss_cross_attention, (q, k, v), grad_out)
    second = _grads(ops.criss_cross_attention, (q, k, v), grad_out)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_cuda_matches_cpu_kernel_in_float64():
    """Same per-element functions, in the same summation order, on both devices: in float64 only
    FMA contraction and the exp implementation differ, so the results agree to a few ulps."""
    q, k, v = _inputs(2, 3, 5, 9, 7)
    grad_out = _inputs(2, 3, 5, 9, 7, seed=7)[2]
    cpu = _grads(ops.criss_cross_attention, (q, k, v), grad_out)
    gpu = _grads(ops.criss_cross_attention, [t.cuda() for t in (q, k, v)], grad_out.cuda())
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-13, atol=1e-13)


def test_cuda_auto_and_cuda_backends_use_the_kernel():
    q, k, v = _inputs(2, 4, 8, 10, 12, dtype=torch.float32, device="cuda")
    torch.testing.assert_close(criss_cross_attention(q, k, v, backend="auto"),
                               ops.criss_cross_attention(q, k, v), rtol=0, atol=0)
    torch.testing.assert_close(criss_cross_attention(q, k, v, backend="cuda"),
                               criss_cross_attention_torch(q, k, v), rtol=1e-5, atol=1e-5)


def test_cuda_torch_compile_inductor():
    def attend(q, k, v):
        return criss_cross_attention(q.relu(), k, v, backend="cuda") * 2.0

    q, k, v = _inputs(2, 4, 8, 10, 12, dtype=torch.float32, device="cuda")
    grad_out = torch.randn_like(v)
    compiled = torch.compile(attend, fullgraph=True)
    for a, b in zip(_grads(compiled, (q, k, v), grad_out), _grads(attend, (q, k, v), grad_out)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


for _name, _fn in list(globals().items()):
    if _name.startswith("test_cuda_"):
        for _mark in needs_cuda:
            _fn = _mark(_fn)
        globals()[_name] = _fn
