"""Export of a built model to ONNX or to a ``torch.export`` program, the logic behind
``tools/export_model.py`` (docs/DEPLOYMENT.md).

- CCNet segmentor (``SemanticSegmentationGraph``): ``torch.export`` with dynamic height and width,
  custom operators decomposed, then ONNX through the ``torch.export``-based exporter (``dynamo=True``).
- Mask R-CNN (+ RCCA): Detectron2's ``TracingAdapter`` path, ``torch.jit.trace`` through the
  TorchScript-based ONNX exporter, height and width declared dynamic. Panoptic FPN the same way, with the
  stuff logits as one more output and the merge left to ``panoptic_postprocess`` (``panoptic.py``). ``torch.export`` cannot take
  it: the number of boxes after non-maximum suppression is data-dependent and Detectron2's
  post-processing branches on it.
"""
import os

import torch
from torch import nn

from detectron2.modeling import GeneralizedRCNN, PanopticFPN

from ..modeling.meta_arch import CCNetSegmentor
from .decompositions import custom_ops_as_reference, decompose_custom_ops
from .instance import INSTANCE_OUTPUTS, instance_tracing_adapter, limited_suppression
from .panoptic import PANOPTIC_OUTPUTS, panoptic_tracing_adapter
from .semantic import SemanticSegmentationGraph

__all__ = ["EXPORT_FORMATS", "ONNX_OPSET", "SEMANTIC_OUTPUTS", "export_semantic_program", "export_model"]

EXPORT_FORMATS = ("onnx", "torch-export")
ONNX_OPSET = 18  # what the dynamo exporter translates to (lower ones are converted after); RoiAlign aligned needs 16
SEMANTIC_OUTPUTS = ("logits", "labels")
_FILE_NAMES = {"onnx": "model.onnx", "torch-export": "model.pt2"}


def export_semantic_program(segmentor: CCNetSegmentor, image: torch.Tensor) -> torch.export.ExportedProgram:
    """The segmentor's whole-image inference as an ExportedProgram of standard ATen operators, with
    dynamic H and W. ``image``: a sample [1, 3, H, W] (any size the model accepts)."""
    if image.dim() != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"semantic export: the sample image must be [1, 3, H, W], got {tuple(image.shape)}")
    dynamic = torch.export.Dim.DYNAMIC
    with torch.no_grad():
        program = torch.export.export(SemanticSegmentationGraph(segmentor), (image,),
                                      dynamic_shapes={"image": {2: dynamic, 3: dynamic}})
    return decompose_custom_ops(program)


def _export_rcnn_onnx(adapter, model: GeneralizedRCNN, image: torch.Tensor, path: str, outputs) -> None:
    with torch.no_grad(), custom_ops_as_reference(), limited_suppression(model):
        torch.onnx.export(adapter, (image,), path, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=["image"], output_names=list(outputs),
                          dynamic_axes={"image": {1: "height", 2: "width"}})


def export_model(model: nn.Module, image: torch.Tensor, output_dir: str, export_format: str) -> str:
    """Write ``model`` (a CCNetSegmentor or a GeneralizedRCNN: Mask R-CNN, Panoptic FPN; in eval mode) to ``output_dir`` as
    ``model.onnx`` or ``model.pt2``; ``image`` is a sample raw image [3, H, W] (float 0..255, the
    model's ``INPUT.FORMAT``) on the model's device. Returns the file written."""
    if export_format not in EXPORT_FORMATS:
        raise ValueError(f"export format must be one of {EXPORT_FORMATS}, got {export_format!r}")
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"export: the sample image must be [3, H, W] (float 0..255), got {tuple(image.shape)}")
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, _FILE_NAMES[export_format])
    model.eval()
    if isinstance(model, CCNetSegmentor):
        program = export_semantic_program(model, image.unsqueeze(0))
        if export_format == "torch-export":
            torch.export.save(program, path)
        else:
            onnx_program = torch.onnx.export(program, (image.unsqueeze(0),), dynamo=True, opset_version=ONNX_OPSET,
                                             input_names=["image"], output_names=list(SEMANTIC_OUTPUTS))
            onnx_program.save(path)
    elif isinstance(model, GeneralizedRCNN):
        if export_format == "torch-export":
            raise ValueError("Mask R-CNN (and Panoptic FPN) cannot be exported with torch.export: the number of "
                             "detections after non-maximum suppression is data-dependent and Detectron2's "
                             "post-processing branches on it; use --format onnx (Detectron2's tracing path)")
        if isinstance(model, PanopticFPN):
            _export_rcnn_onnx(panoptic_tracing_adapter(model, image), model, image, path, PANOPTIC_OUTPUTS)
        else:
            _export_rcnn_onnx(instance_tracing_adapter(model, image), model, image, path, INSTANCE_OUTPUTS)
    else:
        raise TypeError(f"export: expected a CCNetSegmentor or a GeneralizedRCNN (MODEL.META_ARCHITECTURE), "
                        f"got {type(model).__name__}")
    return path
