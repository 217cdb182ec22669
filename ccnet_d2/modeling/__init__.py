"""Models of ccnet_d2; importing this module fills Detectron2's registries."""
from . import backbone, heads, losses, meta_arch  # noqa: F401  (registration)
