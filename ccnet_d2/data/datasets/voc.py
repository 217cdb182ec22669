"""Pascal VOC 2012 semantic segmentation with the SBD augmented training set.

``voc_2012_sem_seg_train_aug`` (10582 images: SBD train+val and VOC train, minus VOC val) and
``voc_2012_sem_seg_val`` (1449 images), both read from ``SegmentationClassAug``: single-channel PNGs
made by ``tools/prepare_voc_sbd.py`` (VOC's own palette PNGs would be read as grey levels by
Detectron2's ``read_image(..., "L")``, so they are converted too). The tree under
``$DETECTRON2_DATASETS``: docs/DATASETS.md, and ``EXPECTED_TREES`` in ``ccnet_d2.data.checks``.
"""
import os

from .split_list import register_split_list_sem_seg

__all__ = ["VOC_CLASSES", "register_all_voc_sem_seg"]

VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]

_VOC_DIR = "VOCdevkit/VOC2012"
# name -> id list under VOC2012/ImageSets/Segmentation.
_VOC_SPLITS = {"voc_2012_sem_seg_train_aug": "train_aug.txt", "voc_2012_sem_seg_val": "val.txt"}


def register_all_voc_sem_seg(root):
    """Register the VOC 2012 (+SBD) semantic-segmentation splits with their files under ``root``."""
    voc = os.path.join(root, _VOC_DIR)
    for name, split_file in _VOC_SPLITS.items():
        register_split_list_sem_seg(
            name, os.path.join(voc, "JPEGImages"), os.path.join(voc, "SegmentationClassAug"),
            os.path.join(voc, "ImageSets", "Segmentation", split_file), stuff_classes=list(VOC_CLASSES))

