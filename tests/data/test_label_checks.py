"""Bad samples stop training and evaluation with their file names: labels out of range, colour and
palette labels, a label of another size than its image, a truncated image."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from detectron2.data import DatasetCatalog

from ccnet_d2.data import build_train_mapper
from ccnet_d2.evaluation import build_evaluator
from tests.common import build_cfg, config_path

from .trees import make_lip_tree

LIP_CONFIG = config_path("LIP-HumanParsing/ccnet_R_101_os8_r2_ccl_473x473_115k_bs40_lip.yaml")


def _lip(dataset_root, split="train"):
    """A generated LIP tree, the split's first record and its mapper (training) or evaluator (val)."""
    make_lip_tree(str(dataset_root), size=(40, 30))
    record = DatasetCatalog.get(f"lip_sem_seg_{split}")[0]
    return record


def _map(record):
    return build_train_mapper(build_cfg(LIP_CONFIG, "INPUT.CROP.SIZE", "(24, 24)"))(dict(record))


def test_a_good_sample_maps(dataset_root):
    assert _map(_lip(dataset_root))["sem_seg"].shape == (24, 24)


def test_label_values_beyond_the_classes_name_the_file(dataset_root):
    record = _lip(dataset_root)
    labels = np.array(Image.open(record["sem_seg_file_name"]))
    labels[:5, :5] = 200
    Image.fromarray(labels).save(record["sem_seg_file_name"])
    with pytest.raises(ValueError, match=rf"label '{record['sem_seg_file_name']}' holds values \[200\]"):
        _map(record)


@pytest.mark.parametrize("mode, message", [("RGB", "is a 'RGB' image; expected single-channel class ids"),
                                           ("P", r"is a palette \('P'\) image")])
def test_colour_and_palette_labels_name_the_file(dataset_root, mode, message):
    record = _lip(dataset_root)
    label = Image.open(record["sem_seg_file_name"]).convert(mode)
    label.save(record["sem_seg_file_name"])
    with pytest.raises(ValueError, match=rf"label '{record['sem_seg_file_name']}' {message}"):
        _map(record)


def test_a_label_of_another_size_names_both_files(dataset_root):
    record = _lip(dataset_root)
    Image.fromarray(np.zeros((39, 30), np.uint8)).save(record["sem_seg_file_name"])
    with pytest.raises(ValueError, match=r"is 30x39 \(WxH\) but its image .* is 30x40"):
        _map(record)


def test_a_truncated_image_names_the_sample(dataset_root):
    record = _lip(dataset_root)
    with open(record["file_name"], "rb") as f:
        data = f.read()
    with open(record["file_name"], "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(RuntimeError, match=rf"cannot load the training sample '{record['file_name']}'"):
        _map(record)


@pytest.mark.parametrize("damage, message", [("values", r"holds values \[25\]"), ("colour", "is a 'RGB' image")])
def test_evaluation_refuses_bad_labels_with_their_path(dataset_root, tmp_path, damage, message):
    record = _lip(dataset_root, "val")
    path = record["sem_seg_file_name"]
    labels = np.array(Image.open(path))
    if damage == "values":
        labels[0, 0] = 25  # LIP has 20 classes: 20-254 would be counted as other classes
        Image.fromarray(labels).save(path)
    else:
        Image.fromarray(labels).convert("RGB").save(path)
    evaluator = build_evaluator(build_cfg(LIP_CONFIG, "OUTPUT_DIR", str(tmp_path)), "lip_sem_seg_val")
    evaluator.reset()
    prediction = {"sem_seg": torch.zeros(20, *labels.shape[:2])}
    with pytest.raises(ValueError, match=rf"label '{path}' {message}"):
        evaluator.process([{"file_name": record["file_name"]}], [prediction])
    assert os.path.exists(path)
