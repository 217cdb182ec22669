"""Backbones of ccnet_d2 (importing registers them)."""
from .dilated_resnet import build_dilated_resnet_backbone, check_dilated_resnet_config
from .rcca_fpn import build_resnet_rcca_fpn_backbone, insert_rcca_blocks
