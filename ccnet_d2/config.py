"""add_ccnet_config(cfg): every key ccnet_d2 adds to a Detectron2 config, each with a comment.

Call it on a fresh ``get_cfg()`` before ``merge_from_file``. It only adds keys to the cfg it is given;
Detectron2's global defaults are never touched.
"""
from detectron2.config import CfgNode as CN
from detectron2.projects.deeplab import add_deeplab_config

__all__ = ["add_ccnet_config"]


def add_ccnet_config(cfg):
    """Extend ``cfg`` in place with the keys of the operator, the instance model and the semantic model."""
    _add_operator_config(cfg)
    _add_instance_config(cfg)
    _add_semantic_config(cfg)
    _add_data_config(cfg)
    _add_video_config(cfg)
    return cfg


def _add_operator_config(cfg):
    cfg.MODEL.CCNET = CN()
    # Number of criss-cross attention loops R (shared weights); 2 gives every pixel full-image context.
    cfg.MODEL.CCNET.RECURRENCE = 2
    # Query/key channels are in_channels // REDUCTION (the official code uses 8).
    cfg.MODEL.CCNET.REDUCTION = 8
    # Operator backend: "auto" (a GPU-verified kernel for CUDA tensors, else torch), "cuda", "fused" or "torch".
    cfg.MODEL.CCNET.BACKEND = "auto"
    # Activation after each conv-norm of the RCCA block: "relu" or "leaky_relu" (official InPlaceABN).
    cfg.MODEL.CCNET.ACTIVATION = "relu"
    # Dropout2d after the RCCA bottleneck (0.1 in the official head).
    cfg.MODEL.CCNET.DROPOUT = 0.1


def _add_instance_config(cfg):
    """Keys of Mask R-CNN + RCCA (RCCA inside the ResNet); R, reduction and backend come from the
    operator keys above."""
    # ResNet stages that get an RCCA block (build_resnet_rcca_fpn_backbone); the paper does not say which.
    cfg.MODEL.CCNET.BACKBONE_STAGES = ["res4"]
    # Where in each stage the block goes (list.insert index over its blocks): -1 = before the last block.
    cfg.MODEL.CCNET.BACKBONE_POSITION = -1


def _add_semantic_config(cfg):
    """Keys of the CCNet semantic-segmentation model.

    Starts from Detectron2's DeepLab project keys, reused rather than redefined:
    MODEL.RESNETS.{STEM_TYPE, RES4_DILATION, RES5_MULTI_GRID} (read by our dilated ResNet),
    MODEL.SEM_SEG_HEAD.LOSS_TYPE (we accept "cross_entropy" and "ohem"), SOLVER.POLY_LR_{POWER,
    CONSTANT_ENDING} (WarmupPolyLR) and INPUT.CROP.SINGLE_CATEGORY_MAX_AREA. Their defaults are
    DeepLab's; the CCNet values live in configs/Base-CCNet-OS8.yaml. Test-time flip is Detectron2's
    TEST.AUG.FLIP, applied when TEST.AUG.ENABLED (which also enables TEST.SEM_SEG.SCALES).
    """
    add_deeplab_config(cfg)
    # Backbone feature the auxiliary FCN head reads (the official code's "dsn" branch on layer3 = res4).
    cfg.MODEL.SEM_SEG_HEAD.AUX_IN_FEATURE = "res4"
    # Weight of the auxiliary loss; 0 removes the auxiliary head (0.4 in the official code).
    cfg.MODEL.SEM_SEG_HEAD.AUX_LOSS_WEIGHT = 0.4
    # Channels of the auxiliary head's 3x3 conv (512 in the official code, 256 in mmsegmentation).
    cfg.MODEL.SEM_SEG_HEAD.AUX_CONVS_DIM = 512
    # OHEM (LOSS_TYPE "ohem"): pixels whose true-class probability is <= this are hard (official README: 0.7).
    cfg.MODEL.SEM_SEG_HEAD.OHEM_THRESHOLD = 0.7
    # OHEM keeps at least this many lowest-probability pixels per batch (official README: 100000).
    cfg.MODEL.SEM_SEG_HEAD.OHEM_MIN_KEPT = 100000
    # align_corners of the bilinear logit upsampling in training and inference (official code: True).
    cfg.MODEL.SEM_SEG_HEAD.ALIGN_CORNERS = False
    # Pad inputs to a multiple of the feature stride (False: any size runs as is, as the official code does).
    cfg.MODEL.CCNET.PAD_TO_STRIDE = True
    # Max-pool of the deep stem rounds its output size up (official code: True; Detectron2/mmseg: False).
    cfg.MODEL.RESNETS.STEM_POOL_CEIL_MODE = False
    # First block of a dilated res4/res5 uses half the stage's dilation (mmsegmentation: True; official: False).
    cfg.MODEL.RESNETS.CONTRACT_DILATION = False

    cfg.MODEL.CCNET.CONSISTENT_LOSS = CN()
    # Category-consistent loss of the TPAMI paper on a 1x1 projection of the RCCA features.
    cfg.MODEL.CCNET.CONSISTENT_LOSS.ENABLED = False
    # Channels of that projection (paper: "reduced ... 16", ambiguous; 16 channels is our reading).
    cfg.MODEL.CCNET.CONSISTENT_LOSS.DIM = 16
    # delta_v: pixels closer than this to their class mean are not pulled (paper: 0.5).
    cfg.MODEL.CCNET.CONSISTENT_LOSS.DELTA_V = 0.5
    # delta_d: class means closer than 2*delta_d are pushed apart; phi_var turns linear past it (paper: 1.5).
    cfg.MODEL.CCNET.CONSISTENT_LOSS.DELTA_D = 1.5
    # alpha, weight of the variance term L_var (paper: 1).
    cfg.MODEL.CCNET.CONSISTENT_LOSS.VAR_WEIGHT = 1.0
    # beta, weight of the distance term L_dis (paper: 1).
    cfg.MODEL.CCNET.CONSISTENT_LOSS.DIS_WEIGHT = 1.0
    # gamma, weight of the regularisation term L_reg (paper: 0.001).
    cfg.MODEL.CCNET.CONSISTENT_LOSS.REG_WEIGHT = 0.001

    cfg.TEST.SEM_SEG = CN()
    # Inference mode of CCNetSegmentor: "whole" (one pass per image) or "slide" (overlapping crops).
    cfg.TEST.SEM_SEG.MODE = "whole"
    # Sliding-window crop (h, w) (official Cityscapes evaluation: 769x769).
    cfg.TEST.SEM_SEG.CROP_SIZE = [769, 769]
    # Sliding-window stride (h, w) (official: 2/3 of the crop, 513).
    cfg.TEST.SEM_SEG.STRIDE = [513, 513]
    # Test scales (factors of the test size) used when TEST.AUG.ENABLED; logits averaged at input size.
    cfg.TEST.SEM_SEG.SCALES = [1.0]
    # (left, right) class-index pairs swapped back after a flip; empty = the test dataset's metadata "flip_pairs".
    cfg.TEST.SEM_SEG.FLIP_PAIRS = []


def _add_data_config(cfg):
    """Keys of the semantic-segmentation training augmentations and of the test-time resize."""
    # Random rescale factor range of semantic-segmentation training images (paper, Cityscapes: 0.75-2.0).
    cfg.INPUT.SCALE_RANGE = (0.75, 2.0)
    # Apply ResizeShortestEdge(INPUT.MIN_SIZE_TRAIN, MAX_SIZE_TRAIN) before the random scale (ADE20K-style).
    cfg.INPUT.SEM_SEG_RESIZE_SHORTEST_EDGE = False
    # Pad images smaller than an "absolute" INPUT.CROP.SIZE up to it, labels with the ignore value.
    cfg.INPUT.CROP.PAD = True
    # Test-time resize: "pil" (Detectron2's ResizeShortestEdge) or "cv2" (mmsegmentation's: mmcv rescale, OpenCV).
    cfg.INPUT.TEST_RESIZE_BACKEND = "pil"
    if "SINGLE_CATEGORY_MAX_AREA" not in cfg.INPUT.CROP:  # also defined by add_deeplab_config
        # Largest area ratio one category may take in a training crop (1.0 disables the constraint).
        cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA = 1.0


def _add_video_config(cfg):
    """Keys of the video model's clips (CCNetVideoSegmentor, ClipDatasetMapper, ClipPredictor)."""
    # Frames per clip T (odd): the labelled/predicted frame and (T-1)/2 frames on each side; 1 = single images.
    cfg.INPUT.CLIP_LENGTH = 1
    # Spacing of the clip's frames in the source video, in frames (CamVid: 30 Hz).
    cfg.INPUT.CLIP_FRAME_STEP = 1
