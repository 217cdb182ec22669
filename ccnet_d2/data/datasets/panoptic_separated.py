"""The "separated" form of a COCO-format panoptic dataset, which Panoptic FPN trains on: the things as COCO
instance annotations and a stuff-only label map per image (0 = any thing, stuff classes from 1, 255 =
void), beside the panoptic PNGs and json that the evaluation reads.

Detectron2 registers COCO in this form (``coco_2017_{train,val}_panoptic_separated``) and reads the stuff
maps from ``coco/panoptic_stuff_{train,val}2017/``, which its source tree's
``datasets/prepare_panoptic_fpn.py`` writes; that script is not installed with Detectron2, so
``tools/prepare_panoptic_fpn.py`` writes them with :func:`write_stuff_labels`. For Cityscapes, whose
instance annotations are polygons of another kind, it also writes the things of the panoptic PNGs as a
COCO instances json (:func:`write_thing_instances`), and ``cityscapes_panoptic.py`` registers the result as
``cityscapes_fine_panoptic_{train,val}_separated``. :func:`load_separated_panoptic` makes the records (the
toy panoptic dataset uses it too).
"""
import json
import os
from multiprocessing import Pool
from typing import Callable, Dict, Iterable

import numpy as np
from PIL import Image

from detectron2.data.datasets import load_coco_json

from ..panoptic_format import read_panoptic_png, rle_fields, segments_to_stuff_labels

__all__ = ["write_stuff_labels", "write_thing_instances", "load_separated_panoptic", "separated_metadata"]


def _read_ids(path: str, listed_in: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"panoptic PNG {path!r} is listed in {listed_in} but missing")
    return read_panoptic_png(path)


def _convert(task):
    source, target, segments, stuff_id_to_label, thing_ids, listed_in = task
    try:
        labels = segments_to_stuff_labels(_read_ids(source, listed_in), segments, stuff_id_to_label, thing_ids)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    Image.fromarray(labels).save(target)


def _read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def write_stuff_labels(panoptic_json: str, panoptic_root: str, stuff_root: str, stuff_id_to_label: Dict[int, int],
                       thing_ids: Iterable[int], workers: int = 1) -> int:
    """Write ``stuff_root/<file_name>`` (uint8 PNG) for every annotation of ``panoptic_json`` from its PNG in
    ``panoptic_root``: thing pixels 0, a stuff segment's pixels ``stuff_id_to_label[category_id]``, void 255.
    Returns the number of files written."""
    annotations = _read_json(panoptic_json)["annotations"]
    os.makedirs(stuff_root, exist_ok=True)
    thing_ids = sorted(thing_ids)
    tasks = [(os.path.join(panoptic_root, a["file_name"]), os.path.join(stuff_root, a["file_name"]),
              a["segments_info"], stuff_id_to_label, thing_ids, panoptic_json) for a in annotations]
    if workers > 1:
        with Pool(workers) as pool:
            pool.map(_convert, tasks, chunksize=16)
    else:
        for task in tasks:
            _convert(task)
    return len(tasks)


def write_thing_instances(panoptic_json: str, panoptic_root: str, instances_json: str, thing_ids: Iterable[int],
                          image_file_name: Callable[[dict], str]) -> int:
    """Write the thing segments of ``panoptic_json`` as a COCO instances json (RLE masks from the PNGs,
    crowd regions kept as ``iscrowd`` 1, the same image ids); ``image_file_name(image entry)`` gives each
    image's file name relative to the image root. Returns the number of instances."""
    data = _read_json(panoptic_json)
    thing_ids = set(thing_ids)
    instances = []
    for annotation in data["annotations"]:
        things = [s for s in annotation["segments_info"] if s["category_id"] in thing_ids]
        if not things:
            continue
        ids = _read_ids(os.path.join(panoptic_root, annotation["file_name"]), panoptic_json)
        for segment in things:
            instances.append({"id": len(instances) + 1, "image_id": annotation["image_id"],
                              "category_id": segment["category_id"], "iscrowd": int(segment.get("iscrowd", 0)),
                              **rle_fields(ids == segment["id"])})
    images = [dict(image, file_name=image_file_name(image)) for image in data["images"]]
    categories = [c for c in data["categories"] if c["id"] in thing_ids]
    with open(instances_json, "w") as f:
        json.dump({"images": images, "annotations": instances, "categories": categories}, f)
    return len(instances)


def separated_metadata(categories: Iterable[dict], order: Callable[[dict], int] = lambda c: c["id"]) -> dict:
    """Detectron2's separated metadata from panoptic categories (``id``, ``name``, ``isthing``): thing classes
    contiguous from 0 and stuff classes from 1 ("things" first), each sorted by ``order``."""
    categories = sorted(categories, key=order)
    things = [c for c in categories if c["isthing"]]
    stuff = [c for c in categories if not c["isthing"]]
    return {"thing_classes": [c["name"] for c in things],
            "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(things)},
            "stuff_classes": ["things"] + [c["name"] for c in stuff],
            "stuff_dataset_id_to_contiguous_id": {0: 0, **{c["id"]: i + 1 for i, c in enumerate(stuff)}}}


def load_separated_panoptic(instances_json: str, image_root: str, panoptic_json: str, panoptic_root: str,
                            sem_seg_root: str, dataset_name: str, metadata: dict) -> list:
    """Records of Detectron2's separated panoptic form: ``load_coco_json``'s (the things' ``annotations``)
    with ``sem_seg_file_name`` (the stuff map), ``pan_seg_file_name`` and ``segments_info`` (contiguous
    category ids and ``isthing``, as ``load_coco_panoptic_json`` gives them)."""
    records = load_coco_json(instances_json, image_root, dataset_name)
    panoptic = {a["image_id"]: a for a in _read_json(panoptic_json)["annotations"]}
    things, stuff = metadata["thing_dataset_id_to_contiguous_id"], metadata["stuff_dataset_id_to_contiguous_id"]
    for record in records:
        if record["image_id"] not in panoptic:
            raise KeyError(f"{dataset_name}: image {record['image_id']!r} of {instances_json} has no annotation in "
                           f"{panoptic_json}")
        annotation = panoptic[record["image_id"]]
        record["pan_seg_file_name"] = os.path.join(panoptic_root, annotation["file_name"])
        record["sem_seg_file_name"] = os.path.join(sem_seg_root, annotation["file_name"])
        record["segments_info"] = [
            {**s, "category_id": (things if s["category_id"] in things else stuff)[s["category_id"]],
             "isthing": s["category_id"] in things} for s in annotation["segments_info"]]
    return records
