"""The built-in toy dataset: coloured shapes on textured backgrounds, generated on first use.

Real datasets cannot be downloaded on a fresh machine, so the main job and the end-to-end tests train
on this one. It is generated deterministically (fixed seeds) in about a second into a cache folder,
in COCO format (JSON with RLE masks + PNG images) plus PNG label maps for a semantic-segmentation view
of the same images:

    <root>/toy_v1/
        train/images/000000.png ...    val/images/...
        train/sem_seg/000000.png ...   val/sem_seg/...   (0 = background, k = thing class k-1, uint8)
        annotations/instances_train.json, instances_val.json

``<root>`` is ``$CCNET_D2_TOY_ROOT``, else ``$DETECTRON2_DATASETS/ccnet_toy``, else ``~/.cache/ccnet_d2/toy``.
Registered names: ``ccnet_toy_{train,val}`` (instances, evaluator "coco"; masks are RLE, so configs
set ``INPUT.MASK_FORMAT: bitmask``) and ``ccnet_toy_sem_seg_{train,val}`` (evaluator "sem_seg").
"""
import json
import logging
import os
import shutil
import tempfile

import cv2
import numpy as np

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from ..panoptic_format import rle_fields

__all__ = ["TOY_CLASSES", "TOY_SPLITS", "toy_root", "ensure_toy_dataset", "ensure_generated_tree", "register_all_toy"]

TOY_CLASSES = ("circle", "triangle", "square")
# split -> (number of images, seed); the seed makes every machine generate the same pictures.
TOY_SPLITS = {"train": (600, 1), "val": (100, 2)}
IMAGE_SIZE = 128
SHAPES_PER_IMAGE = (2, 6)
SHAPE_SIZE = (16, 52)  # circumscribed diameter in pixels
MIN_VISIBLE_FRACTION = 0.5  # an occluded instance keeps at least this much of its area
VERSION = "toy_v1"  # bump when the generator changes, so stale caches are not reused
_logger = logging.getLogger(__name__)


def toy_root() -> str:
    """The folder that holds (or will hold) the generated ``toy_v1`` tree."""
    if os.environ.get("CCNET_D2_TOY_ROOT"):
        return os.path.expanduser(os.environ["CCNET_D2_TOY_ROOT"])
    if os.environ.get("DETECTRON2_DATASETS"):
        return os.path.join(os.path.expanduser(os.environ["DETECTRON2_DATASETS"]), "ccnet_toy")
    return os.path.expanduser(os.path.join("~", ".cache", "ccnet_d2", "toy"))


def _background(rng, texture: str = None, strength=(10, 30)) -> np.ndarray:
    """A muted gradient plus stripes or a checkerboard (chosen at random, or ``texture``: "stripes",
    "checks" or "plain" for none) of an amplitude drawn from ``strength``, plus pixel noise (uint8 HxWx3, BGR)."""
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32) / IMAGE_SIZE
    c0, c1 = rng.uniform(50, 200, size=(2, 3))
    angle = rng.uniform(0, np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    image = c0 + (c1 - c0) * (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    period = rng.uniform(6, 20)
    if texture is None:
        texture = "stripes" if rng.rand() < 0.5 else "checks"
    if texture == "stripes":
        theta = rng.uniform(0, np.pi)
        pattern = np.sin(2 * np.pi * (np.cos(theta) * xx + np.sin(theta) * yy) * IMAGE_SIZE / period)
    elif texture == "checks":
        pattern = np.sign(np.sin(2 * np.pi * xx * IMAGE_SIZE / period) * np.sin(2 * np.pi * yy * IMAGE_SIZE / period))
    elif texture == "plain":
        pattern = np.zeros_like(xx)
    else:
        raise ValueError(f"texture must be 'stripes', 'checks' or 'plain', got {texture!r}")
    image += rng.uniform(*strength) * pattern[..., None] + rng.normal(0, 8, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _shape_mask(rng, category: int) -> np.ndarray:
    """A filled circle, triangle or square of random size, position and rotation (bool HxW)."""
    mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    radius = rng.uniform(*SHAPE_SIZE) / 2
    cx, cy = rng.uniform(radius * 0.5, IMAGE_SIZE - radius * 0.5, size=2)
    if TOY_CLASSES[category] == "circle":
        cv2.circle(mask, (int(round(cx)), int(round(cy))), int(round(radius)), 1, thickness=-1)
    else:
        corners = 3 if TOY_CLASSES[category] == "triangle" else 4
        angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(corners) / corners
        points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


def _make_image(rng, background: np.ndarray = None):
    """One image, its instances (category, visible mask; later ones on top) and its label map. The shapes
    are drawn on ``background`` (uint8 HxWx3, BGR) if given, else on a new ``_background``."""
    image = _background(rng) if background is None else background.copy()
    background_colour = image.reshape(-1, 3).mean(0)
    instances = []  # [category, visible mask]
    for _ in range(rng.randint(SHAPES_PER_IMAGE[0], SHAPES_PER_IMAGE[1] + 1)):
        category = rng.randint(len(TOY_CLASSES))
        for _attempt in range(20):  # place it where it leaves every earlier shape mostly visible
            mask = _shape_mask(rng, category)
            if all((visible & ~mask).sum() >= MIN_VISIBLE_FRACTION * full.sum()
                   for _, visible, full in instances):
                break
        else:
            continue
        colour = rng.uniform(0, 255, size=3)
        while np.abs(colour - background_colour).sum() < 120:  # keep shapes distinguishable
            colour = rng.uniform(0, 255, size=3)
        shading = rng.normal(0, 6, size=(int(mask.sum()), 3))
        image[mask] = np.clip(colour + shading, 0, 255).astype(np.uint8)
        for item in instances:
            item[1] = item[1] & ~mask
        instances.append([category, mask, mask])
    label = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    for category, visible, _ in instances:
        label[visible] = category + 1
    return image, [(c, v) for c, v, _ in instances], label


def _write_split(split_dir: str, annotation_file: str, split: str) -> None:
    count, seed = TOY_SPLITS[split]
    rng = np.random.RandomState(seed)
    os.makedirs(os.path.join(split_dir, "images"))
    os.makedirs(os.path.join(split_dir, "sem_seg"))
    images, annotations = [], []
    for image_id in range(count):
        image, instances, label = _make_image(rng)
        name = f"{image_id:06d}.png"
        cv2.imwrite(os.path.join(split_dir, "images", name), image)
        cv2.imwrite(os.path.join(split_dir, "sem_seg", name), label)
        images.append({"id": image_id, "file_name": name, "height": IMAGE_SIZE, "width": IMAGE_SIZE})
        for category, visible in instances:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category + 1,
                                "iscrowd": 0, **rle_fields(visible)})
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(TOY_CLASSES)]
    with open(annotation_file, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)


def _missing_parts(target: str) -> list:
    """What a complete ``toy_v1`` tree has and ``target`` lacks (annotation files, image counts)."""
    missing = []
    for split, (count, _) in TOY_SPLITS.items():
        annotations = os.path.join(target, "annotations", f"instances_{split}.json")
        if not os.path.isfile(annotations):
            missing.append(annotations)
        for folder in (os.path.join(target, split, "images"), os.path.join(target, split, "sem_seg")):
            missing += file_count_mismatch(folder, count)
    return missing


def file_count_mismatch(folder: str, expected: int) -> list:
    """``["<folder> (<found> of <expected> files)"]`` when ``folder`` holds another number of entries, else []."""
    found = len(os.listdir(folder)) if os.path.isdir(folder) else 0
    return [] if found == expected else [f"{folder} ({found} of {expected} files)"]


def ensure_generated_tree(root: str, version: str, write_tree, missing_parts) -> str:
    """Generate ``<root>/<version>`` with ``write_tree(folder)`` unless a complete one is there (one for
    which ``missing_parts(folder)`` is empty); return that folder.

    The tree is written to a temporary sibling folder and renamed into place, so concurrent processes
    never see a half-written dataset (the loser of the race discards its copy). A folder left
    incomplete by other means (emptied, copied in part) is removed and generated again.
    """
    target = os.path.join(root, version)
    if os.path.isdir(target):
        missing = missing_parts(target)
        if not missing:
            return target
        _logger.warning("The generated dataset at %s is incomplete (missing %s); generating it again",
                        target, "; ".join(missing[:3]))
        stale = tempfile.mkdtemp(prefix=f".{version}-incomplete-", dir=root)
        try:  # one atomic rename: two processes never remove the same tree at once
            os.rename(target, os.path.join(stale, version))
        except FileNotFoundError:  # another process moved it already
            pass
        shutil.rmtree(stale, ignore_errors=True)
    _logger.info("Generating the dataset at %s (seconds)", target)
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{version}-", dir=root)
    try:
        write_tree(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not os.path.isdir(target):  # not a lost race: a real error
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _write_tree(folder: str) -> None:
    os.makedirs(os.path.join(folder, "annotations"))
    for split in TOY_SPLITS:
        _write_split(os.path.join(folder, split), os.path.join(folder, "annotations", f"instances_{split}.json"), split)


def ensure_toy_dataset(root: str = None) -> str:
    """Generate the toy dataset under ``root`` unless a complete one is there; return the ``toy_v1`` folder
    (atomically, regenerated when incomplete: :func:`ensure_generated_tree`)."""
    return ensure_generated_tree(toy_root() if root is None else root, VERSION, _write_tree, _missing_parts)


def _load_instances(root: str, split: str, dataset_name: str):
    base = ensure_toy_dataset(root)
    json_file = os.path.join(base, "annotations", f"instances_{split}.json")
    image_root = os.path.join(base, split, "images")
    # Paths enter the metadata only once they exist (COCOEvaluator then reads the GT JSON directly).
    MetadataCatalog.get(dataset_name).set(json_file=json_file, image_root=image_root)
    return load_coco_json(json_file, image_root, dataset_name)


def _load_sem_seg(root: str, split: str, dataset_name: str):
    base = ensure_toy_dataset(root)
    image_root, sem_seg_root = os.path.join(base, split, "images"), os.path.join(base, split, "sem_seg")
    MetadataCatalog.get(dataset_name).set(image_root=image_root, sem_seg_root=sem_seg_root)
    return [{"file_name": os.path.join(image_root, name), "sem_seg_file_name": os.path.join(sem_seg_root, name),
             "height": IMAGE_SIZE, "width": IMAGE_SIZE, "image_id": i}
            for i, name in enumerate(sorted(os.listdir(image_root)))]


def register_all_toy(root: str = None) -> None:
    """Register ``ccnet_toy_{split}`` and ``ccnet_toy_sem_seg_{split}``. Nothing is generated until a
    dataset is first loaded, and the metadata carries no paths until then: the dataset is always
    available, so ``check_dataset_available`` passes."""
    root = toy_root() if root is None else root
    for split in TOY_SPLITS:
        name = f"ccnet_toy_{split}"
        DatasetCatalog.register(name, lambda s=split, n=name: _load_instances(root, s, n))
        MetadataCatalog.get(name).set(thing_classes=list(TOY_CLASSES), evaluator_type="coco")
        sem_name = f"ccnet_toy_sem_seg_{split}"
        DatasetCatalog.register(sem_name, lambda s=split, n=sem_name: _load_sem_seg(root, s, n))
        MetadataCatalog.get(sem_name).set(
            stuff_classes=["background", *TOY_CLASSES], ignore_label=255, evaluator_type="sem_seg")

