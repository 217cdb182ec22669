"""backbone of ccnet_d2 (importing registers them)."""
from .dilated_resnet import build_dilated_resnet_backbone, dilate_stage
