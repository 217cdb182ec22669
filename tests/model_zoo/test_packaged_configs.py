"""ccnet_d2.model_zoo: every config by name, equal to the file merged by hand; and a wheel built from the
sdist, installed outside the repository, carries the configs (and the compiled op where a toolkit is),
builds a model from one and predicts, with the repository not importable."""
import glob
import os
import shutil
import subprocess
import sys
import tarfile
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


def _run(command, **kwargs):
    """Run a build or install step; a failure shows the end of its output."""
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command} failed:\n{(result.stdout + result.stderr)[-4000:]}"
    return result


def _toolkit_present() -> bool:
    from torch.utils import cpp_extension

    return cpp_extension.CUDA_HOME is not None or shutil.which("nvcc") is not None


@pytest.mark.slow
def test_the_sdist_builds_a_wheel_that_installed_outside_the_repository_has_the_configs_and_predicts(tmp_path):
    """sdist -> wheel (from the sdist alone, so the sdist is complete) -> installed with --target outside the
    repository: every module imports, configs come from the package, Predictor and DefaultPredictor predict.
    The wheel carries the compiled op when a compiler toolkit is present (built for one architecture here,
    to save time); without one its absence is reported and nothing fails."""
    _run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path / "sdist")], cwd=REPO_ROOT, timeout=600,
         env=dict(os.environ, CCNET_D2_NO_EXTENSION="1"))
    (sdist,) = (tmp_path / "sdist").glob("ccnet_d2-*.tar.gz")
    with tarfile.open(sdist) as archive:
        in_sdist = archive.getnames()
    assert any(n.endswith("ccnet_d2/layers/csrc/criss_cross/criss_cross_cuda.cu") for n in in_sdist)
    env = dict(os.environ, TORCH_CUDA_ARCH_LIST="9.0", MAX_JOBS="2")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
          str(sdist)], env=env, timeout=1200)
    (wheel,) = (tmp_path / "dist").glob("ccnet_d2-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packaged = sorted(n[len("ccnet_d2/model_zoo/configs/"):] for n in names
                      if n.startswith("ccnet_d2/model_zoo/configs/") and n.endswith(".yaml"))
    assert packaged == sorted(os.path.relpath(p, CONFIG_ROOT)  # the bases at the root too
                              for p in glob.glob(os.path.join(CONFIG_ROOT, "**", "*.yaml"), recursive=True))
    with_op = _toolkit_present()
    assert any(n.startswith("ccnet_d2/_C") and n.endswith(".so") for n in names) == with_op
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)],
         timeout=600)
    script = """
import importlib, pkgutil
import numpy as np, ccnet_d2
from detectron2.engine import DefaultPredictor
from ccnet_d2 import Predictor, model_zoo
assert ccnet_d2.__file__.startswith(SITE), ccnet_d2.__file__
modules = [m.name for m in pkgutil.walk_packages(ccnet_d2.__path__, "ccnet_d2.")]
for name in modules:
    importlib.import_module(name)
print("imported", len(modules), "modules")
path = model_zoo.get_config_file("Toy-SemanticSegmentation/ccnet_R_50_narrow_os8_r2_toy.yaml")
assert path.startswith(SITE), path
cfg = model_zoo.get_config("Toy-SemanticSegmentation/ccnet_R_50_narrow_os8_r2_toy.yaml")
cfg.MODEL.WEIGHTS = ""
image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
logits = Predictor(cfg)(image)["sem_seg"]
assert tuple(logits.shape) == (4, 40, 50), logits.shape
assert tuple(DefaultPredictor(cfg)(image)["sem_seg"].shape) == (4, 40, 50)
from ccnet_d2.layers.compiled_op import compiled_op_status
print("compiled op:", compiled_op_status())
"""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.abspath(p) != REPO_ROOT]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), *inherited]), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", f"SITE = {str(tmp_path / 'site')!r}\n" + script], cwd=outside,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "imported" in result.stdout
    status = result.stdout.split("compiled op: ", 1)[1].strip()
    assert status.startswith("built with CUDA") if with_op else "not" in status, status
