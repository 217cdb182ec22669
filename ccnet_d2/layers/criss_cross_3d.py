"""Criss-cross attention over video clips (the TPAMI version of CCNet): every voxel of a [B, C, T, H, W]
clip attends to the voxels on its row (W, the voxel itself included), its column (H-1, without it) and
its time line (T-1, the same pixel in the other frames, without it): T+H+W-2 positions, the voxel
counted once. Plain dot-product energies and one softmax over all of them, as in 2D; with T = 1 the
time line is empty and the operator is the 2D one.

Only the PyTorch computation exists (shared with the 2D operator): the compiled kernel is 2D, and the
3D model runs attention on stride-8 features of a few frames, where PyTorch is not the bottleneck.
"""
import torch

from .criss_cross import check_attention_inputs, line_attention

__all__ = ["criss_cross_attention_3d", "BACKENDS_3D"]

BACKENDS_3D = ("auto", "torch")


def criss_cross_attention_3d(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             backend: str = "auto") -> torch.Tensor:
    """3D criss-cross attention: query/key [B, C', T, H, W], value [B, C, T, H, W] -> [B, C, T, H, W].

    The row line keeps the voxel itself; its column and time lines leave it out. No attention map is
    returned. fp16/bf16 inputs are computed in float32 and cast back, as in 2D.

    Args:
        backend: "auto" or "torch" (both the PyTorch computation; there is no compiled 3D kernel).
    """
    if backend not in BACKENDS_3D:
        raise ValueError(f"criss_cross_attention_3d: backend must be one of {BACKENDS_3D} (there is no compiled "
                         f"3D kernel), got {backend!r}")
    check_attention_inputs(query, key, value, spatial="THW", op="criss_cross_attention_3d")
    return line_attention(query, key, value)
