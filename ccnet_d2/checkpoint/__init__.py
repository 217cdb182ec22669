"""Converters for published weights: ImageNet ResNets (``convert``) and CCNet models (``ccnet``); checkpoints
that survive interruption (``atomic``)."""
from .atomic import PARTIAL_SUFFIX, AtomicCheckpointer, write_atomically
from .ccnet import CCNET_FORMATS, INPLACE_ABN_EPS, compare_with_model, conversion_problems, convert_ccnet_state_dict
from .loading import ACCEPTED_CHECKPOINTS, explain_checkpoint_errors, explain_weights_errors
from .convert import (
    REQUIRED_CONFIG,
    SOURCE_FORMATS,
    ConversionResult,
    convert_resnet_state_dict,
    file_sha256,
    infer_resnet_depth,
    load_source_state_dict,
    save_detectron2_checkpoint,
)

__all__ = [k for k in globals().keys() if not k.startswith("_")]
