"""ccnet_d2.model_zoo: every config by name, equal to the file merged by hand; and a wheel installed outside
the repository carries the configs, builds a model from one and predicts, with the repository not importable."""
import glob
import os
import subprocess
import sys
import zipfile

import pytest

from ccnet_d2 import model_zoo
from tests.common import CONFIG_ROOT, REPO_ROOT, build_cfg, find_configs


def test_every_config_is_listed_and_resolves_to_the_same_config():
    listed = model_zoo.list_configs()
    assert listed == sorted(os.path.relpath(p, CONFIG_ROOT) for p in find_configs(os.listdir(CONFIG_ROOT)))
    for name in listed:
        assert model_zoo.get_config(name) == build_cfg(os.path.join(CONFIG_ROOT, name)), name


def test_an_unknown_name_lists_the_configs():
    with pytest.raises(FileNotFoundError, match=r"no config 'COCO/nothing.yaml' in .*the configs are: .*mask_rcnn_rcca"):
        model_zoo.get_config_file("COCO/nothing.yaml")


@pytest.mark.slow
def test_a_wheel_installed_outside_the_repository_has_the_configs_and_predicts(tmp_path):
    env = dict(os.environ, CCNET_D2_NO_EXTENSION="1")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
                    REPO_ROOT], check=True, capture_output=True, env=env, timeout=600)
    (wheel,) = (tmp_path / "dist").glob("ccnet_d2-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packaged = sorted(n[len("ccnet_d2/model_zoo/configs/"):] for n in names
                      if n.startswith("ccnet_d2/model_zoo/configs/") and n.endswith(".yaml"))
    assert packaged == sorted(os.path.relpath(p, CONFIG_ROOT)  # the bases at the root too
                              for p in glob.glob(os.path.join(CONFIG_ROOT, "**", "*.yaml"), recursive=True))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    script = """
import numpy as np, ccnet_d2
from ccnet_d2 import Predictor, model_zoo
assert ccnet_d2.__file__.startswith(SITE), ccnet_d2.__file__
path = model_zoo.get_config_file("Toy-SemanticSegmentation/ccnet_R_50_narrow_os8_r2_toy.yaml")
assert path.startswith(SITE), path
cfg = model_zoo.get_config("Toy-SemanticSegmentation/ccnet_R_50_narrow_os8_r2_toy.yaml")
cfg.MODEL.WEIGHTS = ""
logits = Predictor(cfg)(np.zeros((40, 50, 3), np.uint8))["sem_seg"]
assert tuple(logits.shape) == (4, 40, 50), logits.shape
import ccnet_d2.checkpoint, ccnet_d2.data, ccnet_d2.engine, ccnet_d2.evaluation, ccnet_d2.export, ccnet_d2.layers
from ccnet_d2.layers.compiled_op import compiled_op_status
print("compiled op:", compiled_op_status())
"""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(tmp_path / "site"), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", f"SITE = {str(tmp_path / 'site')!r}\n" + script], cwd=outside,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "compiled op: " in result.stdout  # its absence is reported, not fatal
