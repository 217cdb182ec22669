"""Checks of the fused Triton kernel, shared by the interpreter run (CPU tensors, in a subprocess with
TRITON_INTERPRET=1: ``fused_interpreter_run.py``) and the CUDA tests (``test_fused_kernel_cuda.py``).

``CASES`` maps a case name to a function of the device; each raises on failure.
"""
import functools

import pytest
import torch
import torch.nn.functional as F

from ccnet_d2.layers import criss_cross_attention, criss_cross_attention_torch
from ccnet_d2.layers.fused_op import fused_criss_cross_attention

from .compiled_op_checks import assert_close_scaled, check_against_torch_backend, make_inputs, output_and_grads
from .reference import cross_positions, loop_criss_cross

# (B, C', C, H, W): a single pixel, one row, one column, odd and non-square sizes, C' and C beyond one
# channel block (16/32 and 64/128), lines longer than one 64-position block in either direction
SHAPES = [(1, 1, 1, 1, 1), (1, 2, 3, 1, 7), (1, 2, 3, 7, 1), (2, 3, 5, 7, 9), (1, 33, 65, 5, 3),
          (1, 3, 130, 3, 4), (1, 3, 4, 66, 2), (1, 2, 3, 2, 67)]
REDUCED_SHAPES = [(1, 2, 3, 1, 7), (2, 3, 5, 7, 9), (1, 33, 65, 5, 3), (1, 3, 4, 66, 2)]
# tolerance relative to the reference's scale: float32 (tf32x3 products), float16 and bfloat16 rounding
RTOL = {torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


def matches_torch_backend(device, dtype, shape):
    check_against_torch_backend(device, dtype, shape, rtol=RTOL[dtype], op=fused_criss_cross_attention)


def matches_loop_reference(device):
    """Against the slow float64 loop written from the definition (independent of the torch backend)."""
    q, k, v = make_inputs(2, 3, 4, 5, 6, dtype=torch.float32, seed=3)
    expected, _ = loop_criss_cross(q, k, v)
    got = fused_criss_cross_attention(*(t.to(device) for t in (q, k, v))).cpu()
    assert_close_scaled(got, expected, RTOL[torch.float32])


def counts_each_pixel_once(device):
    """Zero queries: every energy is 0, so the output is the plain mean of the H+W-1 values on the
    cross, the pixel itself counted once."""
    h, w = 4, 5
    _, k, v = make_inputs(1, 2, 3, h, w, dtype=torch.float32, seed=4)
    out = fused_criss_cross_attention(torch.zeros_like(k).to(device), k.to(device), v.to(device)).cpu()
    for y in range(h):
        for x in range(w):
            cross = torch.stack([v[0, :, i, j] for i, j in cross_positions(h, w, y, x)])
            torch.testing.assert_close(out[0, :, y, x], cross.mean(0), rtol=1e-5, atol=1e-5)


def self_counted_twice_is_detected(device):
    """Negative control: a cross that counts the pixel twice (row and column) differs from the kernel's
    result by far more than the tolerance, so the comparisons above would catch that mistake."""
    q, k, v = make_inputs(1, 3, 4, 5, 6, dtype=torch.float32, seed=6)
    row = torch.einsum("bchw,bchv->bhwv", q, k)
    col = torch.einsum("bchw,bcgw->bhwg", q, k)
    weights = F.softmax(torch.cat([row, col], dim=3), dim=3)
    wrong = torch.einsum("bhwv,bchv->bchw", weights[..., :6], v) + torch.einsum("bhwg,bcgw->bchw", weights[..., 6:], v)
    got = fused_criss_cross_attention(q.to(device), k.to(device), v.to(device)).cpu()
    assert_close_scaled(got, criss_cross_attention_torch(q, k, v), RTOL[torch.float32])
    with pytest.raises(AssertionError):
        assert_close_scaled(got, wrong, RTOL[torch.float32])


def backward_is_deterministic(device, dtype, shape=(2, 3, 70, 5, 7)):
    """Two forward+backward runs are bit-identical (the default shape has two channel blocks)."""
    q, k, v = make_inputs(*shape, dtype=dtype, device=device, seed=8)
    grad_out = make_inputs(*shape, dtype=dtype, device=device, seed=9)[2]
    first = output_and_grads(fused_criss_cross_attention, (q, k, v), grad_out)
    second = output_and_grads(fused_criss_cross_attention, (q, k, v), grad_out)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def large_half_energies_stay_finite(device):
    """Energies beyond float16's range (65504): the softmax runs in float32."""
    q = torch.full((1, 4, 3, 3), 200.0, dtype=torch.float16, device=device)
    v = torch.randn(1, 2, 3, 3, device=device).half()
    out = fused_criss_cross_attention(q, q.clone(), v)
    assert torch.isfinite(out).all()
    assert_close_scaled(out.cpu(), criss_cross_attention_torch(q.cpu().double(), q.cpu().double(), v.cpu().double()),
                        RTOL[torch.float16])


def non_contiguous_inputs(device, layout):
    make = {"channels_last": lambda t: t.contiguous(memory_format=torch.channels_last),
            "transposed": lambda t: t.transpose(2, 3).contiguous().transpose(2, 3)}[layout]
    check_against_torch_backend(device, torch.float32, (2, 3, 4, 6, 5), rtol=RTOL[torch.float32], layout=make,
                                op=fused_criss_cross_attention)


def empty_batch_and_channels(device):
    for shape in ((0, 2, 3, 4, 5), (2, 2, 0, 4, 5), (2, 0, 3, 4, 5)):
        q, k, v = make_inputs(*shape, dtype=torch.float32, device=device)
        got = output_and_grads(fused_criss_cross_attention, (q, k, v), torch.ones_like(v))
        want = output_and_grads(criss_cross_attention_torch, (q, k, v), torch.ones_like(v))
        for a, e in zip(got, want):
            assert a.shape == e.shape
            torch.testing.assert_close(a, e, rtol=1e-6, atol=1e-6)


def bad_inputs_are_refused(device):
    """float64, and through the op itself the shared input checks (mixed dtypes, shapes)."""
    q, k, v = make_inputs(1, 2, 3, 4, 5, device=device)
    with pytest.raises(TypeError, match="float32, float16 or bfloat16, got torch.float64; use backend='torch'"):
        criss_cross_attention(q, k, v, backend="fused")
    with pytest.raises(TypeError, match="must share one dtype"):
        torch.ops.ccnet_d2.fused_criss_cross_attention(q.float(), k.float(), v.half())
    with pytest.raises(ValueError, match="query and key must have the same shape"):
        torch.ops.ccnet_d2.fused_criss_cross_attention(q.float(), k[:, :1].float(), v.float())
    huge = torch.zeros((), device=device).expand(1, 2**21, 32, 32)  # 2**31 elements, no memory
    with pytest.raises(ValueError, match="beyond the kernel's 32-bit offsets"):
        torch.ops.ccnet_d2.fused_criss_cross_attention(huge[:, :1], huge[:, :1], huge)


def autocast_leaves_the_op_alone(device):
    """Under autocast the op runs in the dtype of its inputs: float32 stays float32, bfloat16 stays bfloat16."""
    q, k, v = make_inputs(1, 2, 3, 4, 5, dtype=torch.float32, device=device)
    with torch.autocast(device_type=device, dtype=torch.bfloat16):
        out32 = fused_criss_cross_attention(q, k, v)
        out16 = fused_criss_cross_attention(*(t.bfloat16() for t in (q, k, v)))
    assert out32.dtype == torch.float32 and out16.dtype == torch.bfloat16
    torch.testing.assert_close(out32, fused_criss_cross_attention(q, k, v), rtol=0, atol=0)


def backend_name_reaches_the_kernel(device):
    q, k, v = make_inputs(1, 2, 3, 4, 5, dtype=torch.float32, device=device)
    torch.testing.assert_close(criss_cross_attention(q, k, v, backend="fused"), fused_criss_cross_attention(q, k, v),
                               rtol=0, atol=0)


def double_backward_raises(device):
    q, k, v = (t.requires_grad_(True) for t in make_inputs(1, 2, 3, 4, 5, dtype=torch.float32, device=device))
    out = fused_criss_cross_attention(q, k, v)
    with pytest.raises(RuntimeError, match="no double backward .* use backend='torch'"):
        torch.autograd.grad(out.square().sum(), q, create_graph=True)


def opcheck_registration(device):
    """Schema, fake kernel, autograd registration and AOT dispatch, as torch.library checks them."""
    q, k, v = (t.requires_grad_(True) for t in make_inputs(1, 2, 3, 4, 5, dtype=torch.float32, device=device))
    torch.library.opcheck(torch.ops.ccnet_d2.fused_criss_cross_attention.default, (q, k, v))
    out, lse = torch.ops.ccnet_d2.fused_criss_cross_attention(q.detach(), k.detach(), v.detach())
    torch.library.opcheck(torch.ops.ccnet_d2.fused_criss_cross_attention_backward.default,
                          (torch.randn_like(out), q.detach(), k.detach(), v.detach(), out, lse))


def torch_compile_sees_one_op(device):
    """fullgraph=True fails on a graph break; forward and gradients must equal eager."""
    def attend(q, k, v):
        return criss_cross_attention(q * 2.0, k, v, backend="fused").sum(dim=1)

    q, k, v = make_inputs(1, 2, 3, 4, 5, dtype=torch.float32, device=device)
    compiled = torch.compile(attend, fullgraph=True, backend="aot_eager")
    grad_out = torch.randn(1, 4, 5, device=device)
    for a, b in zip(output_and_grads(compiled, (q, k, v), grad_out), output_and_grads(attend, (q, k, v), grad_out)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def torch_export_sees_one_op(device):
    """torch.export records exactly one fused op node, and the exported program computes what eager does."""
    class Attend(torch.nn.Module):
        def forward(self, q, k, v):
            return criss_cross_attention(q, k, v, backend="fused") + 1.0

    inputs = make_inputs(1, 2, 3, 4, 5, dtype=torch.float32, device=device)
    exported = torch.export.export(Attend(), inputs)
    calls = [n for n in exported.graph.nodes if n.op == "call_function" and "fused_criss_cross_attention" in str(n.target)]
    assert len(calls) == 1, exported.graph
    torch.testing.assert_close(exported.module()(*inputs), Attend()(*inputs), rtol=0, atol=0)


def export_decomposes_to_the_reference(device):
    """The export table's entry for the fused op: the decomposed program holds no custom op and gives the
    op's output and log-sum-exp (negative control: the op is in the graph before decomposition)."""
    from ccnet_d2.export import decompositions

    class Attend(torch.nn.Module):
        def forward(self, q, k, v):
            return torch.ops.ccnet_d2.fused_criss_cross_attention(q, k, v)

    inputs = make_inputs(2, 3, 4, 5, 7, dtype=torch.float32, device=device)
    program = torch.export.export(Attend(), inputs)
    assert any("fused_criss_cross_attention" in str(n.target) for n in program.graph.nodes)
    program = decompositions.decompose_custom_ops(program)
    assert not any("ccnet_d2" in str(n.target) for n in program.graph.nodes), program.graph
    for got, expected in zip(program.module()(*inputs), Attend()(*inputs)):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def _cases():
    cases = {}
    for dtype, shapes in ((torch.float32, SHAPES), (torch.float16, REDUCED_SHAPES), (torch.bfloat16, REDUCED_SHAPES)):
        for shape in shapes:
            name = f"matches_torch_backend[{str(dtype)[6:]}-{'x'.join(map(str, shape))}]"
            cases[name] = functools.partial(matches_torch_backend, dtype=dtype, shape=shape)
    for dtype in (torch.float32, torch.bfloat16):
        cases[f"backward_is_deterministic[{str(dtype)[6:]}]"] = functools.partial(backward_is_deterministic,
                                                                                  dtype=dtype)
    for layout in ("channels_last", "transposed"):
        cases[f"non_contiguous_inputs[{layout}]"] = functools.partial(non_contiguous_inputs, layout=layout)
    for check in (matches_loop_reference, counts_each_pixel_once, self_counted_twice_is_detected,
                  large_half_energies_stay_finite, empty_batch_and_channels, bad_inputs_are_refused,
                  autocast_leaves_the_op_alone, backend_name_reaches_the_kernel, double_backward_raises,
                  opcheck_registration, torch_compile_sees_one_op, torch_export_sees_one_op,
                  export_decomposes_to_the_reference):
        cases[check.__name__] = check
    return cases


CASES = _cases()
