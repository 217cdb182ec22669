"""The training mapper: Detectron2's ``DatasetMapper`` with the semantic-segmentation augmentations."""
from detectron2.data import DatasetMapper
from detectron2.modeling import META_ARCH_REGISTRY, SemanticSegmentor

from .augmentations import build_semantic_train_augmentations

__all__ = ["build_train_mapper", "is_semantic_segmentation"]


def is_semantic_segmentation(cfg) -> bool:
    """Whether ``cfg.MODEL.META_ARCHITECTURE`` is a semantic segmentor.

    True for Detectron2's ``SemanticSegmentor``, its subclasses, and any registered meta-architecture
    whose name contains "SemanticSegmentor" (the convention of Detectron2's DeepLab project).
    """
    name = cfg.MODEL.META_ARCHITECTURE
    if "SemanticSegmentor" in name:
        return True
    meta_arch = META_ARCH_REGISTRY.get(name)  # raises KeyError naming the registered ones
    return isinstance(meta_arch, type) and issubclass(meta_arch, SemanticSegmentor)


def build_train_mapper(cfg):
    """The mapper for ``build_detection_train_loader(cfg, mapper=...)``.

    Semantic-segmentation models get ``DatasetMapper`` with :func:`build_semantic_train_augmentations`
    (random scale, category-constrained crop with ignore padding, label-swapping flip); for any other
    model this returns None, i.e. Detectron2's default ``DatasetMapper(cfg, True)``.
    """
    if not is_semantic_segmentation(cfg):
        return None
    return DatasetMapper(cfg, is_train=True, augmentations=build_semantic_train_augmentations(cfg))
