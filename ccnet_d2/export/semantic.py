"""The CCNet segmentor as one exportable function: a raw image batch in, logits and labels out."""
from typing import Tuple

import torch
from torch import nn

from ..modeling.meta_arch import CCNetSegmentor

__all__ = ["SemanticSegmentationGraph"]


class SemanticSegmentationGraph(nn.Module):
    """Whole-image inference of a ``CCNetSegmentor`` on tensors only, for ``torch.export`` and ONNX.

    Input: ``image`` [N, 3, H, W] float32, values 0..255 in the model's ``INPUT.FORMAT`` (BGR or RGB),
    at the size to segment (the caller does any resizing, as DefaultPredictor's ResizeShortestEdge does).
    Normalisation, padding to the feature stride and the final crop are inside the graph.
    Outputs: ``logits`` [N, K, H, W] float32 and ``labels`` [N, H, W] int64 (their argmax), equal to what
    ``CCNetSegmentor`` gives for an image of that size.
    """

    def __init__(self, segmentor: CCNetSegmentor):
        super().__init__()
        if not isinstance(segmentor, CCNetSegmentor):
            raise TypeError(f"SemanticSegmentationGraph: expected a CCNetSegmentor (MODEL.META_ARCHITECTURE "
                            f"'CCNetSegmentor'), got {type(segmentor).__name__}")
        if segmentor.mode != "whole" or segmentor.scales != (1.0,) or segmentor.flip:
            raise ValueError(f"SemanticSegmentationGraph: only whole-image inference without test-time "
                             f"augmentation is exported; the config asks for {segmentor.inference_mode}. Set "
                             "TEST.SEM_SEG.MODE whole and TEST.AUG.ENABLED False")
        self.segmentor = segmentor.eval()

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        segmentor = self.segmentor
        normalized = (image - segmentor.pixel_mean) / segmentor.pixel_std
        logits = segmentor.network_logits(normalized)
        return logits, logits.argmax(dim=1)
