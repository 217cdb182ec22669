"""A full scan of a registered dataset: every sample that would stop training or evaluation, with its path.

Training and evaluation stop at the first bad sample (``CheckedSemSegDatasetMapper``, the evaluator's
label loader), possibly hours in. The scan decodes every image and label of a dataset up front and
reports all of them at once, with the same label checks (``ccnet_d2.data.label_checks``).
"""
import os
from typing import List

import numpy as np
import tqdm
from detectron2.data import DatasetCatalog, MetadataCatalog

from .checks import MissingFilesError, check_dataset_available
from .image_files import decoded_size
from .label_checks import check_label_matches_image, load_checked_label
from .panoptic_format import read_panoptic_png, segment_id_mismatch

__all__ = ["scan_record", "scan_dataset"]


def scan_record(record: dict, num_classes: int, ignore_label: int) -> List[str]:
    """The problems of one dataset record (empty when it is sound), each naming its file: a missing image,
    label or panoptic PNG (nothing else is checked then), a panoptic PNG that disagrees with its image's size
    or its ``segments_info``, an image that cannot be decoded or whose size differs from the record's ``height``/``width``, a label that is not
    single-channel class ids, holds values outside the classes and ``ignore_label``, or differs in size
    from its image."""
    image_file, label_file = record["file_name"], record.get("sem_seg_file_name")
    panoptic_file = record.get("pan_seg_file_name")
    problems = [f"missing file {path!r}" for path in (image_file, label_file, panoptic_file)
                if path and not os.path.exists(path)]
    if problems:
        return problems
    try:
        width, height = decoded_size(image_file)
        if (record.get("height", height), record.get("width", width)) != (height, width):
            problems.append(f"image {image_file!r} is {width}x{height} (WxH) but its record says "
                            f"{record['width']}x{record['height']}")
    except ValueError as e:
        problems.append(str(e))
        image_file = None
    if panoptic_file is not None:
        problems += _panoptic_problems(panoptic_file, record.get("segments_info", []),
                                       None if image_file is None else (height, width), image_file)
    if label_file is not None:
        try:
            labels = load_checked_label(label_file, num_classes, ignore_label)
            if image_file is not None:
                check_label_matches_image(label_file, labels.shape, image_file)
        except Exception as e:  # the label checks' ValueErrors, and labels that cannot be decoded
            problems.append(str(e) if isinstance(e, ValueError) else
                            f"label {label_file!r} cannot be decoded ({type(e).__name__}: {e})")
    return problems


def _panoptic_problems(panoptic_file: str, segments_info: list, image_size, image_file) -> List[str]:
    """A COCO panoptic PNG that cannot be decoded, differs in size from its image, or whose segment ids
    differ from its record's ``segments_info``."""
    try:
        ids = read_panoptic_png(panoptic_file)
    except Exception as e:
        return [f"panoptic label {panoptic_file!r} cannot be decoded ({type(e).__name__}: {e})"]
    problems = []
    if image_size is not None and ids.shape != tuple(image_size):
        problems.append(f"panoptic label {panoptic_file!r} is {ids.shape[1]}x{ids.shape[0]} (WxH) but its image "
                        f"{image_file!r} is {image_size[1]}x{image_size[0]}")
    unlisted, absent = segment_id_mismatch(np.unique(ids).tolist(), segments_info)
    if unlisted:
        problems.append(f"panoptic label {panoptic_file!r} has segment ids {unlisted[:5]} that its "
                        f"segments_info does not list")
    if absent:
        problems.append(f"panoptic label {panoptic_file!r} lacks the segments {absent[:5]} of its "
                        "segments_info")
    return problems


def scan_dataset(dataset_name: str, progress: bool = True) -> List[str]:
    """Every problem of every record of a registered dataset (:func:`scan_record`), with a progress bar.

    The classes are the metadata's ``stuff_classes`` (semantic segmentation), the ignore value its
    ``ignore_label`` (default 255). Files that records name but that do not exist are problems too
    ("missing file ..."); a dataset whose folders are missing raises FileNotFoundError.
    """
    check_dataset_available(dataset_name)
    try:
        records = DatasetCatalog.get(dataset_name)
    except MissingFilesError as e:  # reported with the other problems, record by record
        records = e.records
    metadata = MetadataCatalog.get(dataset_name)
    num_classes = len(metadata.get("stuff_classes", [])) or 256  # no class list: any 8-bit value is a class
    ignore_label = metadata.get("ignore_label", 255)
    problems = []
    for record in tqdm.tqdm(records, desc=dataset_name, unit="image", disable=not progress):
        problems += scan_record(record, num_classes, ignore_label)
    return problems
