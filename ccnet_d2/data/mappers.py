"""The training mapper: Detectron2's ``DatasetMapper`` with the semantic-segmentation augmentations and
checks that name the sample's files."""
from detectron2.data import DatasetMapper
from detectron2.modeling import META_ARCH_REGISTRY, SemanticSegmentor

from .augmentations import build_semantic_train_augmentations
from .label_checks import check_label_matches_image, load_checked_label

__all__ = ["CheckedSemSegDatasetMapper", "build_train_mapper", "is_semantic_segmentation"]


class CheckedSemSegDatasetMapper(DatasetMapper):
    """``DatasetMapper`` for semantic segmentation that stops at a bad sample with its file names: a
    label that is not single-channel class ids, a label of another size than its image, label values
    outside the classes and the ignore value, or an image or label that cannot be decoded."""

    def __init__(self, cfg, is_train: bool = True, **kwargs):
        super().__init__(cfg, is_train, **kwargs)
        self.num_classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
        self.ignore_label = cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE

    def __call__(self, dataset_dict):
        image_file, label_file = dataset_dict["file_name"], dataset_dict.get("sem_seg_file_name")
        if label_file is not None:  # the whole label, before any crop can hide a bad value
            labels = load_checked_label(label_file, self.num_classes, self.ignore_label)
            check_label_matches_image(label_file, labels.shape, image_file)
        try:
            mapped = super().__call__(dataset_dict)
        except Exception as e:  # decoding errors (a truncated JPEG, ...) name no file on their own
            raise RuntimeError(f"cannot load the training sample {image_file!r} (label {label_file!r}): "
                               f"{type(e).__name__}: {e}") from e
        return mapped


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

    Semantic-segmentation models get :class:`CheckedSemSegDatasetMapper` with
    :func:`build_semantic_train_augmentations`
    (random scale, category-constrained crop with ignore padding, label-swapping flip); for any other
    model this returns None, i.e. Detectron2's default ``DatasetMapper(cfg, True)``.
    """
    if not is_semantic_segmentation(cfg):
        return None
    return CheckedSemSegDatasetMapper(cfg, is_train=True, augmentations=build_semantic_train_augmentations(cfg))
