"""Checks of semantic-segmentation label files, so that a bad label stops a run with its path instead of
an index error deep in a loss, a broadcast error in the evaluator, or silently wrong numbers.

Detectron2 reads training labels as grey levels: a colour PNG becomes luminance and a palette PNG's
indices become the luminance of their colours, both landing on plausible class ids. Its evaluator
reads them as they are, and counts ids past the class count as other classes without a word.
"""
from typing import Tuple

import numpy as np
from PIL import Image

__all__ = ["SINGLE_CHANNEL_MODES", "check_label_file", "check_label_matches_image", "check_label_values",
           "load_checked_label"]

# PIL modes of single-channel integer images (8-bit, 32-bit, 16-bit).
SINGLE_CHANNEL_MODES = ("L", "I", "I;16", "I;16B", "I;16L")


def check_label_file(path: str) -> Tuple[int, int]:
    """Refuse a label that is not a single-channel image of class ids; return its (width, height)."""
    with Image.open(path) as image:
        mode, size = image.mode, image.size
    if mode == "P":
        raise ValueError(f"label {path!r} is a palette ('P') image: read as grey levels, its indices would become "
                         "the luminance of their colours. Convert it to single-channel class ids (mode 'L'; "
                         "tools/prepare_voc_sbd.py does this for Pascal VOC)")
    if mode not in SINGLE_CHANNEL_MODES:
        raise ValueError(f"label {path!r} is a {mode!r} image; expected single-channel class ids (mode 'L'), "
                         "not colours: map each colour to its class id first")
    return size


def check_label_values(labels: np.ndarray, path: str, num_classes: int, ignore_label: int) -> None:
    """Refuse label values that are neither a class id (0..num_classes-1) nor ``ignore_label``."""
    values = np.unique(labels)
    bad = values[((values < 0) | (values >= num_classes)) & (values != ignore_label)]
    if bad.size:
        raise ValueError(f"label {path!r} holds values {bad[:10].tolist()}{' ...' if bad.size > 10 else ''} that are "
                         f"neither a class id (0..{num_classes - 1}) nor the ignore value {ignore_label}; check the "
                         "dataset's class count (MODEL.SEM_SEG_HEAD.NUM_CLASSES) or its preparation")


def load_checked_label(path: str, num_classes: int, ignore_label: int, dtype=int) -> np.ndarray:
    """A label file as an array, after both checks (the loader of the semantic-segmentation evaluator)."""
    check_label_file(path)
    with Image.open(path) as image:
        labels = np.array(image, dtype=dtype)
    check_label_values(labels, path, num_classes, ignore_label)
    return labels


def check_label_matches_image(label_path: str, label_shape: Tuple[int, int], image_path: str) -> None:
    """Refuse a label whose (height, width) differs from its image's (read from the image header only)."""
    with Image.open(image_path) as image:
        width, height = image.size
    if (height, width) != tuple(label_shape):
        raise ValueError(f"label {label_path!r} is {label_shape[1]}x{label_shape[0]} (WxH) but its image "
                         f"{image_path!r} is {width}x{height}")
