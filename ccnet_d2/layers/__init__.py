"""Criss-cross attention: the operator, its modules and the attention-map helpers."""
from .criss_cross import (
    BACKENDS,
    criss_cross_attention,
    criss_cross_attention_map,
    criss_cross_attention_torch,
    pixel_attention_map,
)
from .attention_maps import AttentionRecorder, compose_pixel_attention
from .compiled_op import compiled_op_built, compiled_op_has_cuda_kernels, compiled_op_status
from .criss_cross import GPU_VERIFIED_KERNELS
from .fused_op import fused_kernel_available, fused_kernel_interpreted, fused_kernel_status
from .modules import RCCA, CrissCrossAttention, RCCAHeadBlock, check_recurrence, get_activation
from .criss_cross_3d import criss_cross_attention_3d
from .modules import RCCA3d, CrissCrossAttention3d, per_frame

__all__ = [k for k in globals().keys() if not k.startswith("_")]
