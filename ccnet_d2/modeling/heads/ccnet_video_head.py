"""The CCNet head for clips (the TPAMI paper's video model): RCCA3d over the frames of a clip, the rest
of the CCNet head on the centre frame, the one that is labelled."""
from typing import Dict

import torch

from detectron2.layers import ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY

from ...layers import RCCA3d, RCCAHeadBlock, per_frame
from .ccnet_head import CCNetHead

__all__ = ["CCNetVideoHead", "VideoRCCAHeadBlock", "centre_frame"]


def centre_frame(clip: torch.Tensor) -> torch.Tensor:
    """Frame T // 2 of a [B, C, T, H, W] clip, as [B, C, H, W]: the labelled frame of a training clip."""
    return clip[:, :, clip.shape[2] // 2]


class VideoRCCAHeadBlock(RCCAHeadBlock):
    """RCCAHeadBlock on a [B, C, T, H, W] clip: the 3x3 reduce conv on every frame, RCCA3d over the
    clip, then the post conv, concatenation and bottleneck on the centre frame only (they are
    per-frame, and only the centre frame is predicted). Same parameters and names as RCCAHeadBlock, so
    a CCNet image model's weights load into it."""

    rcca_class = RCCA3d

    def context(self, clip: torch.Tensor) -> torch.Tensor:
        """The centre frame's attended features [B, C, H, W] after the R loops over the clip."""
        return self.post(centre_frame(self.rcca(per_frame(self.reduce, clip))))

    def forward_with_context(self, clip: torch.Tensor):
        context = self.context(clip)
        return self.fuse(centre_frame(clip), context), context


@SEM_SEG_HEADS_REGISTRY.register()
class CCNetVideoHead(CCNetHead):
    """CCNetHead with a VideoRCCAHeadBlock: its ``in_feature`` is a [B, C, T, H, W] clip of per-frame
    features, every other feature (the auxiliary head's) the centre frame's [B, C, H, W]; logits,
    losses and targets are the centre frame's. Built from the same config keys as CCNetHead."""

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        args = super().from_config(cfg, input_shape)
        args["rcca_block"] = VideoRCCAHeadBlock(cfg, input_shape[args["in_feature"]].channels)
        return args
