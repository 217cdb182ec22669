"""backbone of ccnet_d2 (importing registers them)."""
from .rcca_fpn import RCCABlock, build_resnet_rcca_fpn_backbone
from .dilated_resnet import build_dilated_resnet_backbone, dilate_stage
