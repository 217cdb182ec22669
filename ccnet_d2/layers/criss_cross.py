"""The criss-cross attention operator: functional API, backend dispatch and the PyTorch reference.

For every pixel u the operator attends to the W pixels of u's row and the H-1 other pixels of u's
column (H+W-1 positions, u counted once). Energies are plain dot products between the query at u and
the keys on the cross (no 1/sqrt(C') scale, as in the paper and the official code); one softmax runs
over all H+W-1 positions; the output is the weighted sum of the values on the cross.
"""
import logging
from typing import List

import torch
import torch.nn.functional as F

from . import compiled_op, fused_op

__all__ = ["criss_cross_attention", "criss_cross_attention_torch", "criss_cross_attention_map",
           "pixel_attention_map", "check_attention_inputs", "line_attention", "criss_cross_log_sum_exp",
           "BACKENDS", "GPU_VERIFIED_KERNELS"]

BACKENDS = ("auto", "torch", "cuda", "fused")
# The kernels "auto" may choose for CUDA tensors, in order of preference: only those whose CUDA tests
# have passed on real hardware and whose forward+backward beat backend "torch" there, as measured by
# tools/benchmark_attention.py. backend -> (GPU, date, fwd+bwd speed-up over "torch" at [2,512,97,97]).
# No kernel has run on a GPU yet, so "auto" uses the torch backend on CUDA.
GPU_VERIFIED_KERNELS = {}
_KERNEL_AVAILABLE = {"cuda": compiled_op.compiled_op_has_cuda_kernels, "fused": fused_op.fused_kernel_available}
_REDUCED_PRECISION = (torch.float16, torch.bfloat16)
_logger = logging.getLogger(__name__)
_fallback_logged = False


def check_attention_inputs(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                           spatial: str = "HW", op: str = "criss_cross_attention") -> None:
    """Raise ValueError/TypeError naming the offending tensor when inputs break the contract.

    ``spatial`` names the spatial axes after [B, C] ("HW" for images, "THW" for clips); ``op`` is the
    operator named in the messages."""
    rank = 2 + len(spatial)
    layout = ", ".join(["B", "C", *spatial])
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != rank:
            raise ValueError(f"{op}: {name} must be {rank}-D [{layout}], got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{op}: {name} must be a floating-point tensor "
                            f"(float32, float16, bfloat16 or float64), got {t.dtype}")
    if any(size < 1 for size in query.shape[2:]):  # the compiled op refuses them too
        axes = ", ".join(spatial[:-1]) + " and " + spatial[-1]
        raise ValueError(f"{op}: {axes} must be >= 1 (each position attends to its lines), "
                         f"got query of shape {tuple(query.shape)}")
    if query.shape != key.shape:
        qk_layout = ", ".join(["B", "C'", *spatial])
        raise ValueError(f"{op}: query and key must have the same shape [{qk_layout}], "
                         f"got query {tuple(query.shape)} and key {tuple(key.shape)}")
    b = query.shape[0]
    if value.shape[0] != b or value.shape[2:] != query.shape[2:]:
        sizes = ", ".join(f"{axis}={size}" for axis, size in zip(spatial, query.shape[2:]))
        raise ValueError(f"{op}: value must be [B={b}, C, {sizes}] like the query, got {tuple(value.shape)}")
    if not (query.dtype == key.dtype == value.dtype):
        raise TypeError(f"{op}: query, key and value must share one dtype, got "
                        f"{query.dtype}, {key.dtype} and {value.dtype}")
    if not (query.device == key.device == value.device):
        raise ValueError(f"{op}: query, key and value must be on one device, got "
                         f"{query.device}, {key.device} and {value.device}")


def _line_energies(query: torch.Tensor, key: torch.Tensor, axis: int, keep_self: bool) -> torch.Tensor:
    """Energies [B, *S, L] between every position and the L positions of its line along tensor dim
    ``axis``; the position itself is masked to -inf unless ``keep_self``."""
    # Non-negative dims throughout: the ONNX tracer writes negative ones into Transpose perms, which ONNX refuses.
    last = query.dim() - 1
    energies = torch.einsum("bc...l,bc...m->b...lm", query.movedim(axis, last), key.movedim(axis, last))
    if not keep_self:
        positions = torch.arange(query.shape[axis], device=query.device)
        # The identity as a comparison, not torch.eye: ONNX's EyeLike has no boolean kernel in ONNX Runtime.
        self_mask = positions.view(-1, 1) == positions.view(1, -1)
        energies = energies.masked_fill(self_mask, float("-inf"))
    return energies.movedim(last - 1, axis - 1)


def _line_axes(tensor: torch.Tensor) -> List[int]:
    """The spatial dims of a [B, C, *S] tensor in the order of the lines: the last (the row, which keeps
    the position itself, so that it is counted once) first, then the column, then time."""
    return list(range(tensor.dim() - 1, 1, -1))


def _cross_energies(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """Energies [B, *S, L1 + L2 + ...] of every position of [B, C', *S] maps on all its lines, in the
    order of ``_line_axes``: the row with the position itself, the others without it."""
    axes = _line_axes(query)
    return torch.cat([_line_energies(query, key, axis, keep_self=axis == axes[0]) for axis in axes], dim=-1)


def _line_softmax(query: torch.Tensor, key: torch.Tensor) -> List[torch.Tensor]:
    """One softmax over the lines through every position: the weights [B, *S, L] of each line, in the
    order of ``_cross_energies``."""
    weights = F.softmax(_cross_energies(query, key), dim=-1)
    return list(weights.split([query.shape[axis] for axis in _line_axes(query)], dim=-1))


def criss_cross_log_sum_exp(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """The log-sum-exp [B, *S] (float32) of every position's energies over its cross: the softmax's
    normaliser, which the fused kernel keeps for its backward."""
    return torch.logsumexp(_cross_energies(query.float(), key.float()), dim=-1)


def line_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Criss-cross attention over every spatial axis of [B, C, *S] tensors (inputs already checked): the
    PyTorch computation behind the 2D and 3D operators. fp16/bf16 inputs are computed in float32
    (energies, softmax and aggregation) and the result is cast back to the input dtype."""
    out_dtype = value.dtype
    if out_dtype in _REDUCED_PRECISION:
        query, key, value = query.float(), key.float(), value.float()
    last = value.dim() - 1  # non-negative dims, as in _line_energies
    out = 0
    for axis, weights in zip(_line_axes(value), _line_softmax(query, key)):
        line = torch.einsum("b...lm,bc...m->bc...l", weights.movedim(axis - 1, last - 1), value.movedim(axis, last))
        out = out + line.movedim(last, axis)
    return out.to(out_dtype)


def criss_cross_attention_torch(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch criss-cross attention (any device). fp16/bf16 inputs are computed in float32
    (energies, softmax and aggregation) and the result is cast back to the input dtype."""
    check_attention_inputs(query, key, value)
    return line_attention(query, key, value)


def _resolve_backend(backend: str, query: torch.Tensor) -> str:
    global _fallback_logged
    if backend not in BACKENDS:
        raise ValueError(f"criss_cross_attention: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    if backend == "cuda":
        if not query.is_cuda:
            raise ValueError(f"criss_cross_attention: backend='cuda' needs CUDA tensors, got {query.device}; "
                             "use backend='torch' or 'auto' on this device")
        if not compiled_op.compiled_op_has_cuda_kernels():
            raise RuntimeError("criss_cross_attention: backend='cuda' was requested but the compiled op "
                               f"has no CUDA kernels ({compiled_op.compiled_op_status()}); reinstall with "
                               "CUDA_HOME set (docs/INSTALL.md, 'The compiled operator')")
        return "cuda"
    if backend == "fused":
        return "fused"  # fused_op checks the device, dtype and triton
    # auto
    if query.is_cuda:
        for kernel in GPU_VERIFIED_KERNELS:
            if _KERNEL_AVAILABLE[kernel]():
                return kernel
        if not _fallback_logged:
            _logger.warning("criss_cross_attention: backend 'auto' uses the PyTorch backend on CUDA: %s",
                            "no kernel has passed its GPU tests and beaten it on real hardware yet"
                            if not GPU_VERIFIED_KERNELS else
                            f"none of the verified kernels {tuple(GPU_VERIFIED_KERNELS)} is available "
                            f"(compiled op: {compiled_op.compiled_op_status()}; "
                            f"fused kernel: {fused_op.fused_kernel_status()})")
            _fallback_logged = True
    return "torch"


def criss_cross_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                          backend: str = "auto") -> torch.Tensor:
    """Criss-cross attention: query/key [B, C', H, W], value [B, C, H, W] -> [B, C, H, W].

    Args:
        backend: "torch" (pure PyTorch, any device), "cuda" (compiled kernel, CUDA tensors only),
            "fused" (Triton kernel; float32/16-bit CUDA tensors) or "auto" (a kernel of
            GPU_VERIFIED_KERNELS for CUDA tensors when one is available, otherwise PyTorch).
    """
    check_attention_inputs(query, key, value)
    resolved = _resolve_backend(backend, query)
    if resolved == "cuda":
        return compiled_op.criss_cross_attention_cuda(query, key, value)
    if resolved == "fused":
        return fused_op.fused_criss_cross_attention(query, key, value)
    return line_attention(query, key, value)  # the inputs are checked above


@torch.no_grad()
def criss_cross_attention_map(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """Attention weights of every pixel in the layout [B, H+W-1, H, W] (float32).

    Channel j < W is the weight of the row pixel (h, j); channel W + i is the weight of the i-th pixel
    of the column with the pixel itself left out, i.e. rows 0..H-1 except h, in increasing order.
    This is the layout of the original compiled CCNet op. Each [:, :, h, w] slice sums to 1.
    """
    check_attention_inputs(query, key, key)
    b, _, h, w = query.shape
    row_w, col_w = _line_softmax(query.float(), key.float())  # [B,H,W,W], [B,H,W,H]
    # Column entry i of pixel (h, w) is row i if i < h else i + 1: the pixel itself is skipped.
    i = torch.arange(h - 1, device=query.device).view(h - 1, 1)
    rows = i + (i >= torch.arange(h, device=query.device).view(1, h)).long()  # [H-1, H]
    index = rows.view(1, h - 1, h, 1).expand(b, h - 1, h, w)
    col_w = torch.gather(col_w.permute(0, 3, 1, 2), 1, index)
    return torch.cat([row_w.permute(0, 3, 1, 2), col_w], dim=1)


def pixel_attention_map(attention: torch.Tensor, y: int, x: int) -> torch.Tensor:
    """Scatter one pixel's weights from a [B, H+W-1, H, W] map onto the image: returns [B, H, W],
    zero off the pixel's row and column, summing to 1."""
    if attention.dim() != 4:
        raise ValueError(f"pixel_attention_map: expected [B, H+W-1, H, W], got {tuple(attention.shape)}")
    b, n, h, w = attention.shape
    if n != h + w - 1:
        raise ValueError(f"pixel_attention_map: channel count must be H+W-1={h + w - 1} for H={h}, W={w}, got {n}")
    if not (0 <= y < h and 0 <= x < w):
        raise ValueError(f"pixel_attention_map: pixel ({y}, {x}) is outside the {h}x{w} map")
    weights = attention[:, :, y, x]
    image = attention.new_zeros(b, h, w)
    image[:, y, :] = weights[:, :w]
    other_rows = [i for i in range(h) if i != y]
    image[:, other_rows, x] = weights[:, w:]
    return image
