"""Pascal VOC 2012 + SBD: the preparation tool on generated VOC and SBD trees, then the registration."""
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import read_image

from tests.common import load_tool
from .trees import make_voc_sbd_tree


def test_prepare_voc_sbd_builds_train_aug_and_single_channel_labels(dataset_root):
    voc_labels, sbd_labels = make_voc_sbd_tree(str(dataset_root))
    load_tool("prepare_voc_sbd").main([])  # defaults: $DETECTRON2_DATASETS/{VOCdevkit/VOC2012,benchmark_RELEASE/dataset}

    voc = os.path.join(str(dataset_root), "VOCdevkit/VOC2012")
    with open(os.path.join(voc, "ImageSets/Segmentation/train_aug.txt")) as f:
        train_aug = f.read().split()
    # (SBD train + SBD val + VOC train) - VOC val; 2007_000033 is in SBD val but is a VOC val image.
    assert train_aug == ["2007_000032", "2007_000039", "2008_000002", "2008_000003"]

    records = {r["image_id"]: r for r in DatasetCatalog.get("voc_2012_sem_seg_train_aug")}
    assert sorted(records) == train_aug
    for image_id, record in records.items():
        label = read_image(record["sem_seg_file_name"], "L")[:, :, 0]
        # VOC's own annotation (with its 255 void border) wins over SBD's for images VOC labels.
        expected = voc_labels[image_id] if image_id in voc_labels else sbd_labels[image_id]
        np.testing.assert_array_equal(label, expected)
    (val,) = DatasetCatalog.get("voc_2012_sem_seg_val")
    np.testing.assert_array_equal(read_image(val["sem_seg_file_name"], "L")[:, :, 0], voc_labels["2007_000033"])


def test_voc_palette_labels_are_why_the_conversion_exists(dataset_root):
    """Detectron2 reads labels with read_image(..., "L"), which maps a palette PNG through its colours."""
    voc_labels, _ = make_voc_sbd_tree(str(dataset_root))
    image_id = "2007_000032"
    raw = read_image(os.path.join(str(dataset_root), "VOCdevkit/VOC2012/SegmentationClass", image_id + ".png"), "L")
    assert not np.array_equal(raw[:, :, 0], voc_labels[image_id])


def test_voc_metadata_and_missing_tree_error(dataset_root):
    meta = MetadataCatalog.get("voc_2012_sem_seg_train_aug")
    assert len(meta.stuff_classes) == 21 and meta.stuff_classes[15] == "person"
    assert meta.ignore_label == 255 and meta.evaluator_type == "sem_seg"
    with pytest.raises(FileNotFoundError) as error:
        DatasetCatalog.get("voc_2012_sem_seg_train_aug")
    for expected in ("SegmentationClassAug", "train_aug.txt", "prepare_voc_sbd.py", "DETECTRON2_DATASETS"):
        assert expected in str(error.value)
