"""Panoptic FPN (+ RCCA) for deployment: the network as a traceable function, the panoptic merge after it.

The merge (``combine_semantic_and_instance_outputs``: instances pasted in score order, then the stuff
regions) loops in Python over a data-dependent number of instances, which no trace can capture. So the
exported graph stops where Mask R-CNN's does and adds the stuff branch's logits: the outputs named by
``PANOPTIC_OUTPUTS`` (Mask R-CNN's raw detections, then ``sem_seg`` [K, h', w'] at the padded input size),
and :func:`panoptic_postprocess` does what ``PanopticFPN.inference`` does after the network, with
Detectron2's own functions and the config's ``MODEL.PANOPTIC_FPN.COMBINE`` values.
"""
from typing import Sequence, Tuple

import numpy as np
import torch
from detectron2.export import TracingAdapter
from detectron2.modeling import PanopticFPN
from detectron2.modeling.meta_arch.panoptic_fpn import combine_semantic_and_instance_outputs
from detectron2.modeling.postprocessing import sem_seg_postprocess

from .instance import INSTANCE_OUTPUTS
from .preprocessing import instance_postprocess

__all__ = ["PANOPTIC_OUTPUTS", "panoptic_tracing_adapter", "panoptic_postprocess"]

PANOPTIC_OUTPUTS = INSTANCE_OUTPUTS + ("sem_seg",)


def _raw_outputs(model: PanopticFPN, inputs):
    """The network's outputs before the merge: raw detections and the stuff logits of the padded input."""
    detections, stuff_logits = model.inference(inputs, do_postprocess=False)
    return [{"instances": detections[0], "sem_seg": stuff_logits[0]}]


def panoptic_tracing_adapter(model: PanopticFPN, image: torch.Tensor) -> TracingAdapter:
    """A ``TracingAdapter`` taking one raw image [3, H, W] (float 0..255, ``INPUT.FORMAT``) and returning the
    tensors named by ``PANOPTIC_OUTPUTS``."""
    if not isinstance(model, PanopticFPN):
        raise TypeError(f"panoptic export: expected a PanopticFPN, got {type(model).__name__}")
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"panoptic export: the sample image must be [3, H, W], got {tuple(image.shape)}")
    adapter = TracingAdapter(model.eval(), [{"image": image}], _raw_outputs).eval()
    with torch.no_grad():
        outputs = adapter(image)
    if len(outputs) != len(PANOPTIC_OUTPUTS):
        raise RuntimeError(f"panoptic export: the model returns {len(outputs)} tensors, expected "
                           f"{PANOPTIC_OUTPUTS}")
    return adapter


def panoptic_postprocess(outputs: Sequence[np.ndarray], image_size: Tuple[int, int], cfg) -> dict:
    """``{"sem_seg", "instances", "panoptic_seg"}`` at the original ``image_size`` (H, W) from the exported
    graph's outputs (in ``PANOPTIC_OUTPUTS`` order), as ``PanopticFPN`` returns them through the predictor."""
    instances = instance_postprocess(outputs[:5], image_size, cfg)["instances"]
    input_size = tuple(int(s) for s in np.asarray(outputs[4]))
    sem_seg = sem_seg_postprocess(torch.as_tensor(np.asarray(outputs[5])), input_size, *image_size)
    combine = cfg.MODEL.PANOPTIC_FPN.COMBINE
    panoptic = combine_semantic_and_instance_outputs(instances, sem_seg.argmax(dim=0), combine.OVERLAP_THRESH,
                                                     combine.STUFF_AREA_LIMIT, combine.INSTANCES_CONFIDENCE_THRESH)
    return {"sem_seg": sem_seg, "instances": instances, "panoptic_seg": panoptic}
