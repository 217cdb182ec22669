"""``check_dataset_available(name)``: fail early, with the expected folder tree, when a dataset is missing.

Detectron2 (and ``ccnet_d2.data.datasets.builtin``) register datasets with paths under
``$DETECTRON2_DATASETS`` (default ``./datasets``), read when the registering module is imported. The
paths a dataset will read are in its metadata (``image_root``, ``gt_dir``, ``json_file``, ...), so that
is what is checked: a missing one raises a ``FileNotFoundError`` that shows the tree the dataset expects
and how to prepare it.
"""
import glob
import os

from detectron2.data import DatasetCatalog, MetadataCatalog

__all__ = ["check_dataset_available", "missing_dataset_error", "EXPECTED_TREES", "MissingFilesError",
           "raise_if_files_missing"]

# Metadata fields that hold a path the dataset's loader reads.
_PATH_FIELDS = ("image_root", "image_dir", "sem_seg_root", "gt_dir", "json_file", "panoptic_root",
                "panoptic_json", "dirname", "split_file")

# Per dataset-name prefix: the tree expected under $DETECTRON2_DATASETS and how to make it.
EXPECTED_TREES = {
    "cityscapes_": """\
cityscapes/
  leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
  gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_{polygons.json,labelIds.png,instanceIds.png}
  gtFine/.../<city>_<seq>_<frame>_gtFine_labelTrainIds.png   <- made by: python tools/prepare_cityscapes.py
  (panoptic: gtFine/cityscapes_panoptic_{train,val}.json + cityscapes_panoptic_{train,val}/*.png
                                                 <- made by: cityscapesscripts' csCreatePanopticImgs
   gtFine/cityscapes_panoptic_{train,val}_stuff/*.png, cityscapes_panoptic_{train,val}_instances.json
                                                 <- made by: python tools/prepare_panoptic_fpn.py cityscapes)""",
    "ade20k_": """\
ADEChallengeData2016/
  images/{training,validation}/ADE_*.jpg
  annotations/{training,validation}/ADE_*.png
  annotations_detectron2/{training,validation}/ADE_*.png   <- made by: python tools/prepare_ade20k.py""",
    "coco_": """\
coco/
  annotations/instances_{train,val}2017.json  (panoptic_*: panoptic_{train,val}2017.json)
  {train,val}2017/*.jpg
  (panoptic_*: panoptic_{train,val}2017/*.png,
   panoptic_stuff_{train,val}2017/*.png          <- made by: python tools/prepare_panoptic_fpn.py coco)""",
    "lip_": """\
LIP/                                             (the official release)
  TrainVal_images/train_images/*.jpg
  TrainVal_images/val_images/*.jpg
  TrainVal_images/train_id.txt  TrainVal_images/val_id.txt
  TrainVal_parsing_annotations/train_segmentations/*.png
  TrainVal_parsing_annotations/val_segmentations/*.png
or
LIP/                                             (the flat layout of CE2P / SCHP)
  {train,val}_images/*.jpg
  {train,val}_segmentations/*.png
  {train,val}_id.txt""",
    "voc_2012_sem_seg_": """\
VOCdevkit/VOC2012/
  JPEGImages/*.jpg
  SegmentationClass/*.png                        (official palette labels)
  ImageSets/Segmentation/{train,val}.txt
  SegmentationClassAug/*.png                     <- made by: python tools/prepare_voc_sbd.py
  ImageSets/Segmentation/train_aug.txt           <- made by: python tools/prepare_voc_sbd.py
benchmark_RELEASE/dataset/{cls/*.mat,img/*.jpg,train.txt,val.txt}   (SBD, input of the preparation)""",
    "camvid_": """\
CamVid/
  {train,val,test}/<seq>_<frame>.png             (SegNet's layout: 367 / 101 / 233 labelled frames)
  {train,val,test}annot/<seq>_<frame>.png        (class ids 0-10, 11 = void)
  frames/<seq>/<frame:06d>.png, frame_count.txt  <- made by: python tools/prepare_camvid.py (clips only)""",
    "voc_": """\
VOC20{07,12}/
  Annotations/*.xml  JPEGImages/*.jpg  ImageSets/Main/{train,val,trainval,test}.txt""",
}


def _expected_tree(dataset_name: str):
    # Longest prefix first, so that "voc_2012_sem_seg_" wins over "voc_".
    for prefix in sorted(EXPECTED_TREES, key=len, reverse=True):
        if dataset_name.startswith(prefix):
            return EXPECTED_TREES[prefix]
    return None


def missing_dataset_error(dataset_name: str, missing_paths) -> FileNotFoundError:
    """The error raised for a dataset whose files are not where its registration points."""
    lines = [f"Dataset '{dataset_name}' is not available: missing " + ", ".join(map(repr, missing_paths)) + "."]
    tree = _expected_tree(dataset_name)
    if tree:
        lines += ["Expected tree under the dataset root:", tree]
    lines.append(
        f"The dataset root is $DETECTRON2_DATASETS (now {os.getenv('DETECTRON2_DATASETS', 'unset')!r}, "
        f"default 'datasets'), read when the datasets were registered (at import). "
        f"Set DETECTRON2_DATASETS before starting; docs/DATASETS.md describes each dataset.")
    return FileNotFoundError("\n".join(lines))


class MissingFilesError(FileNotFoundError):
    """A dataset loader's error for files that its records name but that do not exist; it carries the
    records, so that a full scan (``tools/check_dataset.py``) reports the missing files among all other
    problems instead of stopping at them."""

    def __init__(self, message: str, records: list, missing: list):
        super().__init__(message)
        self.records, self.missing = records, missing


def raise_if_files_missing(dataset_name: str, records: list, fields=("file_name", "sem_seg_file_name")) -> None:
    """Raise :class:`MissingFilesError` (the dataset's expected tree, the first few paths, the count) when a
    record's file in ``fields`` does not exist."""
    missing = [r[f] for r in records for f in fields if f in r and not os.path.isfile(r[f])]
    if missing:
        shown = missing[:3] + ([f"... ({len(missing)} listed files in all)"] if len(missing) > 3 else [])
        error = missing_dataset_error(dataset_name, shown)
        raise MissingFilesError(str(error), records, missing)


def _missing_paths(metadata):
    paths = [metadata.get(field) for field in _PATH_FIELDS if isinstance(metadata.get(field, None), str)]
    return [p for p in paths if not os.path.exists(p)]


def _check_cityscapes_train_ids(dataset_name, metadata):
    """Cityscapes semantic labels must have been converted to train ids (``*_labelTrainIds.png``)."""
    gt_dir = metadata.get("gt_dir", None)
    if metadata.get("evaluator_type", None) != "cityscapes_sem_seg" or gt_dir is None:
        return
    if next(iter(glob.iglob(os.path.join(gt_dir, "*", "*_labelTrainIds.png"))), None) is None:
        raise missing_dataset_error(dataset_name, [os.path.join(gt_dir, "<city>", "*_labelTrainIds.png")])


def check_dataset_available(dataset_name: str) -> None:
    """Raise ``FileNotFoundError`` (expected tree + ``DETECTRON2_DATASETS``) when ``dataset_name``'s
    files are missing; ``KeyError`` when it is not registered. Datasets without paths pass."""
    if dataset_name not in DatasetCatalog.list():
        raise KeyError(f"Dataset '{dataset_name}' is not registered. `import ccnet_d2` registers the "
                       f"project's datasets; registered: {sorted(DatasetCatalog.list())}")
    metadata = MetadataCatalog.get(dataset_name)
    missing = _missing_paths(metadata)
    if missing:
        raise missing_dataset_error(dataset_name, missing)
    _check_cityscapes_train_ids(dataset_name, metadata)
