"""LIP (Look Into Person) single-person human parsing: ``lip_sem_seg_train`` and ``lip_sem_seg_val``.

The official release unpacked under ``$DETECTRON2_DATASETS/LIP`` (the tree: docs/DATASETS.md, and
``EXPECTED_TREES`` in ``ccnet_d2.data.checks``). Labels are 0-19 (0 = Background) in single-channel
PNGs; 30462 training and 10000 validation images.
"""
import os

from .split_list import register_split_list_sem_seg

__all__ = ["LIP_CLASSES", "LIP_FLIP_PAIRS", "register_all_lip"]

LIP_CLASSES = [
    "Background", "Hat", "Hair", "Glove", "Sunglasses", "UpperClothes", "Dress", "Coat", "Socks", "Pants",
    "Jumpsuits", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg", "Left-shoe",
    "Right-shoe",
]
# Class ids that exchange on a horizontal flip: (Left-arm, Right-arm), (Left-leg, Right-leg), (Left-shoe, Right-shoe).
LIP_FLIP_PAIRS = [(14, 15), (16, 17), (18, 19)]

# name -> (image folder, label folder, id list), relative to the dataset root.
_LIP_SPLITS = {
    "lip_sem_seg_train": ("LIP/TrainVal_images/train_images",
                          "LIP/TrainVal_parsing_annotations/train_segmentations",
                          "LIP/TrainVal_images/train_id.txt"),
    "lip_sem_seg_val": ("LIP/TrainVal_images/val_images",
                        "LIP/TrainVal_parsing_annotations/val_segmentations",
                        "LIP/TrainVal_images/val_id.txt"),
}


def register_all_lip(root):
    """Register the LIP splits with their files under ``root``."""
    for name, (image_dir, gt_dir, split_file) in _LIP_SPLITS.items():
        register_split_list_sem_seg(
            name, os.path.join(root, image_dir), os.path.join(root, gt_dir), os.path.join(root, split_file),
            stuff_classes=list(LIP_CLASSES), flip_pairs=[tuple(p) for p in LIP_FLIP_PAIRS])

