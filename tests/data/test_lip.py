"""LIP registration against generated trees in the official release's layout and in the flat CE2P / SCHP one."""
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import read_image

from ccnet_d2.data import check_dataset_available

from .trees import LIP_TREES, make_lip_tree


def test_lip_metadata_names_twenty_parts_and_the_left_right_pairs(dataset_root):
    meta = MetadataCatalog.get("lip_sem_seg_val")
    assert len(meta.stuff_classes) == 20
    assert meta.stuff_classes[0] == "Background" and meta.stuff_classes[5] == "UpperClothes"
    for left, right in meta.flip_pairs:
        assert meta.stuff_classes[left].startswith("Left-")
        assert meta.stuff_classes[right] == "Right-" + meta.stuff_classes[left][len("Left-"):]
    assert sorted(meta.flip_pairs) == [(14, 15), (16, 17), (18, 19)]
    assert meta.ignore_label == 255 and meta.evaluator_type == "sem_seg"


@pytest.mark.parametrize("layout", ["official", "flat"])
def test_lip_records_follow_the_id_lists_and_read_back_the_labels(dataset_root, register_datasets, layout):
    labels = make_lip_tree(str(dataset_root), layout=layout)
    register_datasets(str(dataset_root))  # the layout is detected when the datasets are registered
    for split, name in (("train", "lip_sem_seg_train"), ("val", "lip_sem_seg_val")):
        check_dataset_available(name)
        records = DatasetCatalog.get(name)
        assert [r["image_id"] for r in records] == list(labels[split])  # id-list order
        image_dir, label_dir, _ = LIP_TREES[layout](split)
        for record in records:
            assert record["file_name"] == os.path.join(str(dataset_root), image_dir, record["image_id"] + ".jpg")
            assert record["sem_seg_file_name"] == os.path.join(str(dataset_root), label_dir,
                                                               record["image_id"] + ".png")
            np.testing.assert_array_equal(read_image(record["sem_seg_file_name"], "L")[:, :, 0],
                                          labels[split][record["image_id"]])


def test_each_split_is_read_from_the_layout_that_holds_it(dataset_root, register_datasets):
    official = make_lip_tree(str(dataset_root), splits=(("train", 2),), layout="official")
    flat = make_lip_tree(str(dataset_root), splits=(("train", 3), ("val", 1)), seed=1, layout="flat")
    register_datasets(str(dataset_root))
    assert [r["image_id"] for r in DatasetCatalog.get("lip_sem_seg_train")] == list(official["train"])  # first
    assert [r["image_id"] for r in DatasetCatalog.get("lip_sem_seg_val")] == list(flat["val"])


def test_an_incomplete_flat_split_is_not_taken_for_one(dataset_root, register_datasets):
    make_lip_tree(str(dataset_root), splits=(("val", 1),), layout="flat")
    os.remove(os.path.join(str(dataset_root), "LIP/val_id.txt"))
    register_datasets(str(dataset_root))
    with pytest.raises(FileNotFoundError, match="TrainVal_images/val_id.txt"):
        check_dataset_available("lip_sem_seg_val")


def test_missing_lip_folder_names_the_expected_tree_and_the_variable(dataset_root):
    with pytest.raises(FileNotFoundError) as error:
        DatasetCatalog.get("lip_sem_seg_train")
    message = str(error.value)
    for expected in ("lip_sem_seg_train", "TrainVal_images/train_images", "train_segmentations", "train_id.txt",
                     "(the official release)", "(the flat layout of CE2P / SCHP)", "{train,val}_images/*.jpg",
                     "{train,val}_segmentations/*.png", "DETECTRON2_DATASETS", str(dataset_root)):
        assert expected in message


def test_an_image_listed_but_absent_is_named(dataset_root):
    labels = make_lip_tree(str(dataset_root), splits=(("val", 2),))
    missing_id = list(labels["val"])[1]
    os.remove(os.path.join(str(dataset_root), "LIP/TrainVal_images/val_images", missing_id + ".jpg"))
    with pytest.raises(FileNotFoundError, match=missing_id + ".jpg"):
        DatasetCatalog.get("lip_sem_seg_val")
