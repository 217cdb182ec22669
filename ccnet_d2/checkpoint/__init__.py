"""Converters for published weights."""
from .convert import (
    REQUIRED_CONFIG,
    SOURCE_FORMATS,
    ConversionResult,
    convert_resnet_state_dict,
    infer_resnet_depth,
    load_source_state_dict,
    save_detectron2_checkpoint,
)

__all__ = [k for k in globals().keys() if not k.startswith("_")]
