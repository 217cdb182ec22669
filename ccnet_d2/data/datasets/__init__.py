"""Dataset registrations (LIP, Pascal VOC + SBD); Cityscapes, ADE20K and COCO are Detectron2's builtins."""
from . import lip, voc  # noqa: F401  (registration)
from . import toy  # noqa: F401  (registers ccnet_toy_* on import)
