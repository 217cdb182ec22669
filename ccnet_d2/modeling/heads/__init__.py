"""Semantic-segmentation heads of ccnet_d2, Panoptic FPN's stuff branch included (importing registers them)."""
from .ccnet_fpn_head import CCNetSemSegFPNHead
from .ccnet_head import CCNetHead, build_auxiliary_head
from .ccnet_video_head import CCNetVideoHead, VideoRCCAHeadBlock
