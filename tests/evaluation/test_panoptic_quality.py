"""Panoptic quality (``ccnet_d2.evaluation.panoptic``) against values worked out by hand on small images,
each rule of the definition (IoU > 0.5, void left out of the union, crowd and void predictions not false
positives, averages over the categories that occur) with a case that fails without it; then the evaluator
on a COCO panoptic tree written here, with both forms of prediction Detectron2 models return."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from detectron2.data import MetadataCatalog

from ccnet_d2.data.panoptic_format import ids_to_rgb, rgb_to_ids
from ccnet_d2.evaluation import PanopticQualityEvaluator
from ccnet_d2.evaluation.panoptic import Counts, match_segments, summarize_panoptic_quality

SKY, CAR, PERSON = 10, 1, 2
CATEGORIES = [{"id": CAR, "name": "car", "isthing": 1}, {"id": PERSON, "name": "person", "isthing": 1},
              {"id": SKY, "name": "sky", "isthing": 0}]


def _scene():
    """6x6 ground truth: sky on rows 0-2 (id 1, 18 px), two cars on rows 3-5 (id 2 cols 0-2, id 3 cols 3-5)."""
    gt = np.zeros((6, 6), np.int64)
    gt[:3] = 1
    gt[3:, :3] = 2
    gt[3:, 3:] = 3
    segments = [{"id": 1, "category_id": SKY}, {"id": 2, "category_id": CAR}, {"id": 3, "category_id": CAR}]
    return gt, segments


def test_hand_computed_image():
    gt, gt_segments = _scene()
    pred = np.zeros((6, 6), np.int64)
    pred[:4, :3] = 1  # sky spills onto car 2's top row: 18 / 21
    pred[:3, 3:] = 1
    pred[4:, :3] = 2  # car 2's lower 6 of 9 pixels: IoU 6 / 9
    pred[3:, 5] = 3  # 3 of car 3's 9 pixels: IoU 1/3, no match -> a false positive and a false negative
    pred_segments = [{"id": 1, "category_id": SKY}, {"id": 2, "category_id": CAR}, {"id": 3, "category_id": CAR}]
    counts = match_segments(gt, gt_segments, pred, pred_segments)
    assert counts[SKY] == Counts(tp=1, iou=pytest.approx(18 / 21))
    assert counts[CAR] == Counts(tp=1, fp=1, fn=1, iou=pytest.approx(6 / 9))
    summary = summarize_panoptic_quality(counts, CATEGORIES)
    car_pq, sky_pq = (2 / 3) / (1 + 0.5 + 0.5), 18 / 21
    assert summary["per_category"][CAR] == pytest.approx({"pq": car_pq, "sq": 2 / 3, "rq": 0.5})
    assert summary["per_category"][SKY] == pytest.approx({"pq": sky_pq, "sq": sky_pq, "rq": 1.0})
    assert PERSON not in summary["per_category"]  # never seen: not averaged
    assert summary["All"] == pytest.approx({"pq": (car_pq + sky_pq) / 2, "sq": (2 / 3 + sky_pq) / 2,
                                            "rq": 0.75, "n": 2})
    assert summary["Things"]["n"] == 1 and summary["Things"]["pq"] == pytest.approx(car_pq)
    assert summary["Stuff"]["pq"] == pytest.approx(sky_pq)


def test_perfect_prediction_and_wrong_category():
    gt, segments = _scene()
    summary = summarize_panoptic_quality(match_segments(gt, segments, gt, segments), CATEGORIES)
    assert summary["All"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 2}
    relabelled = [dict(s, category_id=PERSON) if s["id"] == 2 else s for s in segments]
    counts = match_segments(gt, segments, gt, relabelled)  # same pixels, other class: never a match
    assert counts[CAR] == Counts(tp=1, fn=1, iou=1.0) and counts[PERSON] == Counts(fp=1)


def test_iou_must_exceed_one_half():
    gt = np.array([[1, 1, 1, 1]])
    pred = np.array([[1, 1, 0, 0]])  # IoU exactly 0.5
    counts = match_segments(gt, [{"id": 1, "category_id": CAR}], pred, [{"id": 1, "category_id": CAR}])
    assert counts[CAR] == Counts(fp=1, fn=1)


def test_void_pixels_leave_the_union_and_excuse_predictions():
    gt = np.array([[1, 1, 0, 0, 0, 0, 0, 0]])  # a 2-pixel car, the rest void
    pred = np.array([[1, 1, 1, 1, 2, 2, 2, 3]])  # the car + 2 void pixels; a segment on void; a small one
    gt_segments = [{"id": 1, "category_id": CAR}]
    pred_segments = [{"id": 1, "category_id": CAR}, {"id": 2, "category_id": SKY}, {"id": 3, "category_id": PERSON}]
    counts = match_segments(gt, gt_segments, pred, pred_segments)
    # union = 4 + 2 - 2 - 2 void = 2: IoU 1 (0.5 without the void rule: no match)
    assert counts[CAR] == Counts(tp=1, iou=1.0)
    assert SKY not in counts and PERSON not in counts  # wholly on void: not false positives


def test_crowd_regions():
    gt = np.array([[1, 1, 1, 1, 2, 2]])  # a crowd of cars (id 1), a person (id 2)
    gt_segments = [{"id": 1, "category_id": CAR, "iscrowd": 1}, {"id": 2, "category_id": PERSON}]
    pred = np.array([[1, 1, 1, 3, 2, 2]])
    pred_segments = [{"id": 1, "category_id": CAR}, {"id": 2, "category_id": PERSON},
                     {"id": 3, "category_id": PERSON}]
    counts = match_segments(gt, gt_segments, pred, pred_segments)
    assert CAR not in counts  # a car on the car crowd: neither TP nor FP; the crowd is no false negative
    assert counts[PERSON] == Counts(tp=1, fp=1, iou=1.0)  # a person on the car crowd is a false positive


def test_inconsistent_inputs_are_named():
    gt, segments = _scene()
    with pytest.raises(ValueError, match=r"segment ids \[3\] are in the image but not in its segments_info"):
        match_segments(gt, segments, gt, segments[:2], what="pred.png")
    with pytest.raises(ValueError, match="cover no pixel"):
        match_segments(gt, segments, gt, segments + [{"id": 9, "category_id": CAR}])
    with pytest.raises(ValueError, match="the prediction is 6x5 and the ground truth 6x6"):
        match_segments(gt, segments, gt[:, :5], segments)


def test_rgb_round_trip():
    ids = np.array([[0, 1, 255, 256], [65535, 65536, 2 ** 24 - 1, 7]])
    rgb = ids_to_rgb(ids)
    assert rgb[0, 3].tolist() == [0, 1, 0] and rgb[1, 1].tolist() == [0, 0, 1]
    assert (rgb_to_ids(rgb) == ids).all()
    with pytest.raises(ValueError, match=r"\[0, 2\^24\)"):
        ids_to_rgb(np.array([2 ** 24]))


def _register(tmp_path, **mappings) -> str:
    """A two-image COCO panoptic tree (the scene of ``_scene`` twice, the second with void on row 0) and
    its registration with the given id mappings."""
    gt, segments = _scene()
    second = gt.copy()
    second[0] = 0
    (tmp_path / "panoptic").mkdir(exist_ok=True)
    annotations = []
    for image_id, ids in enumerate((gt, second)):
        Image.fromarray(ids_to_rgb(ids)).save(tmp_path / "panoptic" / f"{image_id}.png")
        annotations.append({"image_id": image_id, "file_name": f"{image_id}.png",
                            "segments_info": [dict(s, iscrowd=0) for s in segments]})
    with open(tmp_path / "panoptic.json", "w") as f:
        json.dump({"annotations": annotations, "categories": CATEGORIES, "images": []}, f)
    name = f"test_panoptic_{os.path.basename(tmp_path)}"
    MetadataCatalog.get(name).set(panoptic_json=str(tmp_path / "panoptic.json"),
                                  panoptic_root=str(tmp_path / "panoptic"), label_divisor=1000, **mappings)
    return name


@pytest.fixture
def separated_dataset(tmp_path):
    """Detectron2's "separated" convention (Panoptic FPN): things contiguous from 0, stuff from 1."""
    name = _register(tmp_path, thing_dataset_id_to_contiguous_id={CAR: 0, PERSON: 1},
                     stuff_dataset_id_to_contiguous_id={0: 0, SKY: 1})
    yield name
    MetadataCatalog.remove(name)


def test_evaluator_over_a_dataset(separated_dataset):
    gt, _ = _scene()
    pred = gt.copy()
    pred[3:, 5] = 4  # car 3 loses a column to a predicted person: IoU 6/9, and the person is a false positive
    segments_info = [{"id": 1, "category_id": 1, "isthing": False}, {"id": 2, "category_id": 0, "isthing": True},
                     {"id": 3, "category_id": 0, "isthing": True}, {"id": 4, "category_id": 1, "isthing": True}]
    evaluator = PanopticQualityEvaluator(separated_dataset)
    evaluator.reset()
    for image_id in (0, 1):
        evaluator.process([{"image_id": image_id, "file_name": f"{image_id}.jpg"}],
                          [{"panoptic_seg": (torch.from_numpy(pred).int(), [dict(s) for s in segments_info])}])
    results = evaluator.evaluate()["panoptic_seg"]
    # Sky: IoU 1 in both images (in the second, the 6 predicted pixels on void leave the union: 12 / 12).
    car = (1 + 2 / 3 + 1 + 2 / 3) / 4  # 4 TP
    person, sky = 0.0, 1.0  # 2 FP; 2 TP
    assert results["PQ-car"] == pytest.approx(100 * car) and results["PQ-sky"] == pytest.approx(100 * sky)
    assert results["PQ-person"] == pytest.approx(100 * person)
    assert results["PQ"] == pytest.approx(100 * (car + person + sky) / 3)
    assert results["PQ_th"] == pytest.approx(100 * (car + person) / 2)
    assert results["RQ_st"] == pytest.approx(100.0) and results["SQ_th"] == pytest.approx(100 * car / 2)


def test_predictions_in_the_semantic_form(tmp_path):
    """Predictions given as contiguous category * label_divisor + instance (-1 void) and no segments_info,
    as Panoptic-DeepLab returns them (one contiguous space for things and stuff)."""
    name = _register(tmp_path, thing_dataset_id_to_contiguous_id={CAR: 0, PERSON: 1},
                     stuff_dataset_id_to_contiguous_id={SKY: 2})
    gt, _ = _scene()
    pred = np.where(gt == 1, 2 * 1000, 0 * 1000 + gt)
    pred[0, 0] = -1  # one void pixel: still a match
    evaluator = PanopticQualityEvaluator(name)
    evaluator.reset()
    evaluator.process([{"image_id": 0}], [{"panoptic_seg": (torch.from_numpy(pred), None)}])
    results = evaluator.evaluate()["panoptic_seg"]
    MetadataCatalog.remove(name)
    assert results["PQ_th"] == pytest.approx(100.0) and results["PQ"] == pytest.approx(100 * (1 + 17 / 18) / 2)


def test_missing_metadata_is_named(tmp_path):
    name = f"test_panoptic_bare_{os.path.basename(tmp_path)}"
    MetadataCatalog.get(name).set(thing_dataset_id_to_contiguous_id={}, stuff_dataset_id_to_contiguous_id={})
    evaluator = PanopticQualityEvaluator(name)
    evaluator.reset()
    with pytest.raises(KeyError, match="no 'panoptic_json'"):
        evaluator.process([{"image_id": 0}], [{"panoptic_seg": (torch.zeros(2, 2, dtype=torch.int), [])}])
    MetadataCatalog.remove(name)
