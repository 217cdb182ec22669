"""Semantic-segmentation training augmentations and the training mapper."""
import numpy as np
import pytest
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.data import transforms as T
from PIL import Image

from ccnet_d2 import add_ccnet_config
from ccnet_d2.data import (
    HFlipSwapLabelsTransform,
    RandomHFlipSwapLabels,
    build_semantic_train_augmentations,
    build_train_mapper,
)

from .trees import make_lip_tree

LIP_PAIRS = [(14, 15), (16, 17), (18, 19)]


def _semantic_cfg(train=("lip_sem_seg_train",), crop=(48, 48), scale=(1.0, 1.0), flip="horizontal"):
    cfg = get_cfg()
    add_ccnet_config(cfg)
    cfg.MODEL.META_ARCHITECTURE = "SemanticSegmentor"
    cfg.DATASETS.TRAIN = train
    cfg.INPUT.SCALE_RANGE = scale
    cfg.INPUT.CROP.ENABLED = True
    cfg.INPUT.CROP.TYPE = "absolute"
    cfg.INPUT.CROP.SIZE = list(crop)
    cfg.INPUT.RANDOM_FLIP = flip
    return cfg


def _swap_reference(label):
    """Mirror, then rename every left part right and vice versa, one pixel at a time."""
    mirrored = label[:, ::-1]
    rename = {14: 15, 15: 14, 16: 17, 17: 16, 18: 19, 19: 18}
    return np.vectorize(lambda v: rename.get(int(v), int(v)))(mirrored).astype(label.dtype)


def test_lip_flip_mirrors_and_swaps_left_right_labels():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 20, (7, 11), dtype=np.uint8)
    label[0, :6] = [14, 15, 16, 17, 18, 19]
    label[-1, -1] = 255
    image = rng.integers(0, 256, (7, 11, 3), dtype=np.uint8)

    aug_input = T.AugInput(image.copy(), sem_seg=label.copy())
    transforms = T.AugmentationList([RandomHFlipSwapLabels(LIP_PAIRS, prob=1.0)])(aug_input)

    np.testing.assert_array_equal(aug_input.image, image[:, ::-1])  # pixels only mirror
    np.testing.assert_array_equal(aug_input.sem_seg, _swap_reference(label))
    np.testing.assert_array_equal(aug_input.sem_seg[0, ::-1][:6], [15, 14, 17, 16, 19, 18])
    assert aug_input.sem_seg[-1, 0] == 255
    np.testing.assert_array_equal(transforms.inverse().apply_segmentation(aug_input.sem_seg), label)


def test_lip_config_gets_the_swapping_flip_and_other_datasets_the_plain_one(dataset_root):
    lip_flips = [a for a in build_semantic_train_augmentations(_semantic_cfg()) if "Flip" in type(a).__name__]
    assert len(lip_flips) == 1 and isinstance(lip_flips[0], RandomHFlipSwapLabels)
    assert [tuple(p) for p in lip_flips[0].flip_pairs] == LIP_PAIRS

    ade_flips = [a for a in build_semantic_train_augmentations(_semantic_cfg(train=("ade20k_sem_seg_train",)))
                 if "Flip" in type(a).__name__]
    assert len(ade_flips) == 1 and type(ade_flips[0]) is T.RandomFlip
    label = np.array([[14, 15, 16]], dtype=np.uint8)
    flipped = T.HFlipTransform(3).apply_segmentation(label)  # what RandomFlip applies: no renaming
    assert flipped.tolist() == [[16, 15, 14]]

    with pytest.raises(ValueError, match="flip_pairs"):
        build_semantic_train_augmentations(_semantic_cfg(train=("lip_sem_seg_train", "ade20k_sem_seg_train")))


def test_small_image_is_scaled_then_padded_to_the_crop_with_ignore(dataset_root):
    labels = make_lip_tree(str(dataset_root), splits=(("train", 1),), size=(40, 30))
    (record,) = DatasetCatalog.get("lip_sem_seg_train")
    mapper = build_train_mapper(_semantic_cfg(crop=(48, 48), scale=(0.5, 0.5), flip="none"))
    out = mapper(record)

    assert tuple(out["image"].shape) == (3, 48, 48)
    sem_seg = out["sem_seg"].numpy()
    assert sem_seg.shape == (48, 48)
    original = labels["train"][record["image_id"]]
    expected = np.asarray(Image.fromarray(original).resize((15, 20), Image.NEAREST))  # 30x40 (w x h) * 0.5
    np.testing.assert_array_equal(sem_seg[:20, :15], expected)
    assert (sem_seg[20:, :] == 255).all() and (sem_seg[:, 15:] == 255).all()


def test_large_image_crop_is_a_window_of_the_label(dataset_root):
    labels = make_lip_tree(str(dataset_root), splits=(("train", 1),), size=(40, 30))
    (record,) = DatasetCatalog.get("lip_sem_seg_train")
    mapper = build_train_mapper(_semantic_cfg(crop=(16, 12), flip="none"))
    original = labels["train"][record["image_id"]]
    for _ in range(3):
        sem_seg = mapper(record)["sem_seg"].numpy()
        assert sem_seg.shape == (16, 12) and (sem_seg != 255).all()
        windows = [(y, x) for y in range(40 - 16 + 1) for x in range(30 - 12 + 1)
                   if np.array_equal(original[y:y + 16, x:x + 12], sem_seg)]
        assert windows, "the crop is not a window of the original label"


def test_mapper_only_for_semantic_segmentors():
    cfg = _semantic_cfg()
    cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
    assert build_train_mapper(cfg) is None


def test_swap_transform_keeps_unpaired_ids_and_dtype():
    label = np.array([[0, 13, 255, 14]], dtype=np.uint8)
    out = HFlipSwapLabelsTransform(4, LIP_PAIRS).apply_segmentation(label)
    assert out.dtype == np.uint8 and out.tolist() == [[15, 255, 13, 0]]
