"""What ``DefaultPredictor`` does around the model, for the exported graphs: the image in, the result out.

The exported graphs take the resized image and return results at that size (docs/DEPLOYMENT.md, "What is
exported"). Fed an image as it comes, at another size than the config's test resize, they compute
something else than the predictor. These functions are the predictor's own steps, for a runtime that has
this package at hand:

- :func:`preprocess`: the checked image (``check_image_input``) in ``INPUT.FORMAT``, resized by the
  config's test-time resize (``ccnet_d2.data.build_test_resize``, as the predictor), as the ``[3, h, w]``
  float32 array both graphs take;
- :func:`semantic_postprocess`: the segmentor's logits resized back to the image (bilinear, with the
  head's ``align_corners``), ``{"sem_seg": K x H x W}`` as the predictor returns;
- :func:`instance_postprocess`: Detectron2's ``detector_postprocess`` (boxes scaled back, the 28x28
  masks pasted into the image), ``{"instances": Instances}`` as the predictor returns.
"""
from typing import Sequence, Tuple

import numpy as np
import torch
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances
from torch.nn import functional as F

from ..data.image_input import check_image_input
from ..data.test_resize import build_test_resize

__all__ = ["preprocess", "semantic_postprocess", "instance_postprocess"]


def preprocess(image_bgr: np.ndarray, cfg) -> np.ndarray:
    """The graphs' ``image`` input for an ``HxWx3`` BGR image (what ``DefaultPredictor`` takes): ``[3, h, w]``
    float32 0..255 in ``cfg.INPUT.FORMAT``, resized as the predictor resizes."""
    image = check_image_input(image_bgr)
    if cfg.INPUT.FORMAT == "RGB":
        image = image[:, :, ::-1]
    image = build_test_resize(cfg).get_transform(image).apply_image(image)
    return np.ascontiguousarray(image.astype(np.float32).transpose(2, 0, 1))


def semantic_postprocess(logits: np.ndarray, image_size: Tuple[int, int], cfg) -> dict:
    """``{"sem_seg": K x H x W}`` logits at the original ``image_size`` (H, W) from the segmentor's
    ``logits`` output (``[1, K, h, w]``), as ``CCNetSegmentor`` returns them through the predictor."""
    logits = torch.as_tensor(np.asarray(logits))
    resized = F.interpolate(logits, size=tuple(image_size), mode="bilinear",
                            align_corners=cfg.MODEL.SEM_SEG_HEAD.ALIGN_CORNERS)
    return {"sem_seg": resized[0]}


def instance_postprocess(outputs: Sequence[np.ndarray], image_size: Tuple[int, int], cfg) -> dict:
    """``{"instances": Instances}`` at the original ``image_size`` (H, W) from Mask R-CNN's outputs
    (boxes, classes, masks, scores, image_size, in the graph's order), as ``GeneralizedRCNN`` returns
    them through the predictor."""
    boxes, classes, masks, scores, input_size = (torch.as_tensor(np.asarray(o)) for o in outputs)
    instances = Instances(tuple(int(s) for s in input_size))
    instances.pred_boxes = Boxes(boxes)
    instances.scores, instances.pred_classes = scores, classes
    if cfg.MODEL.MASK_ON:
        instances.pred_masks = masks
    return {"instances": detector_postprocess(instances, *image_size)}
