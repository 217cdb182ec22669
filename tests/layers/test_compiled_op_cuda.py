"""The compiled criss-cross op's CUDA kernels against the PyTorch backend and the CPU kernel.

Every case needs a CUDA GPU and an extension built with CUDA kernels; elsewhere the whole module is
reported as skipped.
"""
import pytest
import torch

from ccnet_d2.layers import compiled_op_has_cuda_kernels, compiled_op_status, criss_cross_attention
from ccnet_d2.layers import GPU_VERIFIED_KERNELS, criss_cross_attention_torch

from .compiled_op_checks import SHAPES, check_against_torch_backend, make_inputs, ops, output_and_grads

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
    pytest.mark.skipif(not compiled_op_has_cuda_kernels(),
                       reason=f"the compiled op is {compiled_op_status()}, not built with CUDA kernels"),
]


@pytest.mark.parametrize("shape", SHAPES + [(2, 8, 16, 33, 65), (2, 64, 512, 97, 97)])
@pytest.mark.parametrize("dtype,rtol", [(torch.float32, 1e-5), (torch.float16, 4e-3), (torch.bfloat16, 3e-2)])
def test_cuda_matches_torch_backend(shape, dtype, rtol):
    check_against_torch_backend("cuda", dtype, shape, rtol=rtol)


@pytest.mark.parametrize("layout", ["channels_last", "transposed"])
def test_cuda_non_contiguous_inputs(layout):
    make = {"channels_last": lambda t: t.contiguous(memory_format=torch.channels_last),
            "transposed": lambda t: t.transpose(2, 3).contiguous().transpose(2, 3)}[layout]
    check_against_torch_backend("cuda", torch.float32, (2, 8, 16, 19, 23), rtol=1e-5, layout=make)


def test_cuda_gradcheck_float64():
    q, k, v = (t.requires_grad_(True) for t in make_inputs(2, 3, 4, 5, 6, device="cuda", seed=5))
    assert torch.autograd.gradcheck(ops.criss_cross_attention, (q, k, v), eps=1e-6, atol=1e-7)


def test_cuda_largest_shape_float32():
    """[8, 512, 129, 129] (a 1024x1024 crop at output stride 8), forward and gradients (float32)."""
    check_against_torch_backend("cuda", torch.float32, (8, 64, 512, 129, 129), rtol=1e-5)


def test_cuda_backward_is_deterministic():
    q, k, v = make_inputs(2, 64, 512, 97, 97, dtype=torch.float32, device="cuda")
    grad_out = torch.randn_like(v)
    first = output_and_grads(ops.criss_cross_attention, (q, k, v), grad_out)
    second = output_and_grads(ops.criss_cross_attention, (q, k, v), grad_out)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_cuda_matches_cpu_kernel_in_float64():
    """Same per-element functions, in the same summation order, on both devices: in float64 only
    FMA contraction and the exp implementation differ, so the results agree to a few ulps."""
    q, k, v = make_inputs(2, 3, 5, 9, 7)
    grad_out = make_inputs(2, 3, 5, 9, 7, seed=7)[2]
    cpu = output_and_grads(ops.criss_cross_attention, (q, k, v), grad_out)
    gpu = output_and_grads(ops.criss_cross_attention, [t.cuda() for t in (q, k, v)], grad_out.cuda())
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-13, atol=1e-13)


def test_cuda_backend_uses_the_kernel_and_auto_the_verified_kernels():
    """backend="cuda" runs the compiled op; "auto" runs the first kernel of GPU_VERIFIED_KERNELS, or torch."""
    q, k, v = make_inputs(2, 4, 8, 10, 12, dtype=torch.float32, device="cuda")
    torch.testing.assert_close(criss_cross_attention(q, k, v, backend="cuda"), ops.criss_cross_attention(q, k, v),
                               rtol=0, atol=0)
    torch.testing.assert_close(criss_cross_attention(q, k, v, backend="cuda"),
                               criss_cross_attention_torch(q, k, v), rtol=1e-5, atol=1e-5)
    chosen = next(iter(GPU_VERIFIED_KERNELS), "torch")
    torch.testing.assert_close(criss_cross_attention(q, k, v, backend="auto"),
                               criss_cross_attention(q, k, v, backend=chosen), rtol=0, atol=0)


def test_cuda_torch_compile_inductor():
    def attend(q, k, v):
        return criss_cross_attention(q.relu(), k, v, backend="cuda") * 2.0

    q, k, v = make_inputs(2, 4, 8, 10, 12, dtype=torch.float32, device="cuda")
    grad_out = torch.randn_like(v)
    compiled = torch.compile(attend, fullgraph=True)
    for a, b in zip(output_and_grads(compiled, (q, k, v), grad_out), output_and_grads(attend, (q, k, v), grad_out)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
