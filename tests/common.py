"""Helpers shared by the test suite: repository paths, config discovery, config building, tool loading."""
import glob
import importlib.util
import os

from detectron2.config import get_cfg

from ccnet_d2 import add_ccnet_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_ROOT = os.path.join(REPO_ROOT, "configs")
SEMANTIC_CONFIG_FOLDERS = ("Cityscapes-SemanticSegmentation", "ADE20K-SemanticSegmentation",
                           "PascalVOC-SemanticSegmentation", "LIP-HumanParsing", "Toy-SemanticSegmentation")
VIDEO_CONFIG_FOLDERS = ("CamVid-VideoSegmentation", "Toy-VideoSegmentation")
SEMANTIC_CONFIG_FOLDERS += VIDEO_CONFIG_FOLDERS  # the video models are semantic models too (T = 1 on images)
TOY_VIDEO_CONFIG = os.path.join(CONFIG_ROOT, "Toy-VideoSegmentation", "ccnet3d_R_50_narrow_os8_r2_t3_toy.yaml")
INSTANCE_CONFIG_FOLDERS = ("COCO-InstanceSegmentation", "Cityscapes-InstanceSegmentation", "Toy-InstanceSegmentation")
TOY_SEMANTIC_CONFIG = os.path.join(CONFIG_ROOT, "Toy-SemanticSegmentation", "ccnet_R_50_narrow_os8_r2_toy.yaml")
TOY_INSTANCE_CONFIG = os.path.join(CONFIG_ROOT, "Toy-InstanceSegmentation", "mask_rcnn_rcca_R_50_w16_FPN_toy.yaml")
PANOPTIC_CONFIG_FOLDERS = ("COCO-PanopticSegmentation", "Cityscapes-PanopticSegmentation", "Toy-PanopticSegmentation")
TOY_PANOPTIC_CONFIG = os.path.join(CONFIG_ROOT, "Toy-PanopticSegmentation", "panoptic_fpn_rcca_R_50_w16_toy.yaml")


def tool_env(**extra) -> dict:
    """The environment of a tool or script the tests start: this one, with the repository first on
    PYTHONPATH (what was on it stays, e.g. the detectron2 source tree of dev/compat.sh), and ``extra``."""
    path = os.pathsep.join([REPO_ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return dict(os.environ, PYTHONPATH=path, **extra)


def config_path(relative: str) -> str:
    """Absolute path of a config given relative to ``configs/``."""
    return os.path.join(CONFIG_ROOT, relative)


def find_configs(folders) -> list:
    """The runnable configs (not the ``Base-*`` files) of the given folders of ``configs/``, sorted."""
    return sorted(path for folder in folders for path in glob.glob(os.path.join(CONFIG_ROOT, folder, "*.yaml"))
                  if not os.path.basename(path).startswith("Base-"))


def build_cfg(path: str, *overrides):
    """Detectron2 defaults + ccnet_d2 keys + the yaml + ``KEY VALUE`` overrides (not frozen)."""
    cfg = add_ccnet_config(get_cfg())
    cfg.merge_from_file(path)
    cfg.merge_from_list(list(overrides))
    return cfg


def load_tool(name: str):
    """Import ``tools/<name>.py`` as a module (the tools are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"tools_{name}", os.path.join(REPO_ROOT, "tools", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
