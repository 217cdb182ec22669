"""CCNetSegmentor: Detectron2's SemanticSegmentor with CCNet's test-time inference modes."""
import functools
import logging
from typing import Dict, List, Sequence, Tuple

import torch
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.modeling import META_ARCH_REGISTRY, SemanticSegmentor
from detectron2.structures import ImageList

from ..test_time_augmentation import multi_scale_logits, sliding_window_logits

__all__ = ["CCNetSegmentor", "INFERENCE_MODES"]

INFERENCE_MODES = ("whole", "slide")
_logger = logging.getLogger(__name__)


@META_ARCH_REGISTRY.register()
class CCNetSegmentor(SemanticSegmentor):
    """Backbone + semantic head, returning ``[{"sem_seg": K x H x W logits}]`` like SemanticSegmentor
    (so DefaultPredictor and Visualizer work unchanged), with inference chosen in the config:
    whole image or sliding window (``TEST.SEM_SEG.MODE``); with ``TEST.AUG.ENABLED``, at the scales
    ``TEST.SEM_SEG.SCALES`` and, when ``TEST.AUG.FLIP``, on the mirrored image too.

    With ``pad_to_stride`` (the default), images are padded to a multiple of the feature stride (8 for
    the dilated ResNet), in training and inference alike, so that every feature cell covers whole
    pixels and the logits are upsampled by an integer factor. Without it, any size runs as it is and
    the logits are resized to the input, as the official CCNet network and mmsegmentation do; with
    RCCA attending across the whole map, the two give different outputs for the same weights. At
    inference each image is processed on its own, so no image sees another's padding.
    ``inference_mode`` describes the mode in words; it is logged when evaluation starts.
    """

    @configurable
    def __init__(self, *, mode: str = "whole", crop_size: Tuple[int, int] = (769, 769),
                 stride: Tuple[int, int] = (513, 513), scales: Sequence[float] = (1.0,), flip: bool = False,
                 flip_pairs: Sequence[Tuple[int, int]] = (), pad_to_stride: bool = True, **kwargs):
        """
        Args:
            mode: "whole" or "slide".
            crop_size, stride: sliding-window crop and stride (h, w), used when mode is "slide".
            scales, flip: test scales and flip test-time augmentation (averaged logits).
            flip_pairs: (left, right) class pairs swapped back after a flip (human parsing).
            pad_to_stride: pad inputs to a multiple of the feature stride (see the class docstring).
            kwargs: SemanticSegmentor's arguments (backbone, sem_seg_head, pixel_mean, pixel_std).
        """
        super().__init__(**kwargs)
        if mode not in INFERENCE_MODES:
            raise ValueError(f"CCNetSegmentor: TEST.SEM_SEG.MODE must be one of {INFERENCE_MODES}, got {mode!r}")
        if len(crop_size) != 2 or len(stride) != 2 or min(*crop_size, *stride) <= 0:
            raise ValueError(f"CCNetSegmentor: TEST.SEM_SEG.CROP_SIZE and STRIDE must be two positive "
                             f"integers (h, w), got {list(crop_size)} and {list(stride)}")
        if not scales or min(scales) <= 0:
            raise ValueError(f"CCNetSegmentor: TEST.SEM_SEG.SCALES must be positive numbers, got {list(scales)}")
        self.mode = mode
        self.crop_size, self.stride = tuple(crop_size), tuple(stride)
        self.scales, self.flip = tuple(scales), flip
        self.flip_pairs = tuple(tuple(pair) for pair in flip_pairs)
        strides = [shape.stride for shape in self.backbone.output_shape().values()]
        self.pad_to_stride = pad_to_stride
        self.size_divisibility = max([self.backbone.size_divisibility] + strides) if pad_to_stride else 1
        self._mode_logged = False
        self._range_warned = False

    @classmethod
    def from_config(cls, cfg):
        test, augment = cfg.TEST.SEM_SEG, cfg.TEST.AUG.ENABLED
        if not augment and list(test.SCALES) != [1.0]:
            raise ValueError(f"TEST.SEM_SEG.SCALES is {list(test.SCALES)}, but test-time augmentation is off: set "
                             "TEST.AUG.ENABLED True to use these scales (and TEST.AUG.FLIP for flipping), or "
                             "TEST.SEM_SEG.SCALES [1.0]")
        flip_pairs = [tuple(p) for p in test.FLIP_PAIRS]
        if not flip_pairs and cfg.DATASETS.TEST:
            flip_pairs = [tuple(p) for p in MetadataCatalog.get(cfg.DATASETS.TEST[0]).get("flip_pairs", [])]
        return {
            **super().from_config(cfg),
            "mode": test.MODE,
            "crop_size": tuple(test.CROP_SIZE),
            "stride": tuple(test.STRIDE),
            "scales": tuple(test.SCALES),
            "flip": augment and cfg.TEST.AUG.FLIP,
            "flip_pairs": flip_pairs,
            "pad_to_stride": cfg.MODEL.CCNET.PAD_TO_STRIDE,
        }

    @property
    def inference_mode(self) -> str:
        """The inference mode in words, e.g. 'slide 769x769 stride 513x513, scales [1.0], no flip'."""
        base = "whole image" if self.mode == "whole" else (
            f"slide {self.crop_size[0]}x{self.crop_size[1]} stride {self.stride[0]}x{self.stride[1]}")
        flip = "no flip" if not self.flip else (
            f"flip (swapping class pairs {list(self.flip_pairs)})" if self.flip_pairs else "flip")
        return f"{base}, scales {list(self.scales)}, {flip}"

    def train(self, mode: bool = True):
        self._mode_logged = False
        return super().train(mode)

    def check_image(self, image: torch.Tensor, index: int) -> None:
        """Refuse an image of the wrong rank or channel count; at inference, warn once when a float
        image looks scaled to 0..1 (the model expects 0..255, Detectron2's convention): values within
        [-1, 1] that are not all whole numbers, so that a dark 8-bit image (0s and 1s) passes."""
        channels = self.pixel_mean.shape[0]
        if image.dim() != 3 or image.shape[0] != channels:
            raise ValueError(f"CCNetSegmentor: input {index} has an 'image' of shape {tuple(image.shape)}; expected "
                             f"[{channels}, H, W] with values 0..255 (what DefaultPredictor and the dataset "
                             "mappers give)")
        if not self.training and not self._range_warned and image.is_floating_point() and image.numel() \
                and image.abs().max() <= 1.0 and (image != image.round()).any():
            _logger.warning("CCNetSegmentor: input %d has fractional values within [-1, 1]; the model expects "
                            "0..255 (Detectron2's convention): multiply the image by 255", index)
            self._range_warned = True

    def normalized_input(self, inputs: Dict, index: int) -> torch.Tensor:
        """The network input of one batched input after the checks: its normalised [C, H, W] image."""
        self.check_image(inputs["image"], index)
        return (inputs["image"].to(self.device) - self.pixel_mean) / self.pixel_std

    def features(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The head's input features for a batch of normalised network inputs: the backbone's."""
        return self.backbone(images)

    def forward(self, batched_inputs: List[Dict]):
        images = [self.normalized_input(x, index) for index, x in enumerate(batched_inputs)]
        if self.training:
            images = ImageList.from_tensors(images, self.size_divisibility)
            if "sem_seg" not in batched_inputs[0]:
                raise ValueError("CCNetSegmentor: training inputs need a 'sem_seg' ground-truth tensor")
            targets = [x["sem_seg"].to(self.device) for x in batched_inputs]
            targets = ImageList.from_tensors(targets, self.size_divisibility, self.sem_seg_head.ignore_value).tensor
            _, losses = self.sem_seg_head(self.features(images.tensor), targets)
            return losses
        if not self._mode_logged:
            _logger.info("CCNetSegmentor inference: %s", self.inference_mode)
            self._mode_logged = True
        results = []
        for image, inputs in zip(images, batched_inputs):
            logits = self.inference_logits(image.unsqueeze(0))[0]
            size = image.shape[-2:]
            height, width = inputs.get("height", size[0]), inputs.get("width", size[1])
            if (height, width) != tuple(size):  # back to the original image, with the head's align_corners
                logits = self.sem_seg_head.upsample(logits.unsqueeze(0), (height, width))[0]
            results.append({"sem_seg": logits})
        return results

    def inference_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits [N, K, H, W] of normalised images [N, C, H, W] in the configured inference mode."""
        base = self.network_logits
        if self.mode == "slide":
            base = functools.partial(sliding_window_logits, logits_fn=self.network_logits,
                                     crop_size=self.crop_size, stride=self.stride)
        return multi_scale_logits(images, base, self.scales, self.flip, self.flip_pairs)

    def network_logits(self, images: torch.Tensor) -> torch.Tensor:
        """One network pass: pad to the size divisibility (1 without ``pad_to_stride``), run backbone and
        head, upsample the logits to the padded size and crop the padding off."""
        height, width = images.shape[-2:]
        pad_h, pad_w = -height % self.size_divisibility, -width % self.size_divisibility
        padded = F.pad(images, (0, pad_w, 0, pad_h))
        logits = self.sem_seg_head.upsample(self.sem_seg_head.layers(self.features(padded)), padded.shape[-2:])
        # The crop as a negative padding: a torch.export graph then holds for every size, where a
        # slice would fix whether the sample needed padding.
        return F.pad(logits, (0, -pad_w, 0, -pad_h))
