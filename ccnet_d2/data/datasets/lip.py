"""LIP (Look Into Person) single-person human parsing: ``lip_sem_seg_train`` and ``lip_sem_seg_val``.

Under ``$DETECTRON2_DATASETS/LIP``, in the official release's layout or in the flat layout of the CE2P
and SCHP human-parsing code, whichever holds a split's files when the datasets are registered (the trees:
docs/DATASETS.md, and ``EXPECTED_TREES`` in ``ccnet_d2.data.checks``). Labels are 0-19 (0 = Background)
in single-channel PNGs; 30462 training and 10000 validation images.
"""
import os

from .split_list import register_split_list_sem_seg

__all__ = ["LIP_CLASSES", "LIP_FLIP_PAIRS", "LIP_LAYOUTS", "lip_layout", "register_all_lip"]

LIP_CLASSES = [
    "Background", "Hat", "Hair", "Glove", "Sunglasses", "UpperClothes", "Dress", "Coat", "Socks", "Pants",
    "Jumpsuits", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg", "Left-shoe",
    "Right-shoe",
]
# Class ids that exchange on a horizontal flip: (Left-arm, Right-arm), (Left-leg, Right-leg), (Left-shoe, Right-shoe).
LIP_FLIP_PAIRS = [(14, 15), (16, 17), (18, 19)]

# layout -> (image folder, label folder, id list) of a split, relative to the dataset root; the first
# layout is the default, the one named when a split is in neither.
LIP_LAYOUTS = {
    "official": ("LIP/TrainVal_images/{split}_images", "LIP/TrainVal_parsing_annotations/{split}_segmentations",
                 "LIP/TrainVal_images/{split}_id.txt"),
    "flat": ("LIP/{split}_images", "LIP/{split}_segmentations", "LIP/{split}_id.txt"),  # CE2P / SCHP
}


def lip_layout(root: str, split: str) -> str:
    """The first layout of ``LIP_LAYOUTS`` whose folders and id list of ``split`` all exist under ``root``."""
    for layout, paths in LIP_LAYOUTS.items():
        if all(os.path.exists(os.path.join(root, p.format(split=split))) for p in paths):
            return layout
    return next(iter(LIP_LAYOUTS))


def register_all_lip(root):
    """Register the LIP splits with their files under ``root``, each in the layout found there."""
    for split in ("train", "val"):
        image_dir, gt_dir, split_file = (os.path.join(root, p.format(split=split))
                                         for p in LIP_LAYOUTS[lip_layout(root, split)])
        register_split_list_sem_seg(f"lip_sem_seg_{split}", image_dir, gt_dir, split_file,
                                    stuff_classes=list(LIP_CLASSES), flip_pairs=[tuple(p) for p in LIP_FLIP_PAIRS])

