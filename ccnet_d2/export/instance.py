"""Mask R-CNN (+ RCCA) as a traceable function through Detectron2's ``TracingAdapter``."""
import torch

from detectron2.export import TracingAdapter
from detectron2.modeling import GeneralizedRCNN

__all__ = ["INSTANCE_OUTPUTS", "instance_tracing_adapter"]

# The flattened outputs, in TracingAdapter's order: the Instances fields sorted by name, then the image size.
INSTANCE_OUTPUTS = ("boxes", "classes", "masks", "scores", "image_size")
_INSTANCE_FIELDS = ["pred_boxes", "pred_classes", "pred_masks", "scores"]


def _raw_detections(model: GeneralizedRCNN, inputs):
    """Detections before Detectron2's post-processing: boxes in the input image's pixels and the
    mask head's 28x28 probabilities per box (not pasted into the image)."""
    return [{"instances": model.inference(inputs, do_postprocess=False)[0]}]


def instance_tracing_adapter(model: GeneralizedRCNN, image: torch.Tensor) -> TracingAdapter:
    """A ``TracingAdapter`` taking one raw image [3, H, W] (float 0..255, ``INPUT.FORMAT``) and returning
    the tensors named by ``INSTANCE_OUTPUTS``: boxes [N, 4] (x0, y0, x1, y1), classes [N] int64,
    masks [N, 1, 28, 28] probabilities, scores [N] and the image size [2]."""
    if not isinstance(model, GeneralizedRCNN):
        raise TypeError(f"instance export: expected a GeneralizedRCNN (MODEL.META_ARCHITECTURE 'GeneralizedRCNN'), "
                        f"got {type(model).__name__}")
    if not getattr(model.roi_heads, "mask_on", False):
        raise ValueError("instance export: the model has no mask head (MODEL.MASK_ON False); the exported "
                         f"outputs {INSTANCE_OUTPUTS} include masks")
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"instance export: the sample image must be [3, H, W], got {tuple(image.shape)}")
    adapter = TracingAdapter(model.eval(), [{"image": image}], _raw_detections).eval()
    with torch.no_grad():
        adapter(image)  # records the output schema
    fields = adapter.outputs_schema.schemas[0].schemas[0].keys
    if fields != _INSTANCE_FIELDS:
        raise RuntimeError(f"instance export: the model returns the fields {fields}, expected {_INSTANCE_FIELDS}")
    return adapter
