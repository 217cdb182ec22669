"""Pick Detectron2's evaluator for a dataset from its metadata (``evaluator_type``).

Lives in the package (not in ``tools/train_net.py``) so that every tool and test evaluates the same way.
"""
import functools
import os

from detectron2.data import MetadataCatalog
from detectron2.evaluation import COCOEvaluator, DatasetEvaluators, SemSegEvaluator
from detectron2.utils import comm

from ..data.label_checks import load_checked_label
from .cityscapes import CityscapesInstanceEvaluator, CityscapesSemSegEvaluator
from .panoptic import PanopticQualityEvaluator

__all__ = ["build_evaluator", "checked_sem_seg_evaluator", "EVALUATOR_TYPES"]


EVALUATOR_TYPES = ("coco", "cityscapes_instance", "sem_seg", "cityscapes_sem_seg", "coco_panoptic_seg")


def _check_single_machine(evaluator_type: str) -> None:
    # The Cityscapes evaluators gather results through a local temporary folder.
    if comm.get_world_size() != comm.get_local_size():
        raise RuntimeError(f"evaluator_type {evaluator_type!r} (the official Cityscapes evaluation) only "
                           "works on a single machine; evaluate with --num-machines 1")


def checked_sem_seg_evaluator(dataset_name: str, output_folder: str) -> SemSegEvaluator:
    """Detectron2's SemSegEvaluator reading each ground-truth label through ``load_checked_label``: a
    colour or palette label, or values outside the classes and the ignore value, stop the evaluation
    with the file's path instead of a broadcast error or silently wrong IoUs."""
    metadata = MetadataCatalog.get(dataset_name)
    loader = functools.partial(load_checked_label, num_classes=len(metadata.stuff_classes),
                               ignore_label=metadata.get("ignore_label", 255))
    return SemSegEvaluator(dataset_name, distributed=True, output_dir=output_folder, sem_seg_loading_fn=loader)


def build_evaluator(cfg, dataset_name: str, output_folder: str = None):
    """Return the evaluator that matches ``MetadataCatalog.get(dataset_name).evaluator_type``.

    "coco" -> COCOEvaluator (pure-Python pycocotools path: ``detectron2._C`` is never needed),
    "sem_seg" -> SemSegEvaluator with checked labels (``checked_sem_seg_evaluator``),
    "cityscapes_instance" / "cityscapes_sem_seg" -> the official Cityscapes evaluations through the public
    cityscapesscripts (``ccnet_d2.evaluation.cityscapes``; Detectron2's own classes need an unpublished
    package since December 2024),
    "coco_panoptic_seg" -> as Detectron2's train_net: panoptic quality (``PanopticQualityEvaluator``, which
    needs no panopticapi), the things' box and mask AP (COCOEvaluator) and the stuff branch's mIoU.
    """
    if output_folder is None:
        output_folder = os.path.join(cfg.OUTPUT_DIR, "inference")
    metadata = MetadataCatalog.get(dataset_name)
    evaluator_type = metadata.get("evaluator_type", None)
    if evaluator_type == "coco":
        return COCOEvaluator(dataset_name, output_dir=output_folder, use_fast_impl=False)
    if evaluator_type == "sem_seg":
        return checked_sem_seg_evaluator(dataset_name, output_folder)
    if evaluator_type == "coco_panoptic_seg":
        return DatasetEvaluators([PanopticQualityEvaluator(dataset_name, output_folder),
                                  COCOEvaluator(dataset_name, output_dir=output_folder, use_fast_impl=False),
                                  checked_sem_seg_evaluator(dataset_name, output_folder)])
    if evaluator_type == "cityscapes_instance":
        _check_single_machine(evaluator_type)
        return CityscapesInstanceEvaluator(dataset_name)
    if evaluator_type == "cityscapes_sem_seg":
        _check_single_machine(evaluator_type)
        return CityscapesSemSegEvaluator(dataset_name)
    raise ValueError(
        f"no evaluator for dataset {dataset_name!r}: its metadata has evaluator_type={evaluator_type!r}, "
        f"expected one of {EVALUATOR_TYPES}. Register the dataset with one of these types "
        "(MetadataCatalog.get(name).set(evaluator_type=...)).")
