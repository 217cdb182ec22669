"""Criss-cross attention: the operator, its modules and the attention-map helpers."""
from .criss_cross import (
    BACKENDS,
    criss_cross_attention,
    criss_cross_attention_map,
    criss_cross_attention_torch,
    pixel_attention_map,
)
from .attention_maps import AttentionRecorder, compose_pixel_attention
from .cuda_backend import extension_available, extension_status as cuda_extension_status
from .modules import RCCA, CrissCrossAttention, check_recurrence, get_activation

__all__ = [k for k in globals().keys() if not k.startswith("_")]
