"""The built-in toy video dataset: the toy dataset's shapes moving over a still textured background,
generated on first use in CamVid's layout, so it runs through the CamVid loader and the clip mapper:

    <root>/toy_video_v1/
        train/<seq>_<frame:06d>.png  trainannot/...   (labelled frames: 6, 18, 30 of each sequence)
        val/...                      valannot/...     (0 = background, k = shape class k, uint8)
        frames/<seq>/000000.png ... 000035.png, frame_count.txt

``<root>`` is the toy dataset's (``ccnet_d2.data.datasets.toy.toy_root``). Registered names:
``ccnet_toy_video_{train,val}`` (evaluator "sem_seg"). Deterministic (fixed seeds), written atomically
and generated again when incomplete, as the toy dataset.
"""
import os

import cv2
import numpy as np

from detectron2.data import DatasetCatalog, MetadataCatalog

from . import toy
from .camvid import FRAME_COUNT_FILE, load_clip_records

__all__ = ["TOY_VIDEO_SPLITS", "ensure_toy_video_dataset", "register_all_toy_video"]

# split -> (number of sequences, seed).
TOY_VIDEO_SPLITS = {"train": (10, 11), "val": (3, 12)}
SEQUENCE_FRAMES = 36
LABELLED_FRAMES = (6, 18, 30)  # one in twelve, with 6 frames on each side
MAX_SPEED = 2.0  # pixels per frame
VERSION = "toy_video_v1"


def _write_sequence(folder: str, split: str, sequence: str, rng) -> None:
    background = toy._background(rng)
    background_colour = background.reshape(-1, 3).mean(0)
    shapes = []  # (class id, mask at frame 0, colour, velocity)
    for _ in range(rng.randint(toy.SHAPES_PER_IMAGE[0], toy.SHAPES_PER_IMAGE[1] + 1)):
        category = rng.randint(len(toy.TOY_CLASSES))
        colour = rng.uniform(0, 255, size=3)
        while np.abs(colour - background_colour).sum() < 120:  # keep shapes distinguishable
            colour = rng.uniform(0, 255, size=3)
        shapes.append((category + 1, toy._shape_mask(rng, category).astype(np.uint8), colour,
                       rng.uniform(-MAX_SPEED, MAX_SPEED, size=2)))
    frames_dir = os.path.join(folder, "frames", sequence)
    os.makedirs(frames_dir)
    for index in range(SEQUENCE_FRAMES):
        image, label = background.copy(), np.zeros(background.shape[:2], np.uint8)
        for class_id, mask, colour, velocity in shapes:  # later shapes on top
            shift = np.float32([[1, 0, velocity[0] * index], [0, 1, velocity[1] * index]])
            moved = cv2.warpAffine(mask, shift, mask.shape[::-1], flags=cv2.INTER_NEAREST).astype(bool)
            image[moved] = colour.astype(np.uint8)
            label[moved] = class_id
        cv2.imwrite(os.path.join(frames_dir, f"{index:06d}.png"), image)
        if index in LABELLED_FRAMES:
            name = f"{sequence}_{index:06d}.png"
            cv2.imwrite(os.path.join(folder, split, name), image)
            cv2.imwrite(os.path.join(folder, split + "annot", name), label)
    with open(os.path.join(frames_dir, FRAME_COUNT_FILE), "w") as f:
        f.write(f"{SEQUENCE_FRAMES}\n")


def _sequences(split: str):
    count, _ = TOY_VIDEO_SPLITS[split]
    return [f"toy{split}{i:03d}" for i in range(count)]


def _write_tree(folder: str) -> None:
    for split, (_, seed) in TOY_VIDEO_SPLITS.items():
        rng = np.random.RandomState(seed)
        os.makedirs(os.path.join(folder, split))
        os.makedirs(os.path.join(folder, split + "annot"))
        for sequence in _sequences(split):
            _write_sequence(folder, split, sequence, rng)


def _missing_parts(target: str) -> list:
    missing = []
    for split in TOY_VIDEO_SPLITS:
        expected = len(_sequences(split)) * len(LABELLED_FRAMES)
        for folder in (os.path.join(target, split), os.path.join(target, split + "annot")):
            missing += toy.file_count_mismatch(folder, expected)
        for sequence in _sequences(split):
            missing += toy.file_count_mismatch(os.path.join(target, "frames", sequence), SEQUENCE_FRAMES + 1)
    return missing


def ensure_toy_video_dataset(root: str = None) -> str:
    """Generate the toy video dataset under ``root`` unless a complete one is there; return its folder."""
    return toy.ensure_generated_tree(toy.toy_root() if root is None else root, VERSION, _write_tree, _missing_parts)


def _load(root: str, split: str, dataset_name: str):
    base = ensure_toy_video_dataset(root)
    image_root, sem_seg_root = os.path.join(base, split), os.path.join(base, split + "annot")
    MetadataCatalog.get(dataset_name).set(image_root=image_root, sem_seg_root=sem_seg_root)
    return load_clip_records(dataset_name, image_root, sem_seg_root, os.path.join(base, "frames"))


def register_all_toy_video(root: str = None) -> None:
    """Register ``ccnet_toy_video_{split}``; nothing is generated until first loaded, and the metadata
    carries no paths until then, so ``check_dataset_available`` passes."""
    root = toy.toy_root() if root is None else root
    for split in TOY_VIDEO_SPLITS:
        name = f"ccnet_toy_video_{split}"
        DatasetCatalog.register(name, lambda s=split, n=name: _load(root, s, n))
        MetadataCatalog.get(name).set(stuff_classes=["background", *toy.TOY_CLASSES], ignore_label=255,
                                      evaluator_type="sem_seg")
