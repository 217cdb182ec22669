"""add_ccnet_config(cfg): every key ccnet_d2 adds to a Detectron2 config, each with a comment.

Call it on a fresh ``get_cfg()`` before ``merge_from_file``. It only adds keys to the cfg it is given;
Detectron2's global defaults are never touched.
"""
from detectron2.config import CfgNode as CN

__all__ = ["add_ccnet_config"]


def add_ccnet_config(cfg):
    """Extend ``cfg`` in place with the keys of the operator, the instance model and the semantic model."""
    _add_operator_config(cfg)
    _add_instance_config(cfg)
    _add_semantic_config(cfg)
    _add_data_config(cfg)
    return cfg


def _add_operator_config(cfg):
    cfg.MODEL.CCNET = CN()
    # Number of criss-cross attention loops R (shared weights); 2 gives every pixel full-image context.
    cfg.MODEL.CCNET.RECURRENCE = 2
    # Query/key channels are in_channels // REDUCTION (the official code uses 8).
    cfg.MODEL.CCNET.REDUCTION = 8
    # Operator backend: "auto" (compiled CUDA kernel for CUDA tensors when built), "cuda" or "torch".
    cfg.MODEL.CCNET.BACKEND = "auto"
    # Activation after each conv-norm of the RCCA block: "relu" or "leaky_relu" (official InPlaceABN).
    cfg.MODEL.CCNET.ACTIVATION = "relu"
    # Dropout2d after the RCCA bottleneck (0.1 in the official head).
    cfg.MODEL.CCNET.DROPOUT = 0.1


def _add_instance_config(cfg):
    """Keys of the RCCA-in-backbone Mask R-CNN (issue 5)."""


def _add_semantic_config(cfg):
    """Keys of the CCNet semantic-segmentation model (issue 4)."""


def _add_data_config(cfg):
    """Keys of datasets, augmentations and mappers (issue 4, data part)."""
    # Random rescale factor range of semantic-segmentation training images (paper, Cityscapes: 0.75-2.0).
    cfg.INPUT.SCALE_RANGE = (0.75, 2.0)
    # Apply ResizeShortestEdge(INPUT.MIN_SIZE_TRAIN, MAX_SIZE_TRAIN) before the random scale (ADE20K-style).
    cfg.INPUT.SEM_SEG_RESIZE_SHORTEST_EDGE = False
    # Pad images smaller than an "absolute" INPUT.CROP.SIZE up to it, labels with the ignore value.
    cfg.INPUT.CROP.PAD = True
    if "SINGLE_CATEGORY_MAX_AREA" not in cfg.INPUT.CROP:  # also defined by add_deeplab_config
        # Largest area ratio one category may take in a training crop (1.0 disables the constraint).
        cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA = 1.0
