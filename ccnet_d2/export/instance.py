"""Mask R-CNN (+ RCCA) as a traceable function through Detectron2's ``TracingAdapter``, and the
non-maximum suppression its ONNX graph uses.

Both of Detectron2's suppressions (the RPN's over the proposals of all levels, the box head's over
all classes) call ``batched_nms`` and keep the first ``k`` survivors right after (``POST_NMS_TOPK_TEST``,
``TEST.DETECTIONS_PER_IMAGE``). Traced as it is, torchvision's ``batched_nms`` becomes one ONNX
``NonMaxSuppression`` with no output limit, so ONNX Runtime suppresses every candidate: with a low score
threshold the box head sends 1000 boxes x 80 classes, and that one node took 4.2 s of the graph's 7 s at
800x1333 on a 2-core CPU, against 0.18 s for the 85 per-class calls of the eager model. Under
:func:`limited_suppression` the traced graph passes ``k`` to ``NonMaxSuppression``
(``max_output_boxes_per_class``): the runtime stops after the first ``k`` survivors, which are the boxes
the model keeps (survivors come out in descending score order, and each class is offset apart so that
boxes of different classes never overlap, as torchvision's coordinate trick does).
"""
import contextlib
import sys

import torch

from detectron2.export import TracingAdapter
from detectron2.layers import batched_nms
from detectron2.modeling import GeneralizedRCNN
from detectron2.modeling.proposal_generator import proposal_utils
from detectron2.modeling.roi_heads import fast_rcnn

__all__ = ["INSTANCE_OUTPUTS", "instance_tracing_adapter", "limited_suppression"]

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


class _FirstSurvivors(torch.autograd.Function):
    """Indices of the first ``k`` boxes that survive non-maximum suppression, in descending score order;
    exported as one ONNX ``NonMaxSuppression`` with ``max_output_boxes_per_class`` = ``k``."""

    @staticmethod
    def forward(ctx, boxes, scores, iou_threshold: float, k: int):
        from torchvision.ops import nms

        return nms(boxes, scores, iou_threshold)[:k]

    @staticmethod
    def symbolic(g, boxes, scores, iou_threshold: float, k: int):
        axis0 = g.op("Constant", value_t=torch.tensor([0], dtype=torch.long))
        selected = g.op("NonMaxSuppression", g.op("Unsqueeze", boxes, axis0),
                        g.op("Unsqueeze", g.op("Unsqueeze", scores, axis0), axis0),
                        g.op("Constant", value_t=torch.tensor([k], dtype=torch.long)),
                        g.op("Constant", value_t=torch.tensor([iou_threshold], dtype=torch.float)))
        # selected: [M, 3] (batch, class, box); the box index is the third column
        return g.op("Gather", selected, g.op("Constant", value_t=torch.tensor(2, dtype=torch.long)), axis_i=1)


def _first_survivors(k: int):
    """``batched_nms(boxes, scores, idxs, iou_threshold)[:k]`` (all survivors when ``k`` < 0), traceable
    into one limited ``NonMaxSuppression``."""
    k = sys.maxsize if k < 0 else k

    def suppress(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float):
        if not torch.jit.is_tracing():
            return batched_nms(boxes, scores, idxs, iou_threshold)[:k]
        boxes = boxes.float()
        # a zero joins the maximum so that it is defined for an image without candidates
        extent = torch.cat([boxes.flatten(), boxes.new_zeros(1)]).max() + 1
        separated = boxes + (idxs.to(boxes) * extent)[:, None]
        return _FirstSurvivors.apply(separated, scores.float(), float(iou_threshold), k)

    return suppress


@contextlib.contextmanager
def limited_suppression(model: GeneralizedRCNN):
    """Within the block, the RPN's and the box head's ``batched_nms`` of Detectron2 return only the
    survivors ``model`` keeps and trace into a ``NonMaxSuppression`` that stops there (module docstring)."""
    limits = {proposal_utils: model.proposal_generator.post_nms_topk[False],
              fast_rcnn: model.roi_heads.box_predictor.test_topk_per_image}
    for module in limits:
        if getattr(module, "batched_nms", None) is not batched_nms:
            raise RuntimeError(f"instance export: {module.__name__} no longer calls detectron2.layers.batched_nms; "
                               "ccnet_d2.export.instance.limited_suppression must follow this Detectron2 version")
    try:
        for module, k in limits.items():
            module.batched_nms = _first_survivors(k)
        yield
    finally:
        for module in limits:
            module.batched_nms = batched_nms
