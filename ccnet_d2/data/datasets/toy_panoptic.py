"""The built-in toy panoptic dataset: the toy dataset's shapes (things) over a background cut into regions
of three textures (stuff), generated on first use in the COCO panoptic format and in the "separated" form
Panoptic FPN trains on (Detectron2's ``register_coco_panoptic_separated`` layout):

    <root>/toy_panoptic_v1/
        train/images/000000.png ...          val/...
        train/panoptic/000000.png ...        (COCO panoptic PNG: segment id = R + 256 G + 256^2 B, 0 = void)
        train/panoptic_stuff/000000.png ...  (0 = any thing, k = stuff class k, uint8)
        annotations/panoptic_{train,val}.json   (COCO panoptic: images, annotations/segments_info, categories)
        annotations/instances_{train,val}.json  (COCO instances of the things, RLE masks)

Category ids: the things 1-3 (circle, triangle, square, as in the toy dataset), the stuff 4-6 (stripes,
checks, plain). Every pixel belongs to a segment (no void). ``<root>`` is the toy dataset's
(``ccnet_d2.data.datasets.toy.toy_root``). Registered names: ``ccnet_toy_panoptic_{train,val}``
(evaluator "coco_panoptic_seg"; records with ``annotations``, ``sem_seg_file_name``,
``pan_seg_file_name`` and ``segments_info``). Deterministic, written atomically and generated again when
incomplete, as the toy dataset.
"""
import json
import os

import cv2
import numpy as np

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..panoptic_format import ids_to_rgb, rle_fields, segments_to_stuff_labels
from . import toy
from .panoptic_separated import load_separated_panoptic, separated_metadata

__all__ = ["TOY_STUFF_CLASSES", "TOY_PANOPTIC_SPLITS", "ensure_toy_panoptic_dataset", "register_all_toy_panoptic",
           "toy_panoptic_metadata"]

TOY_STUFF_CLASSES = ("stripes", "checks", "plain")  # the background textures of ``toy._background``
# split -> (number of images, seed)
TOY_PANOPTIC_SPLITS = {"train": (600, 21), "val": (100, 22)}
THING_IDS = (1, 2, 3)
STUFF_IDS = (4, 5, 6)
MIN_REGION_FRACTION = 0.12  # each background region covers at least this much of the image
TEXTURE_STRENGTH = (35, 60)  # amplitude of the stuff textures: the toy dataset's 10-30 is near its pixel noise
VERSION = "toy_panoptic_v1"


CATEGORIES = ([{"id": d, "name": n, "isthing": 1} for d, n in zip(THING_IDS, toy.TOY_CLASSES)]
              + [{"id": d, "name": n, "isthing": 0} for d, n in zip(STUFF_IDS, TOY_STUFF_CLASSES)])


def toy_panoptic_metadata() -> dict:
    """The metadata of the registered splits, in Detectron2's "separated" convention: thing classes
    contiguous from 0, stuff classes from 1 with 0 standing for all things."""
    return {**separated_metadata(CATEGORIES), "ignore_label": 255, "label_divisor": 1000,
            "evaluator_type": "coco_panoptic_seg"}


def _regions(rng) -> np.ndarray:
    """The background cut by one or two random lines through the middle half of the image: a cell index
    per pixel (int HxW), every cell at least ``MIN_REGION_FRACTION`` of the image."""
    size = toy.IMAGE_SIZE
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    while True:
        cells = np.zeros((size, size), np.int64)
        for bit in range(rng.randint(1, 3)):
            px, py = rng.uniform(0.25 * size, 0.75 * size, size=2)
            angle = rng.uniform(0, np.pi)
            cells |= (((xx - px) * np.sin(angle) - (yy - py) * np.cos(angle)) > 0).astype(np.int64) << bit
        areas = np.bincount(cells.ravel())
        if areas[areas > 0].min() >= MIN_REGION_FRACTION * size * size:
            return cells


def _stuff_background(rng):
    """(BGR image, stuff class per pixel 0..2): each cell of ``_regions`` textured as ``toy._background``
    draws it, with its own colours and a random texture class."""
    cells = _regions(rng)
    image = np.zeros((toy.IMAGE_SIZE, toy.IMAGE_SIZE, 3), np.uint8)
    stuff = np.zeros(cells.shape, np.int64)
    for cell in np.unique(cells):
        kind = rng.randint(len(TOY_STUFF_CLASSES))
        inside = cells == cell
        image[inside] = toy._background(rng, texture=TOY_STUFF_CLASSES[kind], strength=TEXTURE_STRENGTH)[inside]
        stuff[inside] = kind
    return image, stuff


def _bbox(mask: np.ndarray) -> list:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def _write_split(folder: str, split: str) -> None:
    count, seed = TOY_PANOPTIC_SPLITS[split]
    rng = np.random.RandomState(seed)
    for sub in ("images", "panoptic", "panoptic_stuff"):
        os.makedirs(os.path.join(folder, split, sub))
    metadata = toy_panoptic_metadata()
    images, panoptic_annotations, instance_annotations = [], [], []
    for image_id in range(count):
        background, stuff = _stuff_background(rng)
        image, instances, _ = toy._make_image(rng, background)
        segment_ids = np.zeros(stuff.shape, np.int64)
        segments = []
        for category, visible in instances:  # things: one segment per shape
            segments.append({"id": len(segments) + 1, "category_id": THING_IDS[category], "iscrowd": 0})
            segment_ids[visible] = segments[-1]["id"]
            instance_annotations.append({"id": len(instance_annotations) + 1, "image_id": image_id,
                                         "category_id": THING_IDS[category], "iscrowd": 0, **rle_fields(visible)})
        uncovered = segment_ids == 0
        for kind in np.unique(stuff[uncovered]):  # stuff: one segment per class, what the things leave
            segments.append({"id": len(segments) + 1, "category_id": STUFF_IDS[kind], "iscrowd": 0})
            segment_ids[uncovered & (stuff == kind)] = segments[-1]["id"]
        for segment in segments:
            mask = segment_ids == segment["id"]
            segment.update(area=int(mask.sum()), bbox=_bbox(mask))
        name = f"{image_id:06d}.png"
        cv2.imwrite(os.path.join(folder, split, "images", name), image)
        cv2.imwrite(os.path.join(folder, split, "panoptic", name), ids_to_rgb(segment_ids)[:, :, ::-1])
        cv2.imwrite(os.path.join(folder, split, "panoptic_stuff", name),
                    segments_to_stuff_labels(segment_ids, segments, metadata["stuff_dataset_id_to_contiguous_id"],
                                             set(THING_IDS)))
        images.append({"id": image_id, "file_name": name, "height": toy.IMAGE_SIZE, "width": toy.IMAGE_SIZE})
        panoptic_annotations.append({"image_id": image_id, "file_name": name, "segments_info": segments})
    with open(os.path.join(folder, "annotations", f"panoptic_{split}.json"), "w") as f:
        json.dump({"images": images, "annotations": panoptic_annotations, "categories": CATEGORIES}, f)
    with open(os.path.join(folder, "annotations", f"instances_{split}.json"), "w") as f:
        json.dump({"images": images, "annotations": instance_annotations, "categories": CATEGORIES[:3]}, f)


def _write_tree(folder: str) -> None:
    os.makedirs(os.path.join(folder, "annotations"))
    for split in TOY_PANOPTIC_SPLITS:
        _write_split(folder, split)


def _missing_parts(target: str) -> list:
    missing = []
    for split, (count, _) in TOY_PANOPTIC_SPLITS.items():
        for kind in ("panoptic", "instances"):
            path = os.path.join(target, "annotations", f"{kind}_{split}.json")
            if not os.path.isfile(path):
                missing.append(path)
        for sub in ("images", "panoptic", "panoptic_stuff"):
            missing += toy.file_count_mismatch(os.path.join(target, split, sub), count)
    return missing


def ensure_toy_panoptic_dataset(root: str = None) -> str:
    """Generate the toy panoptic dataset under ``root`` unless a complete one is there; return its folder."""
    return toy.ensure_generated_tree(toy.toy_root() if root is None else root, VERSION, _write_tree, _missing_parts)


def _load(root: str, split: str, dataset_name: str):
    base = ensure_toy_panoptic_dataset(root)
    paths = {"image_root": os.path.join(base, split, "images"),
             "panoptic_root": os.path.join(base, split, "panoptic"),
             "sem_seg_root": os.path.join(base, split, "panoptic_stuff"),
             "panoptic_json": os.path.join(base, "annotations", f"panoptic_{split}.json"),
             "json_file": os.path.join(base, "annotations", f"instances_{split}.json")}
    MetadataCatalog.get(dataset_name).set(**paths)  # the evaluators read the ground truth from these
    return load_separated_panoptic(paths["json_file"], paths["image_root"], paths["panoptic_json"],
                                   paths["panoptic_root"], paths["sem_seg_root"], dataset_name, toy_panoptic_metadata())


def register_all_toy_panoptic(root: str = None) -> None:
    """Register ``ccnet_toy_panoptic_{split}``; nothing is generated until first loaded, and the metadata
    carries no paths until then, so ``check_dataset_available`` passes."""
    root = toy.toy_root() if root is None else root
    for split in TOY_PANOPTIC_SPLITS:
        name = f"ccnet_toy_panoptic_{split}"
        DatasetCatalog.register(name, lambda s=split, n=name: _load(root, s, n))
        MetadataCatalog.get(name).set(**toy_panoptic_metadata())
