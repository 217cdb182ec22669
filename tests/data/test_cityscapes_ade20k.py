"""Cityscapes and ADE20K: Detectron2's registrations read what our preparation tools write."""
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import read_image
from PIL import Image

from ccnet_d2.data import check_dataset_available

from tests.common import load_tool
from .trees import make_ade20k_tree, make_cityscapes_tree


def test_prepare_cityscapes_writes_train_ids_that_the_sem_seg_dataset_reads(dataset_root):
    frames = make_cityscapes_tree(str(dataset_root))
    with pytest.raises(FileNotFoundError, match="labelTrainIds") as error:
        check_dataset_available("cityscapes_fine_sem_seg_train")  # folders exist, train ids not made yet
    assert "tools/prepare_cityscapes.py" in str(error.value)

    load_tool("prepare_cityscapes").main([os.path.join(str(dataset_root), "cityscapes"), "--workers", "1"])
    check_dataset_available("cityscapes_fine_sem_seg_train")
    records = DatasetCatalog.get("cityscapes_fine_sem_seg_train")
    assert sorted(os.path.basename(r["file_name"]) for r in records) == [
        f + "_leftImg8bit.png" for f in sorted(frames["train"])]
    label = read_image(records[0]["sem_seg_file_name"], "L")[:, :, 0]
    height, width = label.shape
    assert (label[1:-1, 1:width // 2 - 2] == 0).all()               # road: train id 0
    assert (label[6:height - 6, width // 2 + 6:width - 6] == 13).all()  # car: train id 13
    assert (label[:, width // 2 + 1] == 255).all()                   # unlabelled gap: ignored
    assert MetadataCatalog.get("cityscapes_fine_sem_seg_train").stuff_classes[13] == "car"


def test_prepare_ade20k_shifts_labels_and_maps_other_to_ignore(dataset_root):
    labels = make_ade20k_tree(str(dataset_root))
    load_tool("prepare_ade20k").main([])  # default: $DETECTRON2_DATASETS/ADEChallengeData2016
    for split, name in (("training", "ade20k_sem_seg_train"), ("validation", "ade20k_sem_seg_val")):
        check_dataset_available(name)
        records = DatasetCatalog.get(name)
        assert len(records) == len(labels[split])
        for record in records:
            original = labels[split][os.path.splitext(os.path.basename(record["file_name"]))[0]]
            converted = np.asarray(Image.open(record["sem_seg_file_name"]))
            assert converted[0, 0] == 255 and converted[0, 1] == 0 and converted[0, 2] == 149
            np.testing.assert_array_equal(converted[original > 0], original[original > 0] - 1)
            assert (converted[original == 0] == 255).all()
    assert len(MetadataCatalog.get("ade20k_sem_seg_val").stuff_classes) == 150


@pytest.mark.parametrize("name, expected", [
    ("cityscapes_fine_sem_seg_val", "leftImg8bit/{train,val,test}/<city>"),
    ("ade20k_sem_seg_train", "annotations_detectron2/{training,validation}"),
])
def test_missing_builtin_dataset_names_the_expected_tree(dataset_root, name, expected):
    with pytest.raises(FileNotFoundError) as error:
        check_dataset_available(name)
    assert expected in str(error.value) and "DETECTRON2_DATASETS" in str(error.value)


def test_unregistered_name_is_a_key_error():
    with pytest.raises(KeyError, match="not registered"):
        check_dataset_available("lip_sem_seg_tarin")
