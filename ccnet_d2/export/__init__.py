"""Deployment: the CCNet segmentor, Mask R-CNN + RCCA and Panoptic FPN + RCCA as ONNX files (float32 and INT8
for the first two) and the segmentor as a ``torch.export`` program."""
from .decompositions import CUSTOM_OP_DECOMPOSITIONS, custom_ops_as_reference, decompose_custom_ops
from .exporter import EXPORT_FORMATS, ONNX_OPSET, SEMANTIC_OUTPUTS, export_model, export_semantic_program
from .instance import INSTANCE_OUTPUTS, instance_tracing_adapter
from .panoptic import PANOPTIC_OUTPUTS, panoptic_postprocess, panoptic_tracing_adapter
from .preprocessing import instance_postprocess, preprocess, semantic_postprocess
from .quantization import INT8_FILE_NAME, calibration_inputs, describe_int8_accuracy, int8_accuracy, quantize_int8
from .semantic import SemanticSegmentationGraph

__all__ = [k for k in globals().keys() if not k.startswith("_")]
