"""Dataset loaders of ccnet_d2; ``builtin`` registers them (LIP, Pascal VOC + SBD, the toy dataset)."""
from . import builtin  # noqa: F401  (registration)
from .builtin import dataset_root
