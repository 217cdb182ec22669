"""Panoptic quality (PQ, SQ, RQ; Kirillov et al., "Panoptic Segmentation", CVPR 2019) computed in-process
from the definition, with the COCO panoptic rules for void and crowd pixels.

Detectron2's ``COCOPanopticEvaluator`` needs ``panopticapi``, which is not on the package registry (only
unofficial copies that pin numpy < 2), so a plain ``pip install`` cannot bring it. This evaluator takes
the same inputs (the dataset's ``panoptic_json`` and ``panoptic_root``, the model's ``panoptic_seg``) and
returns the same keys (``PQ``, ``SQ``, ``RQ`` and their ``_th`` / ``_st`` versions, in percent), plus the PQ
of each category. Per image, a predicted and a ground-truth segment of the same category match when their
IoU is above 0.5 (the IoU's union leaves out the predicted pixels on void); an unmatched ground-truth
segment is a false negative unless it is a crowd region; an unmatched prediction is a false positive
unless more than half of it lies on void or on a crowd region of its category. Per category,
PQ = sum of matched IoUs / (TP + FP/2 + FN/2), SQ = sum of IoUs / TP, RQ = TP / (TP + FP/2 + FN/2); the
averages are over the categories with at least one TP, FP or FN. Only per-category counts travel between
processes, not the images.
"""
import itertools
import json
import logging
import os
from collections import OrderedDict
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np
from tabulate import tabulate

from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from ..data.panoptic_format import VOID_ID, read_panoptic_png, segment_id_mismatch

__all__ = ["PanopticQualityEvaluator", "Counts", "match_segments", "summarize_panoptic_quality"]

_logger = logging.getLogger(__name__)


class Counts(NamedTuple):
    """One category's matches over some images."""
    tp: int = 0
    fp: int = 0
    fn: int = 0
    iou: float = 0.0  # sum of the IoUs of the true positives

    def __add__(self, other):
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.iou + other.iou)


def _areas(segment_ids: np.ndarray, segments: Sequence[dict], what: str) -> Dict[int, int]:
    """Pixel count of each listed segment; a segment id in the image but not in the list, or listed but
    absent from the image, raises ValueError."""
    ids, counts = np.unique(segment_ids, return_counts=True)
    found = {int(i): int(c) for i, c in zip(ids, counts) if i != VOID_ID}
    unlisted, absent = segment_id_mismatch(found, segments)
    if unlisted:
        raise ValueError(f"{what}: segment ids {unlisted[:5]} are in the image but not in its "
                         f"segments_info {sorted(int(s['id']) for s in segments)[:10]}")
    if absent:
        raise ValueError(f"{what}: segments {absent[:5]} of segments_info cover no pixel")
    return found


def match_segments(gt_ids: np.ndarray, gt_segments: Sequence[dict], pred_ids: np.ndarray,
                   pred_segments: Sequence[dict], what: str = "image") -> Dict[int, Counts]:
    """Per category id: the TP, FP, FN and matched IoU sum of one image. ``*_ids``: segment id per pixel
    (0 = void); ``*_segments``: dicts with ``id`` and ``category_id`` (ground truth also ``iscrowd``),
    category ids of one space (the dataset's)."""
    if gt_ids.shape != pred_ids.shape:
        raise ValueError(f"{what}: the prediction is {pred_ids.shape[0]}x{pred_ids.shape[1]} and the ground truth "
                         f"{gt_ids.shape[0]}x{gt_ids.shape[1]}; panoptic quality compares them pixel by pixel")
    gt_area, pred_area = _areas(gt_ids, gt_segments, what + " (ground truth)"), _areas(pred_ids, pred_segments, what)
    gt = {int(s["id"]): s for s in gt_segments}
    pred = {int(s["id"]): s for s in pred_segments}
    pairs, overlaps = np.unique((gt_ids.astype(np.int64) << 24) | pred_ids.astype(np.int64), return_counts=True)
    overlap = {(int(k >> 24), int(k & 0xFFFFFF)): int(c) for k, c in zip(pairs, overlaps)}  # ids < 2^24
    crowd = {s["category_id"]: int(s["id"]) for s in gt_segments if s.get("iscrowd", 0)}
    counts: Dict[int, Counts] = {}
    matched_gt, matched_pred = set(), set()
    for (g, p), inter in overlap.items():
        if g == VOID_ID or p == VOID_ID or gt[g].get("iscrowd", 0) or gt[g]["category_id"] != pred[p]["category_id"]:
            continue
        union = pred_area[p] + gt_area[g] - inter - overlap.get((VOID_ID, p), 0)
        iou = inter / union
        if iou > 0.5:  # at most one match per segment: segments do not overlap
            category = gt[g]["category_id"]
            counts[category] = counts.get(category, Counts()) + Counts(tp=1, iou=iou)
            matched_gt.add(g)
            matched_pred.add(p)
    for g, segment in gt.items():
        if g not in matched_gt and not segment.get("iscrowd", 0):
            counts[segment["category_id"]] = counts.get(segment["category_id"], Counts()) + Counts(fn=1)
    for p, segment in pred.items():
        if p in matched_pred:
            continue
        category = segment["category_id"]
        ignored = overlap.get((VOID_ID, p), 0) + (overlap.get((crowd[category], p), 0) if category in crowd else 0)
        if ignored / pred_area[p] <= 0.5:
            counts[category] = counts.get(category, Counts()) + Counts(fp=1)
    return counts


def summarize_panoptic_quality(counts: Dict[int, Counts], categories: Sequence[dict]) -> Dict[str, dict]:
    """{"All" | "Things" | "Stuff": {"pq", "sq", "rq", "n"}, "per_category": {id: {"pq", "sq", "rq"}}} (fractions)
    from per-category counts; ``categories``: the COCO panoptic json's (``id``, ``name``, ``isthing``)."""
    per_category = {}
    for category in categories:
        c = counts.get(category["id"], Counts())
        if c.tp + c.fp + c.fn == 0:
            continue
        denominator = c.tp + 0.5 * c.fp + 0.5 * c.fn
        per_category[category["id"]] = {"pq": c.iou / denominator, "sq": c.iou / c.tp if c.tp else 0.0,
                                        "rq": c.tp / denominator}
    summary = {}
    for group, keep in (("All", lambda c: True), ("Things", lambda c: c["isthing"]), ("Stuff", lambda c: not c["isthing"])):
        chosen = [per_category[c["id"]] for c in categories if c["id"] in per_category and keep(c)]
        summary[group] = {key: float(np.mean([c[key] for c in chosen])) if chosen else 0.0 for key in ("pq", "sq", "rq")}
        summary[group]["n"] = len(chosen)
    summary["per_category"] = per_category
    return summary


class PanopticQualityEvaluator(DatasetEvaluator):
    """PQ of a model's ``panoptic_seg`` outputs against a dataset in the COCO panoptic format (metadata
    ``panoptic_json``, ``panoptic_root``, ``thing_dataset_id_to_contiguous_id``,
    ``stuff_dataset_id_to_contiguous_id``): the results of Detectron2's ``COCOPanopticEvaluator``
    without panopticapi. Works across processes (it gathers the counts)."""

    def __init__(self, dataset_name: str, output_dir: Optional[str] = None):
        self._dataset_name = dataset_name
        self._metadata = MetadataCatalog.get(dataset_name)
        self._output_dir = output_dir
        self._ground_truth = None

    def reset(self):
        self._counts: Dict[int, Counts] = {}

    def _load_ground_truth(self):
        """(image id -> annotation, categories) of ``panoptic_json``, read once on first use (the toy sets write
        their paths into the metadata when first loaded)."""
        if self._ground_truth is None:
            for key in ("panoptic_json", "panoptic_root"):
                if not isinstance(self._metadata.get(key, None), str):
                    raise KeyError(f"panoptic evaluation of {self._dataset_name!r}: its metadata has no {key!r} (the "
                                   "COCO panoptic json and its PNG folder); register it with "
                                   "detectron2.data.datasets.register_coco_panoptic(_separated)")
            with open(self._metadata.panoptic_json) as f:
                data = json.load(f)
            self._ground_truth = ({a["image_id"]: a for a in data["annotations"]}, data["categories"])
        return self._ground_truth

    def _dataset_segments(self, panoptic_image: np.ndarray, segments_info: Optional[List[dict]]):
        """The prediction's segment ids and segments with the dataset's category ids."""
        if segments_info is None:  # ids are category * label_divisor + instance, -1 = void
            divisor = self._metadata.label_divisor
            things = set(self._metadata.thing_dataset_id_to_contiguous_id.values())
            segments_info = [{"id": int(label) + 1, "category_id": int(label) // divisor,
                              "isthing": int(label) // divisor in things}
                             for label in np.unique(panoptic_image) if label != -1]
            panoptic_image = panoptic_image + 1
        thing_ids = {v: k for k, v in self._metadata.thing_dataset_id_to_contiguous_id.items()}
        stuff_ids = {v: k for k, v in self._metadata.stuff_dataset_id_to_contiguous_id.items()}
        converted = []
        for segment in segments_info:
            isthing = segment.get("isthing", None)
            table = thing_ids if isthing else stuff_ids
            category = segment["category_id"] if isthing is None else table[segment["category_id"]]
            converted.append({"id": int(segment["id"]), "category_id": category})
        return panoptic_image, converted

    def process(self, inputs, outputs):
        annotations, _ = self._load_ground_truth()
        for sample, output in zip(inputs, outputs):
            panoptic_image, segments_info = output["panoptic_seg"]
            pred_ids, pred_segments = self._dataset_segments(panoptic_image.cpu().numpy().astype(np.int64),
                                                             segments_info)
            if sample["image_id"] not in annotations:
                raise KeyError(f"image_id {sample['image_id']!r} ({sample.get('file_name')}) has no annotation in "
                               f"{self._metadata.panoptic_json}")
            annotation = annotations[sample["image_id"]]
            gt_file = os.path.join(self._metadata.panoptic_root, annotation["file_name"])
            gt_ids = read_panoptic_png(gt_file)
            image_counts = match_segments(gt_ids, annotation["segments_info"], pred_ids, pred_segments,
                                          what=f"panoptic prediction of {sample.get('file_name')} against {gt_file}")
            for category, c in image_counts.items():
                self._counts[category] = self._counts.get(category, Counts()) + c

    def evaluate(self):
        comm.synchronize()
        gathered = comm.gather(self._counts)
        if not comm.is_main_process():
            return None
        counts: Dict[int, Counts] = {}
        for category, c in itertools.chain.from_iterable(part.items() for part in gathered):
            counts[category] = counts.get(category, Counts()) + c
        _, categories = self._load_ground_truth()
        summary = summarize_panoptic_quality(counts, categories)
        results = OrderedDict()
        for key, group in (("", "All"), ("_th", "Things"), ("_st", "Stuff")):
            for metric in ("pq", "sq", "rq"):
                results[metric.upper() + key] = 100 * summary[group][metric]
        names = {c["id"]: c["name"] for c in categories}
        for category, values in summary["per_category"].items():
            results[f"PQ-{names[category]}"] = 100 * values["pq"]
        table = tabulate([[group] + [100 * summary[group][k] for k in ("pq", "sq", "rq")] + [summary[group]["n"]]
                          for group in ("All", "Things", "Stuff")],
                         headers=["", "PQ", "SQ", "RQ", "#categories"], tablefmt="pipe", floatfmt=".3f")
        kinds = {c["id"]: "thing" if c["isthing"] else "stuff" for c in categories}
        per_category = tabulate([[names[c], kinds[c]] + [100 * v[k] for k in ("pq", "sq", "rq")]
                                 for c, v in summary["per_category"].items()],
                                headers=["category", "", "PQ", "SQ", "RQ"], tablefmt="pipe", floatfmt=".3f")
        _logger.info("Panoptic quality of %s:\n%s\nPer category:\n%s", self._dataset_name, table, per_category)
        return OrderedDict({"panoptic_seg": results})
