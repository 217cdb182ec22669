"""ccnet_d2's Cityscapes loaders: the records of Detectron2's own loaders (where those run), masks that
match the instance images cityscapesscripts draws, and every missing file named."""
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from ccnet_d2.data.checks import MissingFilesError
from ccnet_d2.data.datasets import cityscapes

from .trees import make_cityscapes_scene_tree


def detectron2_result(function, *args, **kwargs):
    """Detectron2's own loader or evaluator result; a skip where this detectron2 imports the unpublished
    copy of cityscapesscripts (its main branch since December 2024), the reason ccnet_d2 has its own."""
    try:
        return function(*args, **kwargs)
    except ModuleNotFoundError as e:
        if (e.name or "").startswith("deeplearning"):
            pytest.skip(f"this detectron2's Cityscapes code imports an unpublished package ({e})")
        raise


@pytest.fixture
def scene(dataset_root):
    make_cityscapes_scene_tree(str(dataset_root))
    root = os.path.join(str(dataset_root), "cityscapes")
    return os.path.join(root, "leftImg8bit", "val"), os.path.join(root, "gtFine", "val")


def test_catalog_names_use_these_loaders_with_detectron2s_metadata(scene):
    from detectron2.data.datasets.builtin_meta import _get_builtin_metadata

    records = DatasetCatalog.get("cityscapes_fine_instance_seg_val")
    assert [os.path.basename(r["file_name"]) for r in records] == sorted(os.listdir(os.path.join(scene[0], "bremen")))
    metadata = MetadataCatalog.get("cityscapes_fine_instance_seg_val")
    assert metadata.evaluator_type == "cityscapes_instance" and os.path.normpath(metadata.gt_dir) == scene[1]
    assert metadata.thing_classes == _get_builtin_metadata("cityscapes")["thing_classes"]
    assert MetadataCatalog.get("cityscapes_fine_sem_seg_val").ignore_label == 255


def test_instance_records_equal_detectron2s(scene):
    from detectron2.data.datasets import cityscapes as d2_cityscapes

    ours = cityscapes.load_cityscapes_instances(*scene, workers=1)
    theirs = detectron2_result(d2_cityscapes.load_cityscapes_instances, *scene, from_json=True, to_polygons=True)
    assert sorted(theirs, key=lambda r: r["file_name"]) == ours


def test_semantic_records_equal_detectron2s(scene):
    from detectron2.data.datasets import cityscapes as d2_cityscapes

    ours = cityscapes.load_cityscapes_semantic(*scene)
    theirs = detectron2_result(d2_cityscapes.load_cityscapes_semantic, *scene)
    assert sorted(theirs, key=lambda r: r["file_name"]) == ours
    assert all(os.path.isfile(r["sem_seg_file_name"]) for r in ours)


def _polygon_mask(annotation, height, width):
    rles = mask_util.frPyObjects(annotation["segmentation"], height, width)
    return mask_util.decode(mask_util.merge(rles)).astype(bool)


def test_instance_polygons_match_the_instance_images_cityscapesscripts_draws(scene):
    """Independent of Detectron2: each loaded instance, rasterised, against the cityscapesscripts
    ``instanceIds`` image drawn from the same polygons."""
    from cityscapesscripts.helpers.labels import labels

    thing_ids = [l.id for l in labels if l.hasInstances and not l.ignoreInEval]
    for record in cityscapes.load_cityscapes_instances(*scene, workers=1):
        instance_ids = np.asarray(Image.open(record["file_name"].replace("leftImg8bit", "gtFine").replace(
            "gtFine.png", "gtFine_instanceIds.png")))
        names = sorted((MetadataCatalog.get("cityscapes_fine_instance_seg_val").thing_classes[a["category_id"]],
                        a["iscrowd"]) for a in record["annotations"])
        # The deleted car, the license plate and the stuff classes leave no instance.
        assert names == [("car", False), ("person", False), ("person", True), ("truck", False)]
        for annotation in record["annotations"]:
            label_id = thing_ids[annotation["category_id"]]
            # Crowd pixels carry the label id; the first instance of a class, label id * 1000.
            truth = instance_ids == (label_id if annotation["iscrowd"] else label_id * 1000)
            mask = _polygon_mask(annotation, record["height"], record["width"])
            iou = (mask & truth).sum() / (mask | truth).sum()
            assert iou > 0.9, (record["file_name"], annotation["category_id"], iou)
            x0, y0, x1, y1 = annotation["bbox"]
            ys, xs = np.nonzero(truth)
            assert abs(x0 - xs.min()) <= 1 and abs(x1 - (xs.max() + 1)) <= 1 and abs(y0 - ys.min()) <= 1
        truck = next(a for a in record["annotations"] if thing_ids[a["category_id"]] == 27)
        assert len(truck["segmentation"]) == 2  # cut in two by the later pole


def test_instance_records_from_the_process_pool_equal_the_sequential_ones(scene, monkeypatch):
    monkeypatch.setattr(cityscapes, "POOL_MIN_FRAMES", 1)
    assert cityscapes.load_cityscapes_instances(*scene, workers=2) == \
        cityscapes.load_cityscapes_instances(*scene, workers=1)


def test_missing_annotation_files_are_named(scene):
    image_dir, gt_dir = scene
    os.remove(os.path.join(gt_dir, "bremen", "bremen_000001_000019_gtFine_labelTrainIds.png"))
    with pytest.raises(MissingFilesError, match="bremen_000001_000019_gtFine_labelTrainIds.png") as error:
        DatasetCatalog.get("cityscapes_fine_sem_seg_val")
    assert "tools/prepare_cityscapes.py" in str(error.value)
    os.remove(os.path.join(gt_dir, "bremen", "bremen_000002_000019_gtFine_polygons.json"))
    with pytest.raises(MissingFilesError, match="bremen_000002_000019_gtFine_polygons.json"):
        DatasetCatalog.get("cityscapes_fine_instance_seg_val")


def test_a_foreign_file_in_the_image_folder_is_named(scene):
    stray = os.path.join(scene[0], "bremen", "notes.txt")
    open(stray, "w").close()
    with pytest.raises(ValueError, match="notes.txt"):
        cityscapes.load_cityscapes_semantic(*scene)
