"""The fused criss-cross attention (Triton programs in ``fused_kernel.py``): block settings, launchers
and the ``torch.library`` registration of ``ccnet_d2::fused_criss_cross_attention``.

A row pass and a column pass, merged through the per-pixel log-sum-exp, which is all the backward
keeps besides the output; the backward recomputes the probabilities and adds the column pass's
gradients to the row pass's, without atomics. float32 products use ``tf32x3``, or TF32 when
``torch.backends.cuda.matmul.allow_tf32`` is set; float64 raises. Design, precision and memory:
docs/OPERATOR.md, "The fused kernel".

The programs run on CUDA tensors, or on CPU tensors under triton's interpreter when TRITON_INTERPRET=1
is set before triton is first imported (its bfloat16 products are corrected on load). Only a missing
triton module counts as absent; any other import error raises.
"""
import contextlib
import importlib

import torch

__all__ = ["fused_kernel_available", "fused_kernel_status", "fused_kernel_interpreted",
           "fused_criss_cross_attention", "program_variants", "SUPPORTED_DTYPES"]

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_OP = "ccnet_d2::fused_criss_cross_attention"

# Tile sizes, warps and pipeline stages of each program, by input element size in bytes. Checked to
# compile without register spills and within shared memory on sm_80, sm_89 and sm_90 by
# tests/layers/test_fused_kernel.py; the report is in docs/OPERATOR.md.
PROGRAM_SETTINGS = {
    "forward": {2: dict(BLOCK_M=64, BLOCK_N=64, BLOCK_CQ=32, BLOCK_C=128, num_warps=8, num_stages=2),
                4: dict(BLOCK_M=64, BLOCK_N=32, BLOCK_CQ=16, BLOCK_C=64, num_warps=8, num_stages=2)},
    "grad_query": {2: dict(BLOCK_M=64, BLOCK_N=64, BLOCK_CQ=32, BLOCK_C=32, BLOCK_OUT=64, num_warps=8, num_stages=2),
                   4: dict(BLOCK_M=64, BLOCK_N=32, BLOCK_CQ=16, BLOCK_C=16, BLOCK_OUT=64, num_warps=8, num_stages=2)},
    "grad_key": {2: dict(BLOCK_M=64, BLOCK_N=64, BLOCK_CQ=32, BLOCK_C=32, BLOCK_OUT=64, num_warps=8, num_stages=2),
                 4: dict(BLOCK_M=64, BLOCK_N=32, BLOCK_CQ=16, BLOCK_C=16, BLOCK_OUT=64, num_warps=8, num_stages=2)},
    "grad_value": {2: dict(BLOCK_M=64, BLOCK_N=64, BLOCK_CQ=32, BLOCK_C=32, BLOCK_OUT=128, num_warps=8, num_stages=2),
                   4: dict(BLOCK_M=64, BLOCK_N=32, BLOCK_CQ=16, BLOCK_C=16, BLOCK_OUT=64, num_warps=8, num_stages=2)},
    "channel_dot": {2: dict(BLOCK_P=128, BLOCK_C=32, num_warps=4, num_stages=2),
                    4: dict(BLOCK_P=128, BLOCK_C=32, num_warps=4, num_stages=2)},
}
# (EXCLUDE_SELF, MERGE or ACCUMULATE) of the row pass and the column pass
_PASSES = ((False, False), (True, True))

_kernels = None
_status = None


def _load():
    global _kernels, _status
    if _status is not None:
        return _kernels
    try:
        importlib.import_module("triton")
    except ModuleNotFoundError as e:
        if e.name != "triton":
            raise
        _status = "not available (the triton package is not installed)"
        return None
    from . import fused_kernel
    from triton.runtime.interpreter import InterpretedFunction
    _kernels = fused_kernel
    interpreted = isinstance(fused_kernel.cross_forward_kernel, InterpretedFunction)
    if interpreted:
        _widen_interpreted_bfloat16_products()
    _status = "Triton interpreter (TRITON_INTERPRET=1): runs on CPU tensors" if interpreted else \
        "Triton programs for CUDA tensors"
    return _kernels


def _widen_interpreted_bfloat16_products():
    """triton's interpreter multiplies bfloat16 tiles in tl.dot as their raw uint16 storage, which
    gives wrong numbers; widen them to float32 first (exact: a bfloat16 is the upper half of a
    float32), as the GPU's tensor cores do. Affects the interpreter only."""
    import numpy as np
    import triton.language as tl
    from triton.runtime import interpreter

    product = interpreter.InterpreterBuilder.create_dot
    if getattr(product, "widens_bfloat16", False):
        return

    def widen(handle):
        if handle.dtype.scalar != tl.bfloat16:
            return handle
        return interpreter.TensorHandle((handle.data.astype(np.uint32) << 16).view(np.float32), tl.float32)

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        return product(self, widen(a), widen(b), d, input_precision, max_num_imprecise_acc)

    create_dot.widens_bfloat16 = True
    interpreter.InterpreterBuilder.create_dot = create_dot


def fused_kernel_available() -> bool:
    """True when triton is importable (the fused programs and their op are then registered)."""
    return _load() is not None


def fused_kernel_interpreted() -> bool:
    """True when the programs run in triton's interpreter (TRITON_INTERPRET=1 at import): CPU tensors."""
    return fused_kernel_available() and _status.startswith("Triton interpreter")


def fused_kernel_status() -> str:
    """A one-line description of the fused kernel, for logs and errors."""
    _load()
    return _status


def _dot_precision(dtype):
    """tl.dot precision of float32 products (ignored for 16-bit inputs): PyTorch's TF32 switch decides."""
    return "tf32" if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32 else "tf32x3"


def _settings(program, dtype):
    """(constexpr block sizes, launch options) of `program` for inputs of `dtype`."""
    settings = dict(PROGRAM_SETTINGS[program][dtype.itemsize])
    options = {key: settings.pop(key) for key in ("num_warps", "num_stages")}
    return settings, options


def _directions(h, w):
    """(length, number of lines, line stride, position stride) of the row pass and the column pass."""
    return (w, h, w, 1), (h, w, 1, w)


def _cdiv(a, b):
    return -(-a // b)


def _forward(query, key, value):
    kernels = _load()
    b, cq, h, w = query.shape
    c = value.shape[1]
    out = torch.empty_like(value, memory_format=torch.contiguous_format)
    lse = torch.empty((b, h, w), dtype=torch.float32, device=value.device)
    if out.numel() == 0 or lse.numel() == 0:
        return out, lse.fill_(0.0)
    partial = out if out.dtype == torch.float32 else torch.empty(out.shape, dtype=torch.float32, device=out.device)
    row_lse = torch.empty_like(lse)
    blocks, options = _settings("forward", value.dtype)
    precision = _dot_precision(value.dtype)
    for (length, lines, line_stride, pos_stride), (exclude_self, merge) in zip(_directions(h, w), _PASSES):
        grid = (b * lines * _cdiv(length, blocks["BLOCK_M"]), _cdiv(c, blocks["BLOCK_C"]))
        kernels.cross_forward_kernel[grid](
            query, key, value, partial, row_lse, out, lse, h * w, length, lines, line_stride, pos_stride, cq, c,
            EXCLUDE_SELF=exclude_self, MERGE=merge, PRECISION=precision, **blocks, **options)
    return out, lse


def _backward(grad_out, query, key, value, out, lse):
    kernels = _load()
    b, cq, h, w = query.shape
    c = value.shape[1]
    grads = [torch.empty_like(t, memory_format=torch.contiguous_format) for t in (query, key, value)]
    if lse.numel() == 0:
        return tuple(g.zero_() for g in grads)
    grad_out = grad_out.contiguous()
    blocks, options = _settings("channel_dot", value.dtype)
    delta = torch.empty_like(lse)
    kernels.channel_dot_kernel[(_cdiv(h * w, blocks["BLOCK_P"]), b)](grad_out, out, delta, h * w, c,
                                                                     **blocks, **options)
    precision = _dot_precision(value.dtype)
    programs = ((kernels.cross_grad_query_kernel, "grad_query", "BLOCK_M", cq, {}),
                (kernels.cross_grad_key_value_kernel, "grad_key", "BLOCK_N", cq, {"GRAD_VALUE": False}),
                (kernels.cross_grad_key_value_kernel, "grad_value", "BLOCK_N", c, {"GRAD_VALUE": True}))
    for grad, (kernel, name, position_block, channels, flags) in zip(grads, programs):
        if grad.numel() == 0:
            continue
        partial = grad if grad.dtype == torch.float32 else torch.empty(grad.shape, dtype=torch.float32,
                                                                       device=grad.device)
        blocks, options = _settings(name, value.dtype)
        for (length, lines, line_stride, pos_stride), (exclude_self, accumulate) in zip(_directions(h, w), _PASSES):
            grid = (b * lines * _cdiv(length, blocks[position_block]), _cdiv(channels, blocks["BLOCK_OUT"]))
            kernel[grid](query, key, value, grad_out, lse, delta, partial, grad,
                         h * w, length, lines, line_stride, pos_stride, cq, c,
                         EXCLUDE_SELF=exclude_self, ACCUMULATE=accumulate, PRECISION=precision,
                         **flags, **blocks, **options)
    return tuple(grads)


def _check_runnable(query):
    if query.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"fused criss-cross attention: inputs must be float32, float16 or bfloat16, got "
                        f"{query.dtype}; use backend='torch' for float64")
    if not fused_kernel_available():
        raise RuntimeError(f"fused criss-cross attention: the fused kernel is {fused_kernel_status()}")
    if not (query.is_cuda or (query.device.type == "cpu" and fused_kernel_interpreted())):
        raise ValueError(f"fused criss-cross attention: needs CUDA tensors, got {query.device} "
                         f"(the fused kernel is {fused_kernel_status()}); use backend='torch' on this device")


def _check_size(*tensors):
    """The programs address elements with 32-bit offsets."""
    largest = max(t.numel() for t in tensors)
    if largest >= 2**31:
        raise ValueError(f"fused criss-cross attention: a tensor of {largest} elements is beyond the kernel's "
                         "32-bit offsets (2**31 elements); use backend='torch' or split the batch")


def _on_device_of(tensor):
    """Launch on the tensor's GPU (triton launches on the current device)."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext()


def _register_op():
    """``ccnet_d2::fused_criss_cross_attention(q, k, v) -> (out, lse)`` with its fake kernel and
    autograd formula (through ``ccnet_d2::fused_criss_cross_attention_backward``)."""

    @torch.library.custom_op(_OP, mutates_args=())
    def forward_op(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from .criss_cross import check_attention_inputs  # criss_cross imports this module
        check_attention_inputs(query, key, value)
        _check_runnable(query)
        _check_size(query, value)
        with _on_device_of(query):
            return _forward(query.contiguous(), key.contiguous(), value.contiguous())

    @forward_op.register_fake
    def _(query, key, value):
        b, _, h, w = query.shape
        return value.new_empty(value.shape), query.new_empty((b, h, w), dtype=torch.float32)

    @torch.library.custom_op(_OP + "_backward", mutates_args=())
    def backward_op(grad_out: torch.Tensor, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    out: torch.Tensor, lse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _check_runnable(query)
        with _on_device_of(query):
            return _backward(grad_out, query.contiguous(), key.contiguous(), value.contiguous(), out, lse)

    @backward_op.register_fake
    def _(grad_out, query, key, value, out, lse):
        return tuple(t.new_empty(t.shape) for t in (query, key, value))

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs, *output)
        ctx.mark_non_differentiable(output[1])

    def backward(ctx, grad_out, _grad_lse):
        if torch.is_grad_enabled():  # create_graph=True: the backward op itself has no derivative
            raise RuntimeError("criss_cross_attention: the fused kernel has no double backward (create_graph=True); "
                               "use backend='torch' for higher-order gradients")
        return backward_op(grad_out, *ctx.saved_tensors)

    forward_op.register_autograd(backward, setup_context=setup_context)


def fused_criss_cross_attention(query, key, value):
    """Criss-cross attention through the fused Triton programs (forward and backward); checked inputs
    of one dtype among SUPPORTED_DTYPES, on CUDA (or CPU under the interpreter)."""
    _check_runnable(query)
    return torch.ops.ccnet_d2.fused_criss_cross_attention(query, key, value)[0]


def program_variants():
    """Every (program name, kernel, signature, constexprs, options) the launchers can run: each
    program, pass and input dtype (and both float32 product precisions), for compiling ahead of time."""
    kernels = _load()
    pointer_types = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
    float32_pointers = ("partial_ptr", "partial_lse_ptr", "lse_ptr", "delta_ptr")
    for dtype, pointer in pointer_types.items():
        precisions = ("tf32", "tf32x3") if dtype == torch.float32 else ("tf32x3",)
        for name, kernel in (("forward", kernels.cross_forward_kernel), ("grad_query", kernels.cross_grad_query_kernel),
                             ("grad_key", kernels.cross_grad_key_value_kernel),
                             ("grad_value", kernels.cross_grad_key_value_kernel),
                             ("channel_dot", kernels.channel_dot_kernel)):
            blocks, options = _settings(name, dtype)
            flag_sets = [{}] if name == "channel_dot" else [
                {"EXCLUDE_SELF": exclude, ("MERGE" if name == "forward" else "ACCUMULATE"): combine,
                 "PRECISION": precision} for (exclude, combine) in _PASSES for precision in precisions]
            for flags in flag_sets:
                if name.startswith("grad_k") or name == "grad_value":
                    flags = dict(flags, GRAD_VALUE=name == "grad_value")
                constexprs = dict(blocks, **flags)
                signature = {arg: ("constexpr" if arg in constexprs else
                                   ("*fp32" if arg in float32_pointers else f"*{pointer}") if arg.endswith("_ptr")
                                   else "i32") for arg in kernel.arg_names}
                yield name, dtype, kernel, signature, constexprs, options


_load()
if _kernels is not None:
    _register_op()
