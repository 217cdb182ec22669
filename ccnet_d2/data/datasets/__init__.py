"""Dataset loaders of ccnet_d2; ``builtin`` registers them (LIP, Pascal VOC + SBD, CamVid, the toy datasets)."""
from . import builtin  # noqa: F401  (registration)
from .builtin import dataset_root
