"""ResNet-FPN with recurrent criss-cross attention inside the ResNet, for Mask R-CNN + RCCA.

The paper (TPAMI version) inserts RCCA "inside the Mask R-CNN backbone" without saying where; by
default the block goes into res4 before its last residual block, the place where non-local blocks go in
Mask R-CNN. The ResNet comes from Detectron2's ``build_resnet_backbone`` and the FPN is built exactly as
``build_resnet_fpn_backbone`` does, so every other ``MODEL.RESNETS.*`` / ``MODEL.FPN.*`` key keeps working.
"""
from collections import OrderedDict

from torch import nn

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone import FPN, ResNet, build_resnet_backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool

from ...layers import RCCA

__all__ = ["insert_rcca_blocks", "build_resnet_rcca_fpn_backbone", "RCCA_BLOCK_NAME"]

# Child name of the block inside its stage: "res4.rcca.*" has no suffix in common with any key of a
# C2/ImageNet or plain-ResNet checkpoint ("res4.5.conv1.*"), so loading those reports it as new.
RCCA_BLOCK_NAME = "rcca"


def insert_rcca_blocks(resnet: ResNet, stages, position: int, make_block, freeze_at: int) -> ResNet:
    """Insert ``make_block(channels)`` into each named stage of ``resnet`` at ``position`` (``list.insert``
    semantics on the stage's blocks: -1 = before the last block, len = after it). The existing blocks
    keep their child names, so checkpoints of the plain ResNet still load. A block inserted into a stage
    that ``freeze_at`` freezes is frozen as well (the ResNet froze its stages before the insertion)."""
    for stage_name in stages:
        if stage_name not in resnet.stage_names:
            raise ValueError(f"MODEL.CCNET.BACKBONE_STAGES names {stage_name!r}, but the ResNet has the stages "
                             f"{list(resnet.stage_names)} (MODEL.RESNETS.OUT_FEATURES decides which are built)")
        index = resnet.stage_names.index(stage_name)
        old_stage = resnet.stages[index]
        children = list(old_stage.named_children())
        if not -len(children) <= position <= len(children):
            raise ValueError(f"MODEL.CCNET.BACKBONE_POSITION={position} is outside [-{len(children)}, "
                             f"{len(children)}] for {stage_name}, which has {len(children)} blocks")
        index_in_stage = position % (len(children) + 1) if position < 0 else position
        # The block sees the input of the block it precedes (or the stage's output when appended).
        channels = (children[index_in_stage][1].in_channels if index_in_stage < len(children)
                    else children[-1][1].out_channels)
        block = make_block(channels)
        if freeze_at >= index + 2:  # ResNet.freeze: stage res{k} is frozen when freeze_at >= k
            block.freeze()
        children.insert(position, (RCCA_BLOCK_NAME, block))
        new_stage = nn.Sequential(OrderedDict(children))
        setattr(resnet, stage_name, new_stage)
        resnet.stages[index] = new_stage
    return resnet


@BACKBONE_REGISTRY.register()
def build_resnet_rcca_fpn_backbone(cfg, input_shape: ShapeSpec):
    """Detectron2's ResNet with RCCA blocks in ``MODEL.CCNET.BACKBONE_STAGES`` at
    ``MODEL.CCNET.BACKBONE_POSITION``, wrapped in FPN like ``build_resnet_fpn_backbone``."""
    bottom_up = insert_rcca_blocks(
        build_resnet_backbone(cfg, input_shape),
        stages=cfg.MODEL.CCNET.BACKBONE_STAGES,
        position=cfg.MODEL.CCNET.BACKBONE_POSITION,
        make_block=lambda channels: RCCA(cfg, channels),
        freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT,
    )
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
