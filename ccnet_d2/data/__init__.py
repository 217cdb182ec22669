"""Datasets, mappers and augmentations of ccnet_d2 (importing registers the datasets)."""
from . import datasets  # noqa: F401  (registration)
from .augmentations import (
    HFlipSwapLabelsTransform,
    RandomHFlipSwapLabels,
    RandomScale,
    build_semantic_train_augmentations,
)
from .checks import check_dataset_available
from .clip_mapper import ClipDatasetMapper, build_clip_mapper
from .mappers import build_train_mapper, is_semantic_segmentation
from .scan import scan_dataset
from .test_resize import OpenCVRescale, build_test_resize
