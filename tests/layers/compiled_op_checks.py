"""Inputs and checks shared by the CPU and the CUDA tests of the compiled op (``torch.ops.ccnet_d2``)."""
import torch

from ccnet_d2.layers import compiled_op_built, criss_cross_attention_torch

ops = torch.ops.ccnet_d2 if compiled_op_built() else None
SHAPES = [(1, 1, 1, 1, 1), (1, 2, 3, 1, 7), (1, 2, 3, 7, 1), (2, 3, 4, 5, 3), (2, 4, 5, 13, 17), (3, 1, 2, 2, 2)]


def make_inputs(b, cq, c, h, w, dtype=torch.float64, device="cpu", seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return tuple((scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(device=device, dtype=dtype)
                 for shape in ((b, cq, h, w), (b, cq, h, w), (b, c, h, w)))


def output_and_grads(fn, inputs, grad_output):
    inputs = [t.detach().requires_grad_(True) for t in inputs]
    out = fn(*inputs)
    return (out,) + torch.autograd.grad(out, inputs, grad_output)


def assert_close_scaled(actual, expected, rtol):
    """Relative check against the reference's own scale: |a - e| <= rtol * (|e| + max|e|)."""
    expected = expected.to(torch.float64)
    actual = actual.to(torch.float64)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * max(expected.abs().max().item(), 1e-30))


def check_against_torch_backend(device, dtype, shape, rtol, seed=0, layout=None, op=None):
    """Forward and the three gradients of `op` (default: the compiled op) in `dtype` against the torch
    backend in float64."""
    q, k, v = make_inputs(*shape, dtype=dtype, device=device, seed=seed)
    grad_out = make_inputs(*shape, dtype=dtype, device=device, seed=seed + 100)[2]
    if layout is not None:
        q, k, v, grad_out = (layout(t) for t in (q, k, v, grad_out))
    got = output_and_grads(op or ops.criss_cross_attention, (q, k, v), grad_out)
    want = output_and_grads(criss_cross_attention_torch, [t.double() for t in (q, k, v)], grad_out.double())
    assert got[0].dtype == dtype and got[0].shape == v.shape
    for name, a, e in zip(("output", "grad_query", "grad_key", "grad_value"), got, want):
        assert a.shape == e.shape, name
        assert_close_scaled(a, e, rtol)
