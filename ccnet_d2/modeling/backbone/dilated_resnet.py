"""Dilated ResNet for CCNet: Detectron2's DeepLab ResNet builder behind checks that name the key to fix.

CCNet's backbone (official code, ``networks/ccnet.py``): ResNet-50/101 whose res4 and res5 keep stride
1 with dilations 2 and 4 (every block of a stage using the stage's dilation, times a multi-grid factor
in res5), and a "deep" stem of three 3x3 convs (64, 64, 128 channels), the stem the MIT CSAIL ImageNet
weights were trained with. ``detectron2.projects.deeplab``'s ``build_resnet_deeplab_backbone`` builds
exactly this from ``MODEL.RESNETS.{STEM_TYPE, RES4_DILATION, RES5_DILATION, RES5_MULTI_GRID}``; it
reports a wrong value with a bare assertion or a KeyError, so the values are checked here first.
"""
from torch.nn import functional as F

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone.resnet import ResNet
from detectron2.projects.deeplab.resnet import DeepLabStem, build_resnet_deeplab_backbone

__all__ = ["build_dilated_resnet_backbone", "check_dilated_resnet_config", "contract_dilation", "DeepLabStemCeilPool"]

STEM_TYPES = ("basic", "deeplab")
DEPTHS = (50, 101, 152)  # the bottleneck ResNets DeepLab's builder knows
# (RES4_DILATION, RES5_DILATION) -> output stride of res5.
OUTPUT_STRIDES = {(2, 4): 8, (1, 2): 16, (1, 1): 32}
RES5_BLOCKS = 3  # res5 has three blocks at every depth


def check_dilated_resnet_config(cfg) -> None:
    """Raise a ValueError naming the ``MODEL.RESNETS`` key and the accepted values when the config
    asks for a ResNet that DeepLab's builder cannot build, or one that needs detectron2's compiled ops."""
    res = cfg.MODEL.RESNETS
    if res.STEM_TYPE not in STEM_TYPES:
        raise ValueError(f"MODEL.RESNETS.STEM_TYPE must be one of {STEM_TYPES}, got {res.STEM_TYPE!r}")
    if res.DEPTH not in DEPTHS:
        raise ValueError(f"build_dilated_resnet_backbone needs bottleneck blocks: MODEL.RESNETS.DEPTH must be "
                         f"one of {DEPTHS}, got {res.DEPTH}")
    dilations = (res.RES4_DILATION, res.RES5_DILATION)
    if dilations not in OUTPUT_STRIDES:
        raise ValueError("MODEL.RESNETS.(RES4_DILATION, RES5_DILATION) must be (2, 4) for output stride 8, "
                         f"(1, 2) for 16 or (1, 1) for 32; got {dilations}")
    multi_grid = list(res.RES5_MULTI_GRID)
    if len(multi_grid) != RES5_BLOCKS or any(not isinstance(g, int) or g < 1 for g in multi_grid):
        raise ValueError(f"MODEL.RESNETS.RES5_MULTI_GRID needs one positive integer per res5 block "
                         f"({RES5_BLOCKS}), got {multi_grid}")
    if res.STEM_POOL_CEIL_MODE and res.STEM_TYPE != "deeplab":
        raise ValueError("MODEL.RESNETS.STEM_POOL_CEIL_MODE needs STEM_TYPE 'deeplab' (the official CCNet stem), "
                         f"got {res.STEM_TYPE!r}")
    if any(res.DEFORM_ON_PER_STAGE):
        raise ValueError("MODEL.RESNETS.DEFORM_ON_PER_STAGE must be all False: deformable convolutions need "
                         f"detectron2's compiled ops, which ccnet_d2 does not use; got {list(res.DEFORM_ON_PER_STAGE)}")


class DeepLabStemCeilPool(DeepLabStem):
    """DeepLab's deep stem with the max-pool rounding its output size up (``ceil_mode=True``), as in
    the official CCNet network: a 1024x2048 image then gives a 129x257 stride-8 map (128x256 with
    Detectron2's floor). Same parameters and weight names as ``DeepLabStem``."""

    def forward(self, x):
        for conv in (self.conv1, self.conv2, self.conv3):
            x = F.relu_(conv(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1, ceil_mode=True)


@BACKBONE_REGISTRY.register()
def build_dilated_resnet_backbone(cfg, input_shape: ShapeSpec) -> ResNet:
    """Detectron2's ResNet with dilated res4/res5 (output stride 8 or 16) and an optional deep stem,
    built by ``build_resnet_deeplab_backbone`` after :func:`check_dilated_resnet_config`.

    Keys: MODEL.RESNETS.{DEPTH, STEM_TYPE ("basic" = 7x7 conv; "deeplab" = three 3x3 convs to
    STEM_OUT_CHANNELS/2, STEM_OUT_CHANNELS/2, STEM_OUT_CHANNELS), RES4_DILATION, RES5_DILATION,
    RES5_MULTI_GRID (per-block factors on RES5_DILATION), STRIDE_IN_1X1, NORM, OUT_FEATURES} and
    MODEL.BACKBONE.FREEZE_AT. OS8 = RES4_DILATION 2 + RES5_DILATION 4; OS16 = 1 + 2.
    STEM_POOL_CEIL_MODE turns the built stem into a ``DeepLabStemCeilPool`` (a subclass that only
    changes ``forward``, so weights, freezing and names stay those DeepLab's builder made);
    CONTRACT_DILATION applies :func:`contract_dilation`.
    """
    check_dilated_resnet_config(cfg)
    resnet = build_resnet_deeplab_backbone(cfg, input_shape)
    if cfg.MODEL.RESNETS.STEM_POOL_CEIL_MODE:
        resnet.stem.__class__ = DeepLabStemCeilPool
    if cfg.MODEL.RESNETS.CONTRACT_DILATION:
        contract_dilation(resnet)
    return resnet


def contract_dilation(resnet: ResNet) -> None:
    """Halve the dilation (and padding) of the 3x3 conv in the first block of every dilated stage, as
    mmsegmentation's ``contract_dilation`` does: res4.0 then uses 1 instead of 2 and res5.0 2 instead
    of 4 at output stride 8. Strides and output sizes do not change."""
    for stage in resnet.stages:
        conv = stage[0].conv2
        if conv.dilation[0] > 1:
            conv.dilation = conv.padding = (conv.dilation[0] // 2, conv.dilation[1] // 2)
