"""Registers every dataset ccnet_d2 adds to Detectron2's catalog, and Detectron2's Cityscapes names again
with loaders on the public cityscapesscripts (``cityscapes.py`` says why); ADE20K and COCO are
Detectron2's own registrations. Imported once by ``import ccnet_d2``.

Paths are fixed at import under the dataset root, as Detectron2 does for its builtin datasets; the
toy dataset has its own root (``ccnet_d2.data.datasets.toy.toy_root``) and is generated on first use.
"""
import os

from .camvid import register_all_camvid
from .cityscapes import register_all_cityscapes
from .cityscapes_panoptic import register_all_cityscapes_panoptic
from .lip import register_all_lip
from .toy import register_all_toy
from .toy_panoptic import register_all_toy_panoptic
from .toy_video import register_all_toy_video
from .voc import register_all_voc_sem_seg

__all__ = ["dataset_root"]


def dataset_root() -> str:
    """The dataset root of this process: ``$DETECTRON2_DATASETS``, default ``datasets``."""
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


register_all_cityscapes(dataset_root())
register_all_cityscapes_panoptic(dataset_root())
register_all_lip(dataset_root())
register_all_voc_sem_seg(dataset_root())
register_all_toy()
register_all_toy_panoptic()
register_all_camvid(dataset_root())
register_all_toy_video()
