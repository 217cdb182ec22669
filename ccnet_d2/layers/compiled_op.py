"""Binding of the compiled criss-cross op (``ccnet_d2._C``, sources in ``csrc/`` beside this file) and
its torch.library registration.

The extension defines three operators in C++, with CPU kernels always and CUDA kernels when it was
compiled with a CUDA toolkit:

- ``torch.ops.ccnet_d2.criss_cross_attention(query, key, value) -> output``
- ``torch.ops.ccnet_d2.criss_cross_attention_backward(grad_output, query, key, value)
  -> (grad_query, grad_key, grad_value)``
- ``torch.ops.ccnet_d2.criss_cross_attention_weights(query, key) -> [B, H+W-1, H, W]`` (float32,
  float64 for float64 inputs; the layout of ``criss_cross_attention_map``)

This module adds their fake (meta) kernels, so that ``torch.compile``/``torch.export`` see one op
with known output shapes, and the autograd formula of the first one. The forward keeps no attention
map: the backward recomputes it from query and key (a C'-channel pass, cheap next to the C-channel
aggregations), which halves what the op holds between forward and backward.

Precision: the op runs in the dtype of its inputs (float32, float16, bfloat16, float64) with float32
accumulation and softmax (float64 for float64). Autocast does not touch it (no autocast kernel is
registered): under autocast its inputs come from convolutions, so they already share the autocast
dtype; inputs of different dtypes raise.

The extension is optional: it is absent on machines installed without it. Only a missing module
counts as absent; an extension that exists but fails to load raises, so a broken build is never
hidden behind the PyTorch fallback.
"""
import importlib

import torch

__all__ = ["compiled_op_built", "compiled_op_has_cuda_kernels", "compiled_op_status", "criss_cross_attention_cuda"]

_extension = None
_status = None
_has_cuda_kernels = False  # a plain bool, so that torch.compile can trace compiled_op_has_cuda_kernels()


def _load():
    global _extension, _status, _has_cuda_kernels
    if _status is not None:
        return _extension
    try:
        extension = importlib.import_module("ccnet_d2._C")
    except ModuleNotFoundError as e:
        if e.name != "ccnet_d2._C":
            raise
        _status = "not built (ccnet_d2._C is absent)"
        return None
    _register_python_kernels()
    _extension = extension
    _has_cuda_kernels = bool(extension.compiled_with_cuda())
    if _has_cuda_kernels:
        _status = f"built with CUDA {extension.cuda_version()} kernels"
    else:
        _status = "built with the CPU kernel only (no usable CUDA toolkit at build time)"
    return _extension


def _register_python_kernels():
    """Fake kernels for the three C++ operators and the autograd formula of the forward op."""

    @torch.library.register_fake("ccnet_d2::criss_cross_attention")
    def _(query, key, value):
        return value.new_empty(value.shape)

    @torch.library.register_fake("ccnet_d2::criss_cross_attention_backward")
    def _(grad_output, query, key, value):
        return query.new_empty(query.shape), key.new_empty(key.shape), value.new_empty(value.shape)

    @torch.library.register_fake("ccnet_d2::criss_cross_attention_weights")
    def _(query, key):
        b, _, h, w = query.shape
        dtype = torch.float64 if query.dtype == torch.float64 else torch.float32
        return query.new_empty((b, h + w - 1, h, w), dtype=dtype)

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def backward(ctx, grad_output):
        if torch.is_grad_enabled():  # create_graph=True: the backward op itself has no derivative
            raise RuntimeError("criss_cross_attention: the compiled op has no double backward (create_graph=True, "
                               "e.g. gradient penalties); use backend='torch' for higher-order gradients")
        query, key, value = ctx.saved_tensors
        return torch.ops.ccnet_d2.criss_cross_attention_backward(grad_output, query, key, value)

    torch.library.register_autograd("ccnet_d2::criss_cross_attention", backward, setup_context=setup_context)


def compiled_op_built() -> bool:
    """True when ``ccnet_d2._C`` is importable (its CPU kernel is then registered)."""
    return _load() is not None


def compiled_op_has_cuda_kernels() -> bool:
    """True when ``ccnet_d2._C`` was built with its CUDA kernels (what backends 'cuda' and 'auto' need)."""
    return _load() is not None and _has_cuda_kernels


def compiled_op_status() -> str:
    """A one-line description of the compiled op, for logs and the installer."""
    _load()
    return _status


def criss_cross_attention_cuda(query, key, value):
    """Criss-cross attention of CUDA tensors through the compiled kernels (forward and backward).
    The CPU kernel of the same op is reached through ``torch.ops.ccnet_d2.criss_cross_attention``."""
    if not compiled_op_has_cuda_kernels():
        raise RuntimeError(f"criss_cross_attention_cuda: the compiled op is {compiled_op_status()}")
    if not query.is_cuda:
        raise ValueError(f"criss_cross_attention_cuda: expected CUDA tensors, got {query.device}")
    return torch.ops.ccnet_d2.criss_cross_attention(query, key, value)


# Load at import, not on first use: the operators and their fake kernels must exist before
# torch.compile traces a model, and tracing cannot import modules.
_load()
