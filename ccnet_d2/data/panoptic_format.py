"""The COCO format's arithmetic: segment ids stored as RGB PNGs and their agreement with ``segments_info``,
a mask's RLE annotation fields, and the stuff-only label map Panoptic FPN's semantic branch trains on
(Detectron2's "separated" convention: 0 = any thing)."""
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

__all__ = ["ids_to_rgb", "rgb_to_ids", "read_panoptic_png", "segment_id_mismatch", "rle_fields",
           "segments_to_stuff_labels", "VOID_ID"]

VOID_ID = 0  # the segment id of unlabelled pixels in a COCO panoptic PNG


def ids_to_rgb(segment_ids: np.ndarray) -> np.ndarray:
    """Segment ids (int HxW, < 2^24) to the RGB image COCO panoptic stores (uint8 HxWx3): id = R + 256 G + 256^2 B."""
    segment_ids = np.asarray(segment_ids, dtype=np.int64)
    if segment_ids.size and (segment_ids.min() < 0 or segment_ids.max() >= 256 ** 3):
        raise ValueError(f"panoptic segment ids must be in [0, 2^24), got {segment_ids.min()}..{segment_ids.max()}")
    return np.stack([(segment_ids >> shift) & 255 for shift in (0, 8, 16)], axis=-1).astype(np.uint8)


def rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    """The segment ids (int64 HxW) of a COCO panoptic PNG read as RGB (HxWx3)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"a COCO panoptic PNG is RGB (HxWx3), got an array of shape {rgb.shape}")
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def read_panoptic_png(path: str) -> np.ndarray:
    """The segment ids (int64 HxW) of the COCO panoptic PNG at ``path``."""
    return rgb_to_ids(np.asarray(Image.open(path).convert("RGB")))


def segment_id_mismatch(found_ids: Iterable[int], segments: Sequence[dict]) -> Tuple[List[int], List[int]]:
    """(ids found in a panoptic PNG but not listed in its ``segments``, ids listed but not found), sorted;
    ``found_ids`` may include the void id, which is never a segment."""
    found = {int(i) for i in found_ids} - {VOID_ID}
    listed = {int(s["id"]) for s in segments}
    return sorted(found - listed), sorted(listed - found)


def rle_fields(mask: np.ndarray) -> dict:
    """A COCO instance annotation's ``segmentation`` (RLE, counts as text), ``area`` and ``bbox`` (XYWH) of a
    binary HxW mask."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
            "area": float(mask_util.area(rle)), "bbox": [float(v) for v in mask_util.toBbox(rle)]}


def segments_to_stuff_labels(segment_ids: np.ndarray, segments: Sequence[dict], stuff_id_to_label: Dict[int, int],
                             thing_ids: Iterable[int], ignore_label: int = 255) -> np.ndarray:
    """The stuff-only label map (uint8 HxW) of one panoptic annotation: pixels of thing segments are 0,
    pixels of a stuff segment its label in ``stuff_id_to_label`` (dataset category id -> label), pixels of
    no segment (void) ``ignore_label``. A segment of an unknown category raises ValueError."""
    thing_ids = set(thing_ids)
    labels = np.full(np.shape(segment_ids), ignore_label, np.uint8)
    for segment in segments:
        category = segment["category_id"]
        if category in thing_ids:
            label = 0
        elif category in stuff_id_to_label:
            label = stuff_id_to_label[category]
        else:
            raise ValueError(f"segment {segment['id']} has category_id {category}, which is neither a thing "
                             f"{sorted(thing_ids)} nor a stuff category {sorted(stuff_id_to_label)}")
        labels[segment_ids == segment["id"]] = label
    return labels
