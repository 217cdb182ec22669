"""Cityscapes panoptic in the separated form Panoptic FPN trains on: ``cityscapes_fine_panoptic_{train,val}_separated``.

Detectron2 registers Cityscapes panoptic as ``cityscapes_fine_panoptic_{train,val}`` for Panoptic-DeepLab:
one contiguous space of 19 train ids, no instance annotations, no stuff-only labels. Panoptic FPN needs
the separated form that Detectron2 gives COCO (``coco_2017_*_panoptic_separated``): the things as instances
(8 classes, contiguous from 0) and stuff-only labels (0 = any thing, the 11 stuff classes from 1, in
train-id order). ``tools/prepare_panoptic_fpn.py cityscapes`` writes both from the panoptic PNGs that
cityscapesscripts' ``createPanopticImgs`` makes (:func:`prepare_cityscapes_panoptic`); this module
registers the result under Detectron2's naming. PQ is computed on the panoptic json and PNGs themselves,
with the official label ids.

    cityscapes/gtFine/cityscapes_panoptic_{train,val}.json, cityscapes_panoptic_{train,val}/*.png   (cityscapesscripts)
    cityscapes/gtFine/cityscapes_panoptic_{train,val}_stuff/*.png                                   (the stuff maps)
    cityscapes/gtFine/cityscapes_panoptic_{train,val}_instances.json                                (the things, RLE)
"""
import os

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin_meta import CITYSCAPES_CATEGORIES

from .panoptic_separated import load_separated_panoptic, separated_metadata, write_stuff_labels, write_thing_instances

__all__ = ["CITYSCAPES_PANOPTIC_SPLITS", "cityscapes_panoptic_paths", "cityscapes_panoptic_metadata",
           "prepare_cityscapes_panoptic", "register_all_cityscapes_panoptic"]

CITYSCAPES_PANOPTIC_SPLITS = ("train", "val")


def cityscapes_panoptic_paths(root: str, split: str) -> dict:
    """The metadata paths of one split under the dataset root ``root``."""
    gt = os.path.join(root, "cityscapes", "gtFine")
    return {"image_root": os.path.join(root, "cityscapes", "leftImg8bit", split),
            "panoptic_json": os.path.join(gt, f"cityscapes_panoptic_{split}.json"),
            "panoptic_root": os.path.join(gt, f"cityscapes_panoptic_{split}"),
            "sem_seg_root": os.path.join(gt, f"cityscapes_panoptic_{split}_stuff"),
            "json_file": os.path.join(gt, f"cityscapes_panoptic_{split}_instances.json")}


def cityscapes_panoptic_metadata() -> dict:
    """Separated metadata over the official label ids of the 19 evaluated classes, in train-id order."""
    return {**separated_metadata(CITYSCAPES_CATEGORIES, order=lambda c: c["trainId"]),
            "thing_colors": [c["color"] for c in sorted(CITYSCAPES_CATEGORIES, key=lambda c: c["trainId"])
                             if c["isthing"]],
            "ignore_label": 255, "label_divisor": 1000, "evaluator_type": "coco_panoptic_seg"}


def prepare_cityscapes_panoptic(root: str, split: str, workers: int = 1):
    """Write one split's stuff maps and thing instances from its panoptic json and PNGs; returns (maps, instances)."""
    paths, metadata = cityscapes_panoptic_paths(root, split), cityscapes_panoptic_metadata()
    if not os.path.isfile(paths["panoptic_json"]):
        raise FileNotFoundError(
            f"no {paths['panoptic_json']}: make the panoptic annotations first with cityscapesscripts, "
            f"CITYSCAPES_DATASET={os.path.join(root, 'cityscapes')} csCreatePanopticImgs (docs/DATASETS.md)")
    things = metadata["thing_dataset_id_to_contiguous_id"]
    maps = write_stuff_labels(paths["panoptic_json"], paths["panoptic_root"], paths["sem_seg_root"],
                              metadata["stuff_dataset_id_to_contiguous_id"], things, workers=workers)
    # The image of id <city>_<seq>_<frame> is leftImg8bit/<split>/<city>/<id>_leftImg8bit.png (the json's
    # "file_name", "<id>_gtFine_leftImg8bit.png", names no file of the release)
    count = write_thing_instances(paths["panoptic_json"], paths["panoptic_root"], paths["json_file"], things,
                                  lambda image: os.path.join(image["id"].split("_")[0], f"{image['id']}_leftImg8bit.png"))
    return maps, count


def register_all_cityscapes_panoptic(root: str) -> None:
    for split in CITYSCAPES_PANOPTIC_SPLITS:
        name = f"cityscapes_fine_panoptic_{split}_separated"
        paths, metadata = cityscapes_panoptic_paths(root, split), cityscapes_panoptic_metadata()
        DatasetCatalog.register(name, lambda p=paths, n=name, m=metadata: load_separated_panoptic(
            p["json_file"], p["image_root"], p["panoptic_json"], p["panoptic_root"], p["sem_seg_root"], n, m))
        MetadataCatalog.get(name).set(**paths, **metadata)
