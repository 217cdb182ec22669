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


def _cuda_kernels_expected() -> bool:
    """setup.py's rule: CUDA kernels when a toolkit of torch's CUDA major version is found."""
    import torch

    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.isfile("/usr/local/cuda/bin/nvcc") else None)
    if nvcc is None or torch.version.cuda is None:
        return False
    version = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
    return version.split("release ", 1)[-1].split(".", 1)[0] == torch.version.cuda.split(".")[0]


@pytest.mark.slow
def test_the_sdist_builds_a_wheel_that_installed_outside_the_repository_has_the_configs_and_predicts(tmp_path):
    """sdist -> wheel (from the sdist alone, so the sdist is complete) -> installed with --target outside the
    repository: every module imports, configs come from the package, Predictor and DefaultPredictor predict.
    The wheel carries the compiled op, with its CUDA kernels where a toolkit of torch's CUDA version is
    present (built for one architecture here, to save time); a wheel built without it
    (CCNET_D2_NO_EXTENSION=1) reports its absence and works."""
    (tmp_path / "egg").mkdir()
    _run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path / "egg"), "sdist", "-d",
          str(tmp_path / "sdist")], cwd=REPO_ROOT, timeout=600, env=dict(os.environ, CCNET_D2_NO_EXTENSION="1"))
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
    assert any(n.startswith("ccnet_d2/_C") and n.endswith(".so") for n in names)
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)],
         timeout=600)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist_no_op"),
          str(sdist)], env=dict(os.environ, CCNET_D2_NO_EXTENSION="1"), timeout=600)
    (wheel_no_op,) = (tmp_path / "dist_no_op").glob("ccnet_d2-*.whl")
    assert not any(n.startswith("ccnet_d2/_C") for n in zipfile.ZipFile(wheel_no_op).namelist())
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(tmp_path / "site_no_op"), str(wheel_no_op)],
         timeout=600)
    script = """
import sys
# This environment also has the repository installed editable, whose import hook would serve ccnet_d2's
# submodules (the compiled op among them) from the repository: a user of the wheel has no such hook.
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
import importlib, pkgutil
import numpy as np, ccnet_d2
from detectron2.engine import DefaultPredictor
from ccnet_d2 import Predictor, model_zoo
assert ccnet_d2.__file__.startswith(SITE), ccnet_d2.__file__
modules = [m.name for m in pkgutil.walk_packages(ccnet_d2.__path__, "ccnet_d2.")]
for name in modules:
    assert importlib.import_module(name).__file__.startswith(SITE), name
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
    statuses = {}
    for site in ("site", "site_no_op"):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / site), *inherited]), OMP_NUM_THREADS="1")
        result = subprocess.run([sys.executable, "-c", f"SITE = {str(tmp_path / site)!r}\n" + script], cwd=outside,
                                env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-4000:]
        assert "imported" in result.stdout
        statuses[site] = result.stdout.split("compiled op: ", 1)[1].strip()
    assert statuses["site"].startswith("built with")
    assert statuses["site"].startswith("built with CUDA") == _cuda_kernels_expected(), statuses["site"]
    assert statuses["site_no_op"].startswith("not built"), statuses["site_no_op"]
