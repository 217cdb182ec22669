"""What a pixel attends to after one and two criss-cross loops (the paper's Figure 6).

One loop gives each pixel weights on its own row and column only. In RCCA the second loop attends
over the first loop's outputs, each of which already mixes its own cross, so pixel u's reach over
the *input* of the block is the composition of the two maps:

    reach_u(p) = sum over i on u's cross of A2[u <- i] * A1[i <- p]

(the value and residual paths are left out: this is where the attention sends each pixel, as drawn
in the paper). ``AttentionRecorder`` captures the per-loop maps of a ``CrissCrossAttention`` module
while a model runs.
"""
from typing import List

import torch
from torch import nn

from .criss_cross import criss_cross_attention_map, pixel_attention_map
from .modules import CrissCrossAttention

__all__ = ["compose_pixel_attention", "AttentionRecorder"]


def _check_maps(att1: torch.Tensor, att2: torch.Tensor) -> None:
    if att1.dim() != 4 or att1.shape != att2.shape:
        raise ValueError("compose_pixel_attention: att1 and att2 must be two [B, H+W-1, H, W] maps of one "
                         f"shape, got {tuple(att1.shape)} and {tuple(att2.shape)}")


def compose_pixel_attention(att1: torch.Tensor, att2: torch.Tensor, y: int, x: int) -> torch.Tensor:
    """Full-image attention of pixel (y, x) after two loops: [B, H, W], summing to 1.

    Args:
        att1, att2: the first and second loop's maps, [B, H+W-1, H, W] in the layout of
            ``criss_cross_attention_map`` (row entries first, then the column without the pixel).
        y, x: the pixel, in feature-map coordinates.
    """
    _check_maps(att1, att2)
    second = pixel_attention_map(att2, y, x)  # [B, H, W]: weights of (y, x) on its cross
    _, _, h, w = att1.shape
    reach = att1.new_zeros(second.shape)
    cross = [(y, c) for c in range(w)] + [(r, x) for r in range(h) if r != y]
    for r, c in cross:
        reach += second[:, r, c].view(-1, 1, 1) * pixel_attention_map(att1, r, c)
    return reach


class AttentionRecorder:
    """Context manager recording, for every call of a ``CrissCrossAttention`` module (one per RCCA
    loop), its attention map [B, H+W-1, H, W] computed from the call's input with the module's own
    query/key convs. ``maps[0]`` is loop 1, ``maps[1]`` loop 2, and so on."""

    def __init__(self, module: nn.Module):
        if not isinstance(module, CrissCrossAttention):
            raise TypeError(f"AttentionRecorder needs a CrissCrossAttention module, got {type(module).__name__}")
        self.module = module
        self.maps: List[torch.Tensor] = []
        self._handle = None

    def _record(self, module: CrissCrossAttention, inputs, output) -> None:
        (x,) = inputs
        with torch.no_grad():
            self.maps.append(criss_cross_attention_map(module.query_conv(x), module.key_conv(x)))

    def __enter__(self) -> "AttentionRecorder":
        self.maps.clear()
        self._handle = self.module.register_forward_hook(self._record)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()
        self._handle = None
