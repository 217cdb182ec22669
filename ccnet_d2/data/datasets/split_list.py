"""Semantic-segmentation datasets defined by an id list: ``<image_root>/<id>.jpg`` + ``<sem_seg_root>/<id>.png``.

LIP and Pascal VOC both ship their splits as text files of image ids; this is their common loader.
"""
import os

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..checks import check_dataset_available, raise_if_files_missing

__all__ = ["load_split_list_sem_seg", "register_split_list_sem_seg"]


def load_split_list_sem_seg(dataset_name, image_root, sem_seg_root, split_file, image_ext=".jpg", gt_ext=".png"):
    """Detectron2 records (``file_name``, ``sem_seg_file_name``, ``image_id``) for the ids in ``split_file``.

    Raises the dataset's ``FileNotFoundError`` (expected tree, ``DETECTRON2_DATASETS``) when a folder or
    the list is missing, and ``MissingFilesError`` when listed files are.
    """
    check_dataset_available(dataset_name)
    with open(split_file) as f:
        image_ids = [line.strip() for line in f if line.strip()]
    records = [{"file_name": os.path.join(image_root, image_id + image_ext),
                "sem_seg_file_name": os.path.join(sem_seg_root, image_id + gt_ext),
                "image_id": image_id} for image_id in image_ids]
    raise_if_files_missing(dataset_name, records)
    return records


def register_split_list_sem_seg(name, image_root, sem_seg_root, split_file, **metadata):
    """Register ``name`` with :func:`load_split_list_sem_seg`; the paths go into its metadata too, where
    ``check_dataset_available`` looks for them."""
    DatasetCatalog.register(name, lambda: load_split_list_sem_seg(name, image_root, sem_seg_root, split_file))
    MetadataCatalog.get(name).set(image_root=image_root, sem_seg_root=sem_seg_root, split_file=split_file,
                                  evaluator_type="sem_seg", ignore_label=255, **metadata)
