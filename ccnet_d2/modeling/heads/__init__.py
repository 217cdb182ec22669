"""Semantic-segmentation heads of ccnet_d2 (importing registers them)."""
from .ccnet_head import CCNetHead, build_auxiliary_head
from .ccnet_video_head import CCNetVideoHead, VideoRCCAHeadBlock
