"""Dilated ResNet for CCNet: Detectron2's ResNet, built by ``build_resnet_backbone`` and then
converted in place to output stride 8 (or 16), with the optional deep stem.

CCNet's backbone (official code, ``networks/ccnet.py``): ResNet-50/101 whose layer3 (res4) and layer4
(res5) keep stride 1 with dilations 2 and 4, every block of a stage using the stage's dilation
(times a multi-grid factor in res5), and a "deep" stem of three 3x3 convs (64, 64, 128 channels) that
the MIT CSAIL ImageNet weights were trained with. Converting a built ResNet instead of re-writing
the builder keeps Detectron2's block classes, weight names and freezing.
"""
from typing import Sequence

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone.resnet import BottleneckBlock, ResNet, build_resnet_backbone
from detectron2.projects.deeplab.resnet import DeepLabStem

__all__ = ["build_dilated_resnet_backbone", "dilate_stage"]

STEM_TYPES = ("basic", "deeplab")
# (RES4_DILATION, RES5_DILATION) -> output stride of res5.
OUTPUT_STRIDES = {(2, 4): 8, (1, 2): 16, (1, 1): 32}


def dilate_stage(resnet: ResNet, stage_name: str, dilations: Sequence[int]) -> None:
    """Make ``stage_name`` of a built ResNet keep its input resolution: its first block's stride
    becomes 1 (in whichever conv carried it, and in the shortcut) and block i's 3x3 conv gets
    dilation ``dilations[i]`` (padding = dilation, so sizes are kept). Strides reported by
    ``resnet.output_shape()`` are updated for this and every later stage."""
    stage = getattr(resnet, stage_name)
    blocks = list(stage.children())
    if len(dilations) != len(blocks):
        raise ValueError(f"dilate_stage: {stage_name} has {len(blocks)} blocks, got {len(dilations)} dilations")
    for block, dilation in zip(blocks, dilations):
        if not isinstance(block, BottleneckBlock):
            raise ValueError(f"dilate_stage: only BottleneckBlock stages can be dilated (ResNet-50/101/152), "
                             f"{stage_name} holds {type(block).__name__}")
        for conv in (block.conv1, block.conv2, block.shortcut):
            if conv is not None:
                conv.stride = (1, 1)
        block.conv2.dilation = (dilation, dilation)
        block.conv2.padding = (dilation, dilation)
        block.stride = 1
    # ResNet caches cumulative strides when it is built; recompute them from the stem onwards.
    stride = resnet.stem.stride
    for name, stage_module in zip(resnet.stage_names, resnet.stages):
        for block in stage_module.children():
            stride *= block.stride
        resnet._out_feature_strides[name] = stride


@BACKBONE_REGISTRY.register()
def build_dilated_resnet_backbone(cfg, input_shape: ShapeSpec) -> ResNet:
    """Detectron2's ResNet with dilated res4/res5 (output stride 8 or 16) and an optional deep stem.

    Keys: MODEL.RESNETS.{DEPTH, STEM_TYPE ("basic" = 7x7 conv; "deeplab" = three 3x3 convs to
    STEM_OUT_CHANNELS/2, STEM_OUT_CHANNELS/2, STEM_OUT_CHANNELS), RES4_DILATION (1 or 2),
    RES5_DILATION (1, 2 or 4), RES5_MULTI_GRID (per-block factors on RES5_DILATION), STRIDE_IN_1X1,
    NORM, OUT_FEATURES} and MODEL.BACKBONE.FREEZE_AT, as for Detectron2's ResNet.
    OS8 = RES4_DILATION 2 + RES5_DILATION 4; OS16 = RES4_DILATION 1 + RES5_DILATION 2.
    """
    res = cfg.MODEL.RESNETS
    stem_type, res4_dilation, res5_dilation = res.STEM_TYPE, res.RES4_DILATION, res.RES5_DILATION
    multi_grid = list(res.RES5_MULTI_GRID)
    if stem_type not in STEM_TYPES:
        raise ValueError(f"MODEL.RESNETS.STEM_TYPE must be one of {STEM_TYPES}, got {stem_type!r}")
    if res.DEPTH < 50:
        raise ValueError(f"build_dilated_resnet_backbone needs bottleneck blocks (MODEL.RESNETS.DEPTH >= 50), "
                         f"got {res.DEPTH}")
    if (res4_dilation, res5_dilation) not in OUTPUT_STRIDES:
        raise ValueError("MODEL.RESNETS.(RES4_DILATION, RES5_DILATION) must be (2, 4) for output stride 8, "
                         f"(1, 2) for 16 or (1, 1) for 32; got ({res4_dilation}, {res5_dilation})")
    if any(g < 1 for g in multi_grid):
        raise ValueError(f"MODEL.RESNETS.RES5_MULTI_GRID must hold positive integers, got {multi_grid}")

    # Detectron2 builds an undilated ResNet (its builder accepts RES5_DILATION 1/2 only); the stages
    # are dilated afterwards, and freezing is re-applied once the stem is final.
    base_cfg = cfg.clone()
    base_cfg.defrost()
    base_cfg.MODEL.RESNETS.RES5_DILATION = 1
    base_cfg.MODEL.BACKBONE.FREEZE_AT = 0
    resnet = build_resnet_backbone(base_cfg, input_shape)
    if stem_type == "deeplab":
        resnet.stem = DeepLabStem(input_shape.channels, res.STEM_OUT_CHANNELS, norm=res.NORM)
    if res4_dilation > 1 and "res4" in resnet.stage_names:
        dilate_stage(resnet, "res4", [res4_dilation] * len(resnet.res4))
    if res5_dilation > 1 and "res5" in resnet.stage_names:
        if len(multi_grid) != len(resnet.res5):
            raise ValueError(f"MODEL.RESNETS.RES5_MULTI_GRID needs one factor per res5 block "
                             f"({len(resnet.res5)}), got {multi_grid}")
        dilate_stage(resnet, "res5", [res5_dilation * g for g in multi_grid])
    return resnet.freeze(cfg.MODEL.BACKBONE.FREEZE_AT)
