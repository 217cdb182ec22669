"""The CCNet semantic-segmentation head: RCCA on res5, a 1x1 classifier, the auxiliary FCN head on
res4 and the losses (cross-entropy or OHEM, auxiliary cross-entropy, category-consistent loss)."""
from typing import Dict, Optional

import fvcore.nn.weight_init as weight_init
import torch
from torch import nn
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY

from ...layers import RCCAHeadBlock, get_activation
from ..losses import CategoryConsistentLoss, OhemCrossEntropy

__all__ = ["CCNetHead", "build_auxiliary_head"]

LOSS_TYPES = ("cross_entropy", "ohem")


def _classifier(in_channels: int, num_classes: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, num_classes, kernel_size=1)
    nn.init.normal_(conv.weight, std=0.01)
    nn.init.zeros_(conv.bias)
    return conv


def build_auxiliary_head(in_channels: int, num_classes: int, *, channels: int = 512, norm: str = "BN",
                         activation: str = "relu", dropout: float = 0.1) -> nn.Sequential:
    """The deep-supervision FCN head of the official code: 3x3 conv-norm-act, Dropout2d, 1x1 classifier."""
    conv = Conv2d(in_channels, channels, kernel_size=3, padding=1, bias=not norm,
                  norm=get_norm(norm, channels), activation=get_activation(activation))
    weight_init.c2_msra_fill(conv)
    return nn.Sequential(conv, nn.Dropout2d(dropout), _classifier(channels, num_classes))


@SEM_SEG_HEADS_REGISTRY.register()
class CCNetHead(nn.Module):
    """RCCA (R criss-cross loops) on one backbone feature, then a 1x1 classifier.

    Training adds the auxiliary head's loss (``loss_sem_seg_aux``, weight 0.4 in the official code)
    and, when enabled, the category-consistent loss on a 1x1 projection of the RCCA context features
    (``loss_ccl_var``, ``loss_ccl_dis``, ``loss_ccl_reg``). Logits are upsampled bilinearly (with
    ``align_corners``) to the targets' size in training and by the feature stride at inference,
    following Detectron2's head contract: ``forward(features, targets)`` returns ``(None, losses)`` in
    training and ``(logits, {})`` at inference.
    """

    @configurable
    def __init__(self, input_shape: Dict[str, ShapeSpec], *, in_feature: str, rcca_block: RCCAHeadBlock,
                 num_classes: int, ignore_value: int = 255, loss_weight: float = 1.0, loss_type: str = "cross_entropy",
                 ohem_threshold: float = 0.7, ohem_min_kept: int = 100000,
                 aux_in_feature: Optional[str] = "res4", aux_loss_weight: float = 0.4,
                 aux_channels: int = 512, norm: str = "BN", activation: str = "relu", aux_dropout: float = 0.1,
                 consistent_loss: Optional[CategoryConsistentLoss] = None, consistent_dim: int = 16,
                 align_corners: bool = False):
        """
        Args:
            input_shape: shapes of the backbone features.
            in_feature: feature RCCA runs on (res5 of the dilated ResNet).
            rcca_block: the context block around RCCA, built for ``input_shape[in_feature].channels``.
            loss_type: "cross_entropy" or "ohem" (main loss only; the auxiliary loss is plain
                cross-entropy, as in the official code).
            aux_in_feature, aux_loss_weight: the auxiliary head's input; no auxiliary head when
                ``aux_loss_weight`` is 0 or ``aux_in_feature`` is None.
            consistent_loss: the category-consistent loss, or None to leave it out.
            consistent_dim: channels of the 1x1 projection the consistent loss sees.
            align_corners: of the bilinear upsampling of the logits, in training and inference
                (the official code and mmsegmentation's 769x769 models use True).
        """
        super().__init__()
        if in_feature not in input_shape:
            raise ValueError(f"CCNetHead: in_feature {in_feature!r} is not among the backbone features "
                             f"{sorted(input_shape)}")
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"CCNetHead: MODEL.SEM_SEG_HEAD.LOSS_TYPE must be one of {LOSS_TYPES}, got "
                             f"{loss_type!r} (DeepLab's default 'hard_pixel_mining' is not a CCNet loss; "
                             "the Base-CCNet configs set it)")
        self.in_feature = in_feature
        self.common_stride = input_shape[in_feature].stride
        self.ignore_value = ignore_value
        self.align_corners = align_corners
        self.loss_weight = loss_weight
        self.rcca_block = rcca_block
        self.predictor = _classifier(rcca_block.out_channels, num_classes)
        if loss_type == "ohem":
            self.main_loss = OhemCrossEntropy(ohem_threshold, ohem_min_kept, ignore_index=ignore_value)
        else:
            self.main_loss = nn.CrossEntropyLoss(ignore_index=ignore_value)

        self.aux_in_feature = aux_in_feature if aux_loss_weight > 0 else None
        self.aux_loss_weight = aux_loss_weight
        if self.aux_in_feature is not None:
            if self.aux_in_feature not in input_shape:
                raise ValueError(f"CCNetHead: aux_in_feature {aux_in_feature!r} is not among the backbone "
                                 f"features {sorted(input_shape)}; add it to MODEL.RESNETS.OUT_FEATURES "
                                 "or set MODEL.SEM_SEG_HEAD.AUX_LOSS_WEIGHT to 0")
            self.aux_head = build_auxiliary_head(input_shape[aux_in_feature].channels, num_classes,
                                                 channels=aux_channels, norm=norm, activation=activation,
                                                 dropout=aux_dropout)

        self.consistent_loss = consistent_loss
        if consistent_loss is not None:
            self.consistent_projection = nn.Conv2d(rcca_block.rcca.in_channels, consistent_dim, kernel_size=1)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        head = cfg.MODEL.SEM_SEG_HEAD
        if len(head.IN_FEATURES) != 1:
            raise ValueError(f"CCNetHead reads one feature (e.g. ['res5']); MODEL.SEM_SEG_HEAD.IN_FEATURES is "
                             f"{head.IN_FEATURES}")
        in_feature = head.IN_FEATURES[0]
        if in_feature not in input_shape:
            raise ValueError(f"CCNetHead: MODEL.SEM_SEG_HEAD.IN_FEATURES[0] = {in_feature!r} is not produced by "
                             f"the backbone (it gives {sorted(input_shape)})")
        ccl = cfg.MODEL.CCNET.CONSISTENT_LOSS
        consistent_loss = None
        if ccl.ENABLED:
            consistent_loss = CategoryConsistentLoss(
                num_classes=head.NUM_CLASSES, delta_v=ccl.DELTA_V, delta_d=ccl.DELTA_D,
                var_weight=ccl.VAR_WEIGHT, dis_weight=ccl.DIS_WEIGHT, reg_weight=ccl.REG_WEIGHT,
                ignore_index=head.IGNORE_VALUE)
        return {
            "input_shape": input_shape,
            "in_feature": in_feature,
            "rcca_block": RCCAHeadBlock(cfg, input_shape[in_feature].channels),
            "num_classes": head.NUM_CLASSES,
            "ignore_value": head.IGNORE_VALUE,
            "loss_weight": head.LOSS_WEIGHT,
            "loss_type": head.LOSS_TYPE,
            "ohem_threshold": head.OHEM_THRESHOLD,
            "ohem_min_kept": head.OHEM_MIN_KEPT,
            "aux_in_feature": head.AUX_IN_FEATURE or None,
            "aux_loss_weight": head.AUX_LOSS_WEIGHT,
            "aux_channels": head.AUX_CONVS_DIM,
            "norm": head.NORM,
            "activation": cfg.MODEL.CCNET.ACTIVATION,
            "aux_dropout": cfg.MODEL.CCNET.DROPOUT,
            "consistent_loss": consistent_loss,
            "consistent_dim": ccl.DIM,
            "align_corners": head.ALIGN_CORNERS,
        }

    def layers(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Class logits at the resolution of the input feature."""
        return self.predictor(self.rcca_block(features[self.in_feature]))

    def forward(self, features: Dict[str, torch.Tensor], targets: Optional[torch.Tensor] = None):
        if self.training:
            if targets is None:
                raise ValueError("CCNetHead: training needs targets (the images' 'sem_seg' ground truth)")
            return None, self.losses(features, targets)
        logits = self.layers(features)
        return self.upsample(logits, [size * self.common_stride for size in logits.shape[-2:]]), {}

    def losses(self, features: Dict[str, torch.Tensor], targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        """All training losses for ``targets`` [N, H, W] (ignore_value marks unlabelled pixels)."""
        fused, context = self.rcca_block.forward_with_context(features[self.in_feature])
        size = targets.shape[-2:]
        logits = self.upsample(self.predictor(fused).float(), size)
        losses = {"loss_sem_seg": self.loss_weight * self.main_loss(logits, targets)}
        if self.aux_in_feature is not None:
            aux_logits = self.upsample(self.aux_head(features[self.aux_in_feature]).float(), size)
            losses["loss_sem_seg_aux"] = self.aux_loss_weight * F.cross_entropy(
                aux_logits, targets, ignore_index=self.ignore_value)
        if self.consistent_loss is not None:
            embedding = self.consistent_projection(context)
            labels = F.interpolate(targets.unsqueeze(1).float(), size=embedding.shape[-2:], mode="nearest")
            losses.update(self.consistent_loss(embedding, labels.squeeze(1).long()))
        return losses

    def upsample(self, logits: torch.Tensor, size) -> torch.Tensor:
        """Bilinear upsampling of logits to ``size`` (h, w), with the head's ``align_corners``."""
        return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=self.align_corners)
