"""The project's configs and the published CCNet checkpoints by name, as ``detectron2.model_zoo`` offers
Detectron2's. Configs come from an installed wheel (which carries a copy of ``configs/``, made by
setup.py when the wheel is built) or from the source tree (an editable install); ``configs/`` at the
repository root stays the one place they are edited. Published checkpoints: ``published.py`` (the
table) and ``weights.py`` (``MODEL.WEIGHTS ccnet://<source>/<model>``).

    from ccnet_d2 import model_zoo
    cfg = model_zoo.get_config("Toy-SemanticSegmentation/ccnet_R_50_narrow_os8_r2_toy.yaml")
    model = model_zoo.get("ccnet://mmseg/ccnet_r50-d8_512x1024_80k_cityscapes", trained=True)
"""
import glob
import os
from typing import List

from detectron2.config import CfgNode, get_cfg

from ..config import add_ccnet_config
from .published import PUBLISHED_CHECKPOINTS, SCHEME, published_checkpoint
from .weights import PublishedWeightsError, cache_dir, local_weights, register_scheme

__all__ = ["CONFIG_ROOTS", "PUBLISHED_CHECKPOINTS", "PublishedWeightsError", "cache_dir", "get", "get_config",
           "get_config_file", "list_configs", "local_weights"]

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


def get(name: str, trained: bool = False, device: str = None):
    """A model in evaluation mode, built from a config path (``"Toy-.../x.yaml"``) or a published checkpoint's
    name (``"ccnet://mmseg/..."``, its config from the table). ``trained=True`` loads the published weights:
    the name's, or for a config path the published checkpoint of that config with the best reported mIoU.
    ``device`` defaults to ``cuda`` when a GPU is there, else ``cpu``."""
    import torch
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    if name.startswith(SCHEME):
        entry, weights = published_checkpoint(name), name
        config_path = entry.config
    else:
        config_path, weights = name, None
        if trained:
            matches = [(e.miou, SCHEME + k) for k, e in PUBLISHED_CHECKPOINTS.items() if e.config == config_path]
            if not matches:
                raise ValueError(f"no published checkpoint is for config {config_path!r}; trained=True needs one of "
                                 "the configs of docs/MODEL_ZOO.md's published-checkpoint table")
            weights = max(matches)[1]
    cfg = get_config(config_path)
    cfg.MODEL.DEVICE = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(cfg)
    if trained:
        DetectionCheckpointer(model).load(weights)
    return model.eval()


register_scheme()
