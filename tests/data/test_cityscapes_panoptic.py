"""Cityscapes panoptic in Panoptic FPN's separated form, on a generated Cityscapes tree whose panoptic PNGs
and json are made by cityscapesscripts' own createPanopticImgs (as the release's are prepared):
``tools/prepare_panoptic_fpn.py cityscapes`` writes stuff maps and thing instances that agree with the
panoptic PNGs, the registered records load, and the ground truth scores PQ 100 through the evaluator."""
import json
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog

from ccnet_d2.data.datasets import cityscapes_panoptic
from ccnet_d2.data.panoptic_format import rgb_to_ids
from ccnet_d2.evaluation import PanopticQualityEvaluator
from tests.common import load_tool
from tests.data.trees import make_cityscapes_panoptic_tree

NAMES = [f"cityscapes_fine_panoptic_{s}_separated" for s in cityscapes_panoptic.CITYSCAPES_PANOPTIC_SPLITS]


@pytest.fixture
def prepared(tmp_path):
    root = str(tmp_path)
    make_cityscapes_panoptic_tree(root)
    load_tool("prepare_panoptic_fpn").main(["cityscapes", "--root", root, "--workers", "1"])
    for name in NAMES:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    cityscapes_panoptic.register_all_cityscapes_panoptic(root)
    yield root
    for name in NAMES:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    from ccnet_d2.data.datasets import dataset_root
    cityscapes_panoptic.register_all_cityscapes_panoptic(dataset_root())


def test_stuff_maps_and_instances_agree_with_the_panoptic_pngs(prepared):
    paths = cityscapes_panoptic.cityscapes_panoptic_paths(prepared, "val")
    with open(paths["panoptic_json"]) as f:
        panoptic = json.load(f)
    with open(paths["json_file"]) as f:
        instances = json.load(f)
    metadata = cityscapes_panoptic.cityscapes_panoptic_metadata()
    assert metadata["thing_classes"] == ["person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]
    assert metadata["stuff_classes"][:3] == ["things", "road", "sidewalk"] and len(metadata["stuff_classes"]) == 12
    road, pole = metadata["stuff_dataset_id_to_contiguous_id"][7], metadata["stuff_dataset_id_to_contiguous_id"][17]
    assert (road, pole) == (1, 6)
    things = set(metadata["thing_dataset_id_to_contiguous_id"])
    for annotation in panoptic["annotations"]:
        ids = rgb_to_ids(np.asarray(Image.open(os.path.join(paths["panoptic_root"], annotation["file_name"]))))
        stuff = np.asarray(Image.open(os.path.join(paths["sem_seg_root"], annotation["file_name"])))
        by_category = {}
        for s in annotation["segments_info"]:
            by_category.setdefault(s["category_id"], []).append(s)
        assert (stuff[ids == by_category[7][0]["id"]] == road).all()  # road
        assert (stuff[ids == by_category[17][0]["id"]] == pole).all()  # pole
        thing_pixels = np.isin(ids, [s["id"] for s in annotation["segments_info"] if s["category_id"] in things])
        assert (stuff[thing_pixels] == 0).all() and thing_pixels.any()
        assert (stuff[ids == 0] == 255).all() and (ids == 0).any()  # void: ego vehicle, license plate
        mine = [a for a in instances["annotations"] if a["image_id"] == annotation["image_id"]]
        listed = [s for s in annotation["segments_info"] if s["category_id"] in things]
        assert [(a["category_id"], a["iscrowd"]) for a in mine] == [(s["category_id"], s["iscrowd"]) for s in listed]
        assert any(a["iscrowd"] and a["category_id"] == 24 for a in mine)  # the persongroup
        for a, s in zip(mine, listed):
            assert (mask_util.decode(a["segmentation"]).astype(bool) == (ids == s["id"])).all()
    for image in instances["images"]:
        assert os.path.isfile(os.path.join(paths["image_root"], image["file_name"])), image["file_name"]


def test_records_and_the_ground_truth_scores_pq_100(prepared):
    name = "cityscapes_fine_panoptic_val_separated"
    records = DatasetCatalog.get(name)
    metadata = MetadataCatalog.get(name)
    assert len(records) == 2 and metadata.evaluator_type == "coco_panoptic_seg"
    evaluator = PanopticQualityEvaluator(name)
    evaluator.reset()
    for record in records:
        assert os.path.isfile(record["file_name"]) and os.path.isfile(record["sem_seg_file_name"])
        cars = [a for a in record["annotations"] if a["category_id"] == 2]
        assert cars and all(a["bbox"][2] > 0 for a in cars)
        ids = rgb_to_ids(np.asarray(Image.open(record["pan_seg_file_name"])))
        segments = [dict(s) for s in record["segments_info"] if not s.get("iscrowd")]
        kept = np.isin(ids, [s["id"] for s in segments])
        evaluator.process([record], [{"panoptic_seg": (torch.from_numpy(np.where(kept, ids, 0)), segments)}])
    results = evaluator.evaluate()["panoptic_seg"]
    assert results["PQ"] == pytest.approx(100.0) and results["PQ_th"] == pytest.approx(100.0)
    assert results["PQ-road"] == pytest.approx(100.0) and "PQ-car" in results
