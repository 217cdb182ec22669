"""The compiled criss-cross op (ccnet_d2._C), CPU kernel, against independent references.

The CPU kernel is built from the same per-element functions as the CUDA kernels
(``ccnet_d2/layers/csrc/criss_cross/criss_cross_utils.h``), so these cases check the arithmetic,
the registration (fake kernels, autograd, torch.compile) and the C++ input checks wherever the
extension is built. The CUDA kernels are tested in ``test_compiled_op_cuda.py``.
"""
import pytest
import torch

from ccnet_d2.layers import compiled_op, compiled_op_built, compiled_op_has_cuda_kernels, compiled_op_status

from .compiled_op_checks import SHAPES, check_against_torch_backend, make_inputs, ops, output_and_grads
from .reference import loop_criss_cross

needs_extension = pytest.mark.skipif(
    not compiled_op_built(),
    reason=f"the compiled op is {compiled_op_status()}: install with a C++ compiler "
           "(pip install -e . or dev/install.sh) to test it")


@needs_extension
@pytest.mark.parametrize("shape", SHAPES)
def test_cpu_forward_and_weights_match_loop_reference(shape):
    q, k, v = make_inputs(*shape)
    expected_out, expected_weights = loop_criss_cross(q, k, v)
    torch.testing.assert_close(ops.criss_cross_attention(q, k, v), expected_out, rtol=1e-10, atol=1e-10)
    weights = ops.criss_cross_attention_weights(q, k)
    assert weights.dtype == torch.float64
    torch.testing.assert_close(weights, expected_weights, rtol=1e-10, atol=1e-10)


@needs_extension
@pytest.mark.parametrize("shape", SHAPES + [(2, 8, 16, 9, 11)])
def test_cpu_gradients_match_torch_backend_float64(shape):
    check_against_torch_backend("cpu", torch.float64, shape, rtol=1e-10)


@needs_extension
def test_cpu_gradcheck_float64():
    q, k, v = (t.requires_grad_(True) for t in make_inputs(2, 2, 3, 3, 4, seed=3))
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
    check_against_torch_backend("cpu", torch.float64, shape, rtol=1e-10, layout=make)


@needs_extension
@pytest.mark.parametrize("dtype,rtol", [(torch.float32, 1e-5), (torch.float16, 4e-3), (torch.bfloat16, 3e-2)])
def test_cpu_reduced_precision(dtype, rtol):
    """float32 accumulation: the error is the input/output rounding of `dtype`, compared with the
    float64 reference on the same (rounded) inputs."""
    check_against_torch_backend("cpu", dtype, (2, 8, 16, 9, 13), rtol=rtol)


@needs_extension
def test_cpu_backward_is_deterministic():
    q, k, v = make_inputs(2, 4, 6, 11, 9, dtype=torch.float32)
    grad_out = torch.randn_like(v)
    first = output_and_grads(ops.criss_cross_attention, (q, k, v), grad_out)
    second = output_and_grads(ops.criss_cross_attention, (q, k, v), grad_out)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


@needs_extension
def test_cpu_empty_batch_and_channels():
    q, k, v = make_inputs(0, 2, 3, 4, 5)
    assert ops.criss_cross_attention(q, k, v).shape == (0, 3, 4, 5)
    q, k, v = make_inputs(2, 2, 0, 4, 5)
    assert ops.criss_cross_attention(q, k, v).shape == (2, 0, 4, 5)


@needs_extension
def test_opcheck_registration():
    """Schema, fake kernel, autograd registration and AOT dispatch, as torch.library checks them."""
    q, k, v = (t.requires_grad_(True) for t in make_inputs(2, 3, 4, 5, 6, dtype=torch.float32))
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

    q, k, v = make_inputs(2, 3, 4, 7, 5, dtype=torch.float32)
    grad_out = torch.randn(2, 7, 5)
    compiled = torch.compile(attend, fullgraph=True, backend="aot_eager")
    for a, b in zip(output_and_grads(compiled, (q, k, v), grad_out), output_and_grads(attend, (q, k, v), grad_out)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@needs_extension
def test_backend_queries_trace_under_torch_compile():
    """criss_cross_attention(backend="cuda"/"auto") asks compiled_op_has_cuda_kernels() inside
    compiled models; the query must not break a fullgraph trace."""
    def attend(q, k, v):
        scale = 2.0 if compiled_op_has_cuda_kernels() else 3.0
        return torch.ops.ccnet_d2.criss_cross_attention(q, k, v) * scale

    q, k, v = make_inputs(1, 2, 3, 4, 5, dtype=torch.float32)
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
    extension = compiled_op._load()
    assert compiled_op_has_cuda_kernels() == extension.compiled_with_cuda()
    assert compiled_op_status().startswith("built with")


@needs_extension
def test_double_backward_raises_instead_of_returning_zeros():
    q, k, v = (t.requires_grad_(True) for t in make_inputs(1, 2, 3, 4, 5, dtype=torch.float32))
    out = ops.criss_cross_attention(q, k, v)
    with pytest.raises(RuntimeError, match="no double backward .* use backend='torch'"):
        torch.autograd.grad(out.square().sum(), q, create_graph=True)
    first = torch.autograd.grad(ops.criss_cross_attention(q, k, v).square().sum(), q)[0]  # plain backward works
    assert torch.isfinite(first).all() and first.abs().sum() > 0
