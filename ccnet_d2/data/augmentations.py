"""Training augmentations of the semantic-segmentation models.

CCNet's recipe (paper, Cityscapes): random scale 0.75-2.0, random crop (769x769), horizontal flip; the
official code pads labels with 255 when the scaled image is smaller than the crop. Human parsing (LIP)
needs a flip that also swaps the left/right part labels, which Detectron2's ``RandomFlip`` cannot do.
Everything here is a Detectron2 ``Augmentation``/``Transform``, so it runs inside ``DatasetMapper``.
"""
import logging

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from PIL import Image

__all__ = [
    "HFlipSwapLabelsTransform",
    "RandomHFlipSwapLabels",
    "RandomScale",
    "build_semantic_train_augmentations",
    "train_flip_pairs",
]

logger = logging.getLogger(__name__)


class HFlipSwapLabelsTransform(T.HFlipTransform):
    """Horizontal flip whose segmentation also exchanges paired class ids (e.g. Left-arm <-> Right-arm).

    Mirroring a person turns the left arm into the right one; flipping the pixels alone would leave it
    labelled "Left-arm". Images, boxes and coordinates flip exactly as in ``HFlipTransform``.
    """

    def __init__(self, width: int, flip_pairs):
        super().__init__(width)
        self.flip_pairs = tuple((int(a), int(b)) for a, b in flip_pairs)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        flipped = super().apply_segmentation(segmentation)
        swapped = flipped.copy()
        for left, right in self.flip_pairs:
            swapped[flipped == left] = right
            swapped[flipped == right] = left
        return swapped

    def inverse(self):
        """Flipping and swapping twice is the identity, so the transform is its own inverse."""
        return HFlipSwapLabelsTransform(self.width, self.flip_pairs)


class RandomHFlipSwapLabels(T.Augmentation):
    """With probability ``prob``, apply :class:`HFlipSwapLabelsTransform` with the given ``flip_pairs``."""

    def __init__(self, flip_pairs, prob: float = 0.5):
        super().__init__()
        self._init(locals())

    def get_transform(self, image):
        if self._rand_range() < self.prob:
            return HFlipSwapLabelsTransform(image.shape[1], self.flip_pairs)
        return T.NoOpTransform()


class RandomScale(T.Augmentation):
    """Resize the image by a factor drawn uniformly from ``[min_scale, max_scale]`` (aspect ratio kept).

    Unlike ``ResizeShortestEdge``/``ResizeScale`` the factor is relative to the image itself, as in
    CCNet's "random scale 0.75-2.0". Labels are resized with nearest-neighbour (``ResizeTransform``).
    """

    def __init__(self, min_scale: float, max_scale: float, interp=Image.BILINEAR):
        super().__init__()
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"RandomScale needs 0 < min_scale <= max_scale, got ({min_scale}, {max_scale})")
        self._init(locals())

    def get_transform(self, image):
        height, width = image.shape[:2]
        scale = self._rand_range(self.min_scale, self.max_scale)
        new_height = max(1, int(round(height * scale)))
        new_width = max(1, int(round(width * scale)))
        return T.ResizeTransform(height, width, new_height, new_width, self.interp)


def train_flip_pairs(dataset_names):
    """The ``flip_pairs`` metadata shared by all ``dataset_names`` (None when none of them has any).

    Mixing datasets with different left/right pairs in one training set is refused: no single flip
    could be right for all of them.
    """
    pairs = {name: MetadataCatalog.get(name).get("flip_pairs", None) for name in dataset_names}
    distinct = {tuple(map(tuple, p)) if p is not None else None for p in pairs.values()}
    if len(distinct) > 1:
        raise ValueError(f"Training datasets disagree on the left/right label pairs to swap on flip "
                         f"(metadata 'flip_pairs'): {pairs}. Train on datasets that share one label set.")
    return distinct.pop() if distinct else None


def _flip_augmentations(cfg):
    flip = cfg.INPUT.RANDOM_FLIP
    if flip == "none":
        return []
    if flip not in ("horizontal", "vertical"):
        raise ValueError(f"INPUT.RANDOM_FLIP must be 'horizontal', 'vertical' or 'none', got {flip!r}")
    flip_pairs = train_flip_pairs(cfg.DATASETS.TRAIN)
    if flip == "horizontal" and flip_pairs:
        return [RandomHFlipSwapLabels(flip_pairs)]
    return [T.RandomFlip(horizontal=flip == "horizontal", vertical=flip == "vertical")]


def build_semantic_train_augmentations(cfg):
    """The training augmentation list of the semantic-segmentation models, in order:

    1. optional ``ResizeShortestEdge`` (``INPUT.SEM_SEG_RESIZE_SHORTEST_EDGE``, ADE20K-style sizes);
    2. :class:`RandomScale` over ``INPUT.SCALE_RANGE`` (skipped for ``(1, 1)``);
    3. ``RandomCrop_CategoryAreaConstraint`` (``INPUT.CROP.*``; images smaller than the crop are kept
       whole), then, for an ``absolute`` crop with ``INPUT.CROP.PAD``, padding up to the crop size with
       the ignore label in the segmentation (``FixedSizeCrop``'s padding, bottom/right);
    4. flip per ``INPUT.RANDOM_FLIP``; a horizontal flip swaps left/right labels when the training
       datasets' metadata has ``flip_pairs`` (LIP).
    """
    ignore_value = cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE
    augmentations = []
    if cfg.INPUT.SEM_SEG_RESIZE_SHORTEST_EDGE:
        augmentations.append(T.ResizeShortestEdge(
            cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING))
    min_scale, max_scale = cfg.INPUT.SCALE_RANGE
    if (min_scale, max_scale) != (1.0, 1.0):
        augmentations.append(RandomScale(min_scale, max_scale))
    if cfg.INPUT.CROP.ENABLED:
        augmentations.append(T.RandomCrop_CategoryAreaConstraint(
            cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE, cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA, ignore_value))
        if cfg.INPUT.CROP.PAD and cfg.INPUT.CROP.TYPE == "absolute":
            # The image pad value is the mean of PIXEL_MEAN, close to the zero that normalisation gives.
            augmentations.append(T.FixedSizeCrop(
                tuple(cfg.INPUT.CROP.SIZE), pad=True, pad_value=float(np.mean(cfg.MODEL.PIXEL_MEAN)),
                seg_pad_value=ignore_value))
    augmentations.extend(_flip_augmentations(cfg))
    logger.info(f"Semantic-segmentation training augmentations: {augmentations}")
    return augmentations
