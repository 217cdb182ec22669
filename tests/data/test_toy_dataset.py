"""The built-in toy dataset: deterministic generation, COCO + semantic views that agree with each
other, the promised variety (classes, sizes, colours, textures, overlaps), safe concurrent generation
and its registrations / evaluators."""
import json
import logging
import multiprocessing
import os
import shutil

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator, SemSegEvaluator

from ccnet_d2.data import check_dataset_available
from ccnet_d2.data.datasets import toy
from ccnet_d2.evaluation import build_evaluator

SMALL_SPLITS = {"train": (24, 1), "val": (8, 2)}
TOY_NAMES = [f"ccnet_toy_{s}" for s in toy.TOY_SPLITS] + [f"ccnet_toy_sem_seg_{s}" for s in toy.TOY_SPLITS]


@pytest.fixture
def small_toy(monkeypatch):
    monkeypatch.setattr(toy, "TOY_SPLITS", SMALL_SPLITS)


@pytest.fixture
def toy_registered_in(tmp_path, small_toy):
    """The toy datasets re-registered under a temporary root (restored afterwards)."""
    def reregister(root):
        for name in TOY_NAMES:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        toy.register_all_toy(root)

    reregister(str(tmp_path))
    yield tmp_path
    reregister(None)


def read_split(base, split):
    with open(os.path.join(base, "annotations", f"instances_{split}.json")) as f:
        coco = json.load(f)
    by_image = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    return coco, by_image


def test_generation_is_deterministic(tmp_path, small_toy):
    a, b = toy.ensure_toy_dataset(str(tmp_path / "a")), toy.ensure_toy_dataset(str(tmp_path / "b"))
    for rel in ["annotations/instances_train.json", "val/images/000003.png", "train/sem_seg/000007.png"]:
        with open(os.path.join(a, rel), "rb") as fa, open(os.path.join(b, rel), "rb") as fb:
            assert fa.read() == fb.read(), rel
    assert toy.ensure_toy_dataset(str(tmp_path / "a")) == a  # second call reuses the cache


def test_instances_and_label_maps_agree(tmp_path, small_toy):
    base = toy.ensure_toy_dataset(str(tmp_path))
    coco, by_image = read_split(base, "train")
    assert [c["name"] for c in coco["categories"]] == ["circle", "triangle", "square"]
    assert len(coco["images"]) == 24
    for image in coco["images"]:
        label = cv2.imread(os.path.join(base, "train", "sem_seg", image["file_name"]), cv2.IMREAD_UNCHANGED)
        assert label.shape == (image["height"], image["width"]) and label.dtype == np.uint8
        rebuilt = np.zeros_like(label)
        for ann in by_image.get(image["id"], []):
            mask = mask_util.decode(ann["segmentation"]).astype(bool)
            assert not rebuilt[mask].any(), "visible masks of one image must not overlap"
            rebuilt[mask] = ann["category_id"]
            assert ann["area"] == mask.sum() > 0
            x, y, w, h = ann["bbox"]
            ys, xs = np.nonzero(mask)
            assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        np.testing.assert_array_equal(rebuilt, label)


def test_variety_classes_sizes_colours_textures_overlaps(tmp_path, small_toy):
    base = toy.ensure_toy_dataset(str(tmp_path))
    coco, by_image = read_split(base, "train")
    anns = coco["annotations"]
    assert {a["category_id"] for a in anns} == {1, 2, 3}
    areas = np.array([a["area"] for a in anns])
    assert areas.max() > 6 * areas.min()
    colours, background_stds, overlapping = [], [], 0
    for image in coco["images"]:
        pixels = cv2.imread(os.path.join(base, "train", "images", image["file_name"])).astype(np.float64)
        label = cv2.imread(os.path.join(base, "train", "sem_seg", image["file_name"]), cv2.IMREAD_UNCHANGED)
        background_stds.append(pixels[label == 0].std(axis=0).mean())
        for ann in by_image.get(image["id"], []):
            colours.append(pixels[mask_util.decode(ann["segmentation"]).astype(bool)].mean(axis=0))
        boxes = [a["bbox"] for a in by_image.get(image["id"], [])]
        overlapping += any(
            min(b1[0] + b1[2], b2[0] + b2[2]) > max(b1[0], b2[0]) and min(b1[1] + b1[3], b2[1] + b2[3]) > max(b1[1], b2[1])
            for i, b1 in enumerate(boxes) for b2 in boxes[i + 1:])
    assert np.std(colours, axis=0).min() > 40  # shape colours spread over the colour cube
    assert min(background_stds) > 8  # textured and noisy, never flat
    assert overlapping >= 3


def _generate(root):
    toy.ensure_toy_dataset(root)


def test_concurrent_generation_leaves_one_complete_tree(tmp_path, small_toy):
    context = multiprocessing.get_context("fork")  # children see the small splits
    workers = [context.Process(target=_generate, args=(str(tmp_path),)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert os.listdir(tmp_path) == [toy.VERSION]  # no temporary folder left behind
    coco, _ = read_split(os.path.join(tmp_path, toy.VERSION), "val")
    assert len(coco["images"]) == 8 == len(os.listdir(os.path.join(tmp_path, toy.VERSION, "val", "images")))


def test_registrations_and_evaluators(toy_registered_in, tmp_path):
    check_dataset_available("ccnet_toy_train")  # always available: generated on first load
    assert not os.path.exists(os.path.join(toy_registered_in, toy.VERSION))
    dicts = DatasetCatalog.get("ccnet_toy_val")
    assert len(dicts) == 8 and all(os.path.isfile(d["file_name"]) for d in dicts)
    assert all(0 <= a["category_id"] < 3 for d in dicts for a in d["annotations"])
    meta = MetadataCatalog.get("ccnet_toy_val")
    assert meta.thing_classes == ["circle", "triangle", "square"] and meta.evaluator_type == "coco"
    assert os.path.isfile(meta.json_file)
    sem = DatasetCatalog.get("ccnet_toy_sem_seg_train")
    assert len(sem) == 24 and all(os.path.isfile(d["sem_seg_file_name"]) for d in sem)
    sem_meta = MetadataCatalog.get("ccnet_toy_sem_seg_train")
    assert sem_meta.stuff_classes == ["background", "circle", "triangle", "square"]
    assert sem_meta.ignore_label == 255 and sem_meta.evaluator_type == "sem_seg"

    from detectron2.config import get_cfg
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(tmp_path / "out")
    assert isinstance(build_evaluator(cfg, "ccnet_toy_val"), COCOEvaluator)
    assert isinstance(build_evaluator(cfg, "ccnet_toy_sem_seg_val"), SemSegEvaluator)
    MetadataCatalog.get("ccnet_test_no_evaluator").set(thing_classes=["a"])
    with pytest.raises(ValueError, match="evaluator_type=None.*expected one of"):
        build_evaluator(cfg, "ccnet_test_no_evaluator")


def test_an_incomplete_tree_is_generated_again(tmp_path, small_toy, caplog):
    base = toy.ensure_toy_dataset(str(tmp_path))
    first = sorted(os.listdir(os.path.join(base, "val", "images")))
    os.remove(os.path.join(base, "val", "images", first[0]))
    with caplog.at_level(logging.WARNING):
        assert toy.ensure_toy_dataset(str(tmp_path)) == base
    assert "is incomplete" in caplog.text and "val" in caplog.text
    assert sorted(os.listdir(os.path.join(base, "val", "images"))) == first
    for name in os.listdir(base):  # an emptied folder is regenerated too
        shutil.rmtree(os.path.join(base, name))
    toy.ensure_toy_dataset(str(tmp_path))
    assert sorted(os.listdir(os.path.join(base, "val", "images"))) == first
