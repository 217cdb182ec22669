"""The CCNet head as Panoptic FPN's semantic (stuff) branch.

Detectron2's ``SemSegFPNHead`` brings every FPN level it reads (p2-p5) to ``COMMON_STRIDE`` (4) with 3x3
convs and 2x upsampling and sums them into one ``CONVS_DIM``-channel map. ``CCNetSemSegFPNHead`` puts the
CCNet context block (``RCCAHeadBlock``: conv, R loops of one criss-cross attention, conv, concatenation
with its input, bottleneck, dropout) on that merged map, before the 1x1 classifier, so that each stuff
pixel gathers context from the whole image at the resolution the branch predicts at. Everything else
(scale heads, loss, upsampling) is the parent's, and ``MODEL.CCNET.RECURRENCE``, ``REDUCTION``, ``BACKEND``,
``ACTIVATION`` and ``DROPOUT`` mean what they mean in the other models. Select it with
``MODEL.SEM_SEG_HEAD.NAME: "CCNetSemSegFPNHead"``.
"""
from typing import Dict

from torch import nn

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead

from ...layers import RCCAHeadBlock

__all__ = ["CCNetSemSegFPNHead"]


@SEM_SEG_HEADS_REGISTRY.register()
class CCNetSemSegFPNHead(SemSegFPNHead):
    """``SemSegFPNHead`` with ``context`` (an ``RCCAHeadBlock`` of ``CONVS_DIM`` channels in and out) between
    the merged scale heads and the classifier."""

    @configurable
    def __init__(self, input_shape: Dict[str, ShapeSpec], *, context: nn.Module, **kwargs):
        super().__init__(input_shape, **kwargs)
        self.context = context

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        arguments = super().from_config(cfg, input_shape)
        arguments["context"] = RCCAHeadBlock(cfg, in_channels=cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM)
        return arguments

    def layers(self, features):
        merged = sum(head(features[name]) for name, head in zip(self.in_features, self.scale_heads))
        return self.predictor(self.context(merged))
