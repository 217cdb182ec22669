"""The criss-cross attention operator: functional API, backend dispatch and the PyTorch reference.

For every pixel u the operator attends to the W pixels of u's row and the H-1 other pixels of u's
column (H+W-1 positions, u counted once). Energies are plain dot products between the query at u and
the keys on the cross (no 1/sqrt(C') scale, as in the paper and the official code); one softmax runs
over all H+W-1 positions; the output is the weighted sum of the values on the cross.
"""
import logging
from typing import Tuple

import torch
import torch.nn.functional as F

from . import compiled_op

__all__ = ["criss_cross_attention", "criss_cross_attention_torch", "criss_cross_attention_map",
           "pixel_attention_map", "check_attention_inputs", "BACKENDS"]

BACKENDS = ("auto", "torch", "cuda")
_REDUCED_PRECISION = (torch.float16, torch.bfloat16)
_logger = logging.getLogger(__name__)
_fallback_logged = False


def check_attention_inputs(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
    """Raise ValueError/TypeError naming the offending tensor when inputs break the contract."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"criss_cross_attention: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"criss_cross_attention: {name} must be 4-D [B, C, H, W], "
                             f"got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"criss_cross_attention: {name} must be a floating-point tensor "
                            f"(float32, float16, bfloat16 or float64), got {t.dtype}")
    if query.shape != key.shape:
        raise ValueError("criss_cross_attention: query and key must have the same shape [B, C', H, W], "
                         f"got query {tuple(query.shape)} and key {tuple(key.shape)}")
    b, _, h, w = query.shape
    if value.shape[0] != b or value.shape[2:] != query.shape[2:]:
        raise ValueError(f"criss_cross_attention: value must be [B={b}, C, H={h}, W={w}] like the query, "
                         f"got {tuple(value.shape)}")
    if not (query.dtype == key.dtype == value.dtype):
        raise TypeError("criss_cross_attention: query, key and value must share one dtype, got "
                        f"{query.dtype}, {key.dtype} and {value.dtype}")
    if not (query.device == key.device == value.device):
        raise ValueError("criss_cross_attention: query, key and value must be on one device, got "
                         f"{query.device}, {key.device} and {value.device}")


def _cross_energies(query: torch.Tensor, key: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Row energies [B, H, W, W] and column energies [B, H, W, H] with the pixel itself masked to -inf
    in the column, so that it is counted once (in its row)."""
    h = query.shape[2]
    row = torch.einsum("bchw,bchv->bhwv", query, key)
    col = torch.einsum("bchw,bcgw->bhwg", query, key)
    rows = torch.arange(h, device=query.device)
    self_mask = (rows.view(h, 1) == rows.view(1, h)).view(1, h, 1, h)  # the identity, without eye (ONNX's
    # EyeLike has no boolean kernel in ONNX Runtime)
    col = col.masked_fill(self_mask, float("-inf"))
    return row, col


def _cross_softmax(query: torch.Tensor, key: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """One softmax over the row and the column together; returns (row weights, column weights)."""
    w = query.shape[3]
    row, col = _cross_energies(query, key)
    weights = F.softmax(torch.cat([row, col], dim=3), dim=3)
    return weights[..., :w], weights[..., w:]


def criss_cross_attention_torch(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch criss-cross attention (any device). fp16/bf16 inputs are computed in float32
    (energies, softmax and aggregation) and the result is cast back to the input dtype."""
    check_attention_inputs(query, key, value)
    out_dtype = value.dtype
    if out_dtype in _REDUCED_PRECISION:
        query, key, value = query.float(), key.float(), value.float()
    row_w, col_w = _cross_softmax(query, key)
    out = torch.einsum("bhwv,bchv->bchw", row_w, value) + torch.einsum("bhwg,bcgw->bchw", col_w, value)
    return out.to(out_dtype)


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
    # auto
    if query.is_cuda:
        if compiled_op.compiled_op_has_cuda_kernels():
            return "cuda"
        if not _fallback_logged:
            _logger.warning("criss_cross_attention: the compiled CUDA op is not built (%s); using the "
                            "PyTorch backend", compiled_op.compiled_op_status())
            _fallback_logged = True
    return "torch"


def criss_cross_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                          backend: str = "auto") -> torch.Tensor:
    """Criss-cross attention: query/key [B, C', H, W], value [B, C, H, W] -> [B, C, H, W].

    Args:
        backend: "torch" (pure PyTorch, any device), "cuda" (compiled kernel, CUDA tensors only) or
            "auto" (the kernel for CUDA tensors when it is built, otherwise PyTorch).
    """
    check_attention_inputs(query, key, value)
    if _resolve_backend(backend, query) == "cuda":
        return compiled_op.criss_cross_attention_cuda(query, key, value)
    return criss_cross_attention_torch(query, key, value)


@torch.no_grad()
def criss_cross_attention_map(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """Attention weights of every pixel in the layout [B, H+W-1, H, W] (float32).

    Channel j < W is the weight of the row pixel (h, j); channel W + i is the weight of the i-th pixel
    of the column with the pixel itself left out, i.e. rows 0..H-1 except h, in increasing order.
    This is the layout of the original compiled CCNet op. Each [:, :, h, w] slice sums to 1.
    """
    check_attention_inputs(query, key, key)
    b, _, h, w = query.shape
    row_w, col_w = _cross_softmax(query.float(), key.float())  # [B,H,W,W], [B,H,W,H]
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
