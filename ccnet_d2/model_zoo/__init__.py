"""The project's configs by name, as ``detectron2.model_zoo`` offers Detectron2's: from an installed wheel
(which carries a copy of ``configs/``, made by setup.py when the wheel is built) or from the source tree
(an editable install). ``configs/`` at the repository root stays the one place they are edited.

    from ccnet_d2 import model_zoo
    cfg = model_zoo.get_config("Toy-SemanticSegmentation/ccnet_R_50_narrow_os8_r2_toy.yaml")
"""
import glob
import os
from typing import List

from detectron2.config import CfgNode, get_cfg

from ..config import add_ccnet_config

__all__ = ["CONFIG_ROOTS", "get_config", "get_config_file", "list_configs"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
# The copy inside an installed package, then the source tree's configs/ (editable install, a clone).
CONFIG_ROOTS = (os.path.join(_PACKAGE, "configs"), os.path.join(os.path.dirname(os.path.dirname(_PACKAGE)), "configs"))


def _config_root() -> str:
    for root in CONFIG_ROOTS:
        if os.path.isdir(root):
            return root
    raise FileNotFoundError(f"ccnet_d2 finds no configs: neither {CONFIG_ROOTS[0]!r} (an installed wheel) nor "
                            f"{CONFIG_ROOTS[1]!r} (the source tree) exists; reinstall the package")


def list_configs() -> List[str]:
    """The runnable configs (not the ``Base-*`` files), relative to ``configs/``, sorted."""
    root = _config_root()
    return sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "*", "*.yaml"))
                  if not os.path.basename(p).startswith("Base-"))


def get_config_file(config_path: str) -> str:
    """The absolute path of a config given relative to ``configs/``, e.g.
    ``"COCO-InstanceSegmentation/mask_rcnn_rcca_R_50_FPN_1x_coco.yaml"``."""
    path = os.path.join(_config_root(), config_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no config {config_path!r} in {_config_root()!r}; the configs are: "
                                + ", ".join(list_configs()))
    return path


def get_config(config_path: str) -> CfgNode:
    """Detectron2's defaults + ccnet_d2's keys + the config (its ``_BASE_`` chain resolved), not frozen."""
    cfg = add_ccnet_config(get_cfg())
    cfg.merge_from_file(get_config_file(config_path))
    return cfg
