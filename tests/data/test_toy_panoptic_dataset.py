"""The built-in toy panoptic dataset: its panoptic PNGs, segments, stuff labels and instance masks agree
with each other and with COCO's panoptic format; generation is deterministic; its records load as
Detectron2's separated COCO panoptic records do, and the training mapper reads them."""
import json
import os

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
from detectron2.data import DatasetCatalog, DatasetMapper, MetadataCatalog

from ccnet_d2.data import check_dataset_available
from ccnet_d2.data.datasets import toy, toy_panoptic
from ccnet_d2.data.panoptic_format import rgb_to_ids, segments_to_stuff_labels
from tests.common import TOY_PANOPTIC_CONFIG, build_cfg

SMALL_SPLITS = {"train": (12, 21), "val": (6, 22)}
NAMES = [f"ccnet_toy_panoptic_{s}" for s in toy_panoptic.TOY_PANOPTIC_SPLITS]


@pytest.fixture
def small_tree(tmp_path, monkeypatch):
    monkeypatch.setattr(toy_panoptic, "TOY_PANOPTIC_SPLITS", SMALL_SPLITS)
    return toy_panoptic.ensure_toy_panoptic_dataset(str(tmp_path))


def _json(base, kind, split):
    with open(os.path.join(base, "annotations", f"{kind}_{split}.json")) as f:
        return json.load(f)


def test_panoptic_png_segments_and_labels_agree(small_tree):
    panoptic, instances = _json(small_tree, "panoptic", "val"), _json(small_tree, "instances", "val")
    categories = {c["id"]: c for c in panoptic["categories"]}
    assert sorted(categories) == [1, 2, 3, 4, 5, 6]
    assert [c["isthing"] for c in panoptic["categories"]] == [1, 1, 1, 0, 0, 0]
    masks_by_image = {}
    for annotation in instances["annotations"]:
        masks_by_image.setdefault(annotation["image_id"], []).append(annotation)
    stuff_seen = set()
    for annotation in panoptic["annotations"]:
        name = annotation["file_name"]
        ids = rgb_to_ids(cv2.imread(os.path.join(small_tree, "val", "panoptic", name))[:, :, ::-1])
        assert (ids > 0).all()  # no void
        segments = annotation["segments_info"]
        assert sorted(np.unique(ids).tolist()) == sorted(s["id"] for s in segments)
        for segment in segments:
            mask = ids == segment["id"]
            ys, xs = np.nonzero(mask)
            assert segment["area"] == mask.sum()
            assert segment["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        stuff = [s["category_id"] for s in segments if not categories[s["category_id"]]["isthing"]]
        assert len(stuff) == len(set(stuff)) >= 1  # one segment per stuff class present
        stuff_seen.update(stuff)
        # the instances file holds the thing segments, same masks, same order
        things = [s for s in segments if categories[s["category_id"]]["isthing"]]
        coco = masks_by_image.get(annotation["image_id"], [])
        assert [a["category_id"] for a in coco] == [s["category_id"] for s in things]
        for a, s in zip(coco, things):
            assert (mask_util.decode(a["segmentation"]).astype(bool) == (ids == s["id"])).all()
        # the stuff labels: 0 on things, 1..3 on the textures, nothing ignored
        labels = cv2.imread(os.path.join(small_tree, "val", "panoptic_stuff", name), cv2.IMREAD_UNCHANGED)
        expected = np.zeros_like(labels)
        for s in segments:
            if not categories[s["category_id"]]["isthing"]:
                expected[ids == s["id"]] = s["category_id"] - 3
        assert (labels == expected).all()
    assert stuff_seen == {4, 5, 6}


def test_stuff_labels_name_an_unknown_category():
    with pytest.raises(ValueError, match="segment 7 has category_id 99"):
        segments_to_stuff_labels(np.full((2, 2), 7), [{"id": 7, "category_id": 99}], {4: 1}, {1})


def test_generation_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setattr(toy_panoptic, "TOY_PANOPTIC_SPLITS", {"train": (3, 21), "val": (2, 22)})
    a = toy_panoptic.ensure_toy_panoptic_dataset(str(tmp_path / "a"))
    b = toy_panoptic.ensure_toy_panoptic_dataset(str(tmp_path / "b"))
    for rel in ["annotations/panoptic_train.json", "val/images/000001.png", "train/panoptic/000002.png"]:
        with open(os.path.join(a, rel), "rb") as fa, open(os.path.join(b, rel), "rb") as fb:
            assert fa.read() == fb.read(), rel


@pytest.fixture
def registered_small(tmp_path, monkeypatch):
    monkeypatch.setattr(toy_panoptic, "TOY_PANOPTIC_SPLITS", SMALL_SPLITS)

    def reregister(root):
        for name in NAMES:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        toy_panoptic.register_all_toy_panoptic(root)

    reregister(str(tmp_path))
    yield tmp_path
    reregister(None)


def test_records_and_the_training_mapper(registered_small):
    check_dataset_available("ccnet_toy_panoptic_train")  # passes before anything is generated
    records = DatasetCatalog.get("ccnet_toy_panoptic_train")
    metadata = MetadataCatalog.get("ccnet_toy_panoptic_train")
    assert len(records) == SMALL_SPLITS["train"][0]
    assert metadata.stuff_classes == ["things", "stripes", "checks", "plain"]
    assert metadata.thing_classes == list(toy.TOY_CLASSES) and metadata.evaluator_type == "coco_panoptic_seg"
    for key in ("panoptic_json", "panoptic_root", "json_file", "image_root", "sem_seg_root"):
        assert os.path.exists(metadata.get(key)), key
    record = records[0]
    assert {"annotations", "sem_seg_file_name", "pan_seg_file_name", "segments_info"} <= set(record)
    things = [s for s in record["segments_info"] if s["isthing"]]
    assert [s["category_id"] for s in things] == [a["category_id"] for a in record["annotations"]]
    assert all(0 <= s["category_id"] <= 2 for s in things)
    assert all(1 <= s["category_id"] <= 3 for s in record["segments_info"] if not s["isthing"])
    cfg = build_cfg(TOY_PANOPTIC_CONFIG)
    mapped = DatasetMapper(cfg, is_train=True)(record)
    assert mapped["image"].shape[1:] == mapped["sem_seg"].shape == (192, 192)
    assert len(mapped["instances"]) == len(record["annotations"])
    assert set(mapped["sem_seg"].unique().tolist()) <= {0, 1, 2, 3}


def test_check_dataset_names_a_panoptic_png_that_disagrees(registered_small, capsys):
    from ccnet_d2.data.panoptic_format import ids_to_rgb
    from tests.common import load_tool

    check_dataset = load_tool("check_dataset")
    assert check_dataset.main(["ccnet_toy_panoptic_val", "--no-progress"]) == 0
    record = DatasetCatalog.get("ccnet_toy_panoptic_val")[2]
    ids = rgb_to_ids(cv2.imread(record["pan_seg_file_name"])[:, :, ::-1])
    ids[:5, :5] = 99  # a segment its record does not list
    cv2.imwrite(record["pan_seg_file_name"], ids_to_rgb(ids)[:, :, ::-1])
    assert check_dataset.main(["ccnet_toy_panoptic_val", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert f"panoptic label {record['pan_seg_file_name']!r} has segment ids [99]" in out
    assert "ccnet_toy_panoptic_val: 1 problem(s)" in out
