"""Cityscapes semantic and instance datasets, read with the public ``cityscapesscripts`` package.

Why these loaders exist: since December 2024 Detectron2's own Cityscapes loaders
(``detectron2/data/datasets/cityscapes.py``) import an unpublished internal copy of cityscapesscripts,
so with detectron2's current main branch its catalog names fail with
``No module named 'deeplearning'``. ``register_all_cityscapes`` registers the same names
(``cityscapes_fine_{instance_seg,sem_seg}_{train,val,test}``) with the same metadata and loaders that
return the same records as Detectron2's (a test compares them where Detectron2's loader runs), and
replaces Detectron2's registrations of those names, whatever its version. On top:

- every file a record names is checked when the dataset is loaded (``MissingFilesError`` lists them),
  instead of the first record only;
- records are sorted by file name, so every machine lists a split in the same order;
- the instance polygons are computed in a ``forkserver`` process pool: Detectron2 forks an ``mp.Pool``
  from the trainer's process, and a fork taken while other threads hold locks can hang.
"""
import concurrent.futures
import json
import logging
import multiprocessing
import os
from itertools import chain

import numpy as np

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin_meta import _get_builtin_metadata
from detectron2.structures import BoxMode

from ..checks import raise_if_files_missing

__all__ = ["CITYSCAPES_SPLITS", "cityscapes_frames", "load_cityscapes_semantic", "load_cityscapes_instances",
           "register_all_cityscapes"]

logger = logging.getLogger(__name__)

# Detectron2's catalog names -> (image dir, ground-truth dir) under the dataset root.
CITYSCAPES_SPLITS = {
    "cityscapes_fine_{task}_train": ("cityscapes/leftImg8bit/train/", "cityscapes/gtFine/train/"),
    "cityscapes_fine_{task}_val": ("cityscapes/leftImg8bit/val/", "cityscapes/gtFine/val/"),
    "cityscapes_fine_{task}_test": ("cityscapes/leftImg8bit/test/", "cityscapes/gtFine/test/"),
}
_IMAGE_SUFFIX = "leftImg8bit.png"
# Below this many frames the polygons are computed in this process (a pool costs more than it saves).
POOL_MIN_FRAMES = 64


def cityscapes_frames(image_dir: str, gt_dir: str):
    """[(image file, ground-truth prefix)] of every ``<city>/*_leftImg8bit.png`` under ``image_dir``, sorted;
    the prefix plus ``gtFine_polygons.json`` (or ``gtFine_labelTrainIds.png``, ...) names the frame's
    annotation files in ``gt_dir``."""
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"Cityscapes image folder {image_dir!r} does not exist: expected "
                                "leftImg8bit/<split>/<city>/*_leftImg8bit.png (docs/DATASETS.md)")
    frames = []
    for city in sorted(os.listdir(image_dir)):
        for name in sorted(os.listdir(os.path.join(image_dir, city))):
            path = os.path.join(image_dir, city, name)
            if not name.endswith(_IMAGE_SUFFIX):
                raise ValueError(f"{path!r} is not a Cityscapes image: every file under {image_dir!r} must be "
                                 f"<city>/<city>_<seq>_<frame>_{_IMAGE_SUFFIX}")
            frames.append((path, os.path.join(gt_dir, city, name[: -len(_IMAGE_SUFFIX)])))
    if not frames:
        raise FileNotFoundError(f"no Cityscapes images in {image_dir!r}: expected <city>/*_{_IMAGE_SUFFIX}")
    return frames


def _read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def load_cityscapes_semantic(image_dir: str, gt_dir: str, dataset_name: str = "cityscapes"):
    """Records with ``file_name``, ``sem_seg_file_name`` (``*_gtFine_labelTrainIds.png``, made by
    ``tools/prepare_cityscapes.py``), ``height`` and ``width`` (from the polygon file)."""
    records, missing_json = [], []
    for image_file, prefix in cityscapes_frames(image_dir, gt_dir):
        json_file = prefix + "gtFine_polygons.json"
        if not os.path.isfile(json_file):
            missing_json.append({"file_name": json_file})
            continue
        size = _read_json(json_file)
        records.append({"file_name": image_file, "sem_seg_file_name": prefix + "gtFine_labelTrainIds.png",
                        "height": size["imgHeight"], "width": size["imgWidth"]})
    raise_if_files_missing(dataset_name, missing_json + records)
    return records


def _instance_record(image_file: str, json_file: str) -> dict:
    """One frame's instance record from its polygon file, drawn the way cityscapesscripts draws them.

    cityscapesscripts rasterises the objects in file order, each painting over the earlier ones, and a
    pixel belongs to a polygon when its centre is inside. So the objects are visited last to first and each
    keeps only the area that no later object covers; the integer vertices are moved to pixel centres
    (+0.5) and the polygon grown by half a pixel, which matches that rasterisation on average. Objects of
    classes without instances (or ignored in evaluation) still cover what lies beneath them. A
    ``<class>group`` object is a crowd region of that class. Boxes are the bounds of the kept area.
    """
    from cityscapesscripts.helpers.labels import name2label
    from shapely.geometry import MultiPolygon, Polygon

    annotation = _read_json(json_file)
    covered = Polygon()
    annotations = []
    for obj in reversed(annotation["objects"]):
        if "deleted" in obj:
            continue
        name = obj["label"]
        crowd = name not in name2label and name.endswith("group")
        label = name2label[name[: -len("group")] if crowd else name]
        if label.id < 0:
            continue
        # float32 vertices, as Detectron2's loader computes them, so that both give the same polygons.
        region = Polygon(np.asarray(obj["polygon"], dtype=np.float32) + np.float32(0.5)).buffer(0.5, quad_segs=4)
        if not label.hasInstances or label.ignoreInEval:
            covered = covered.union(region)
            continue
        visible = region.difference(covered)
        if visible.is_empty:
            continue
        covered = covered.union(region)
        if isinstance(visible, Polygon):
            parts = [visible]
        elif isinstance(visible, MultiPolygon):
            parts = list(visible.geoms)
        else:
            raise ValueError(f"{json_file!r}: object {name!r} leaves a {visible.geom_type}, expected polygons")
        annotations.append({
            "iscrowd": name.endswith("group"),
            "category_id": label.id,
            # pycocotools reads outer boundaries only, so holes are dropped.
            "segmentation": [list(chain.from_iterable(part.exterior.coords)) for part in parts],
            "bbox": tuple(visible.bounds),
            "bbox_mode": BoxMode.XYXY_ABS,
        })
    return {"file_name": image_file, "image_id": os.path.basename(image_file), "height": annotation["imgHeight"],
            "width": annotation["imgWidth"], "annotations": annotations}


def _map_frames(function, pairs, workers: int):
    if workers <= 1 or len(pairs) < POOL_MIN_FRAMES:
        return [function(*pair) for pair in pairs]
    context = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(function, *zip(*pairs), chunksize=16))


def _default_workers() -> int:
    """Processes for the polygon pool: the cores this process may use, shared among the local ranks."""
    from detectron2.utils import comm

    return max(len(os.sched_getaffinity(0)) // max(comm.get_local_size(), 1), 1)


def load_cityscapes_instances(image_dir: str, gt_dir: str, dataset_name: str = "cityscapes", workers: int = None):
    """Instance records (polygons in COCO's format, ``XYXY_ABS`` boxes, contiguous category ids of the 8
    Cityscapes thing classes) from the ``*_gtFine_polygons.json`` files."""
    from cityscapesscripts.helpers.labels import labels

    pairs = [(image_file, prefix + "gtFine_polygons.json") for image_file, prefix in cityscapes_frames(image_dir, gt_dir)]
    raise_if_files_missing(dataset_name, [{"file_name": p} for pair in pairs for p in pair])
    logger.info("Reading %d Cityscapes polygon files from %s", len(pairs), gt_dir)
    records = _map_frames(_instance_record, pairs, _default_workers() if workers is None else workers)
    contiguous = {label.id: i for i, label in enumerate(l for l in labels if l.hasInstances and not l.ignoreInEval)}
    for record in records:
        for annotation in record["annotations"]:
            annotation["category_id"] = contiguous[annotation["category_id"]]
    return records


def register_all_cityscapes(root: str) -> None:
    """Register ``cityscapes_fine_{instance_seg,sem_seg}_{train,val,test}`` under ``root`` with these
    loaders and Detectron2's Cityscapes metadata, replacing any earlier registration of those names."""
    for key, (image_dir, gt_dir) in CITYSCAPES_SPLITS.items():
        image_dir, gt_dir = os.path.join(root, image_dir), os.path.join(root, gt_dir)
        for task, load, extra in (
            ("instance_seg", load_cityscapes_instances, {"evaluator_type": "cityscapes_instance"}),
            ("sem_seg", load_cityscapes_semantic, {"evaluator_type": "cityscapes_sem_seg", "ignore_label": 255}),
        ):
            name = key.format(task=task)
            if name in DatasetCatalog.list():
                DatasetCatalog.remove(name)
                MetadataCatalog.remove(name)
            DatasetCatalog.register(name, lambda x=image_dir, y=gt_dir, n=name, f=load: f(x, y, dataset_name=n))
            MetadataCatalog.get(name).set(image_dir=image_dir, gt_dir=gt_dir, **extra,
                                          **_get_builtin_metadata("cityscapes"))
