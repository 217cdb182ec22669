"""Install ccnet_d2; compile the criss-cross op `ccnet_d2._C` (docs/INSTALL.md, "The compiled operator").

- A CUDA toolkit is found (CUDA_HOME, or nvcc on PATH) or FORCE_CUDA=1: CUDAExtension with the CPU
  and the CUDA kernels, for TORCH_CUDA_ARCH_LIST (default: Volta to Hopper, limited to what the
  toolkit's nvcc can compile; CUDA 13 dropped Volta).
- No toolkit, or one of another CUDA major version than torch's: CppExtension with the CPU kernel only
  (backend "auto" then uses PyTorch on GPUs).
- CCNET_D2_NO_EXTENSION=1: no extension at all (a pure-Python install; no compiler needed).
"""
import os
import shutil
import subprocess

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

DEFAULT_ARCHS = ("7.0", "7.5", "8.0", "8.6", "8.9", "9.0")  # Volta, Turing, Ampere, Ada, Hopper
SOURCE_DIR = os.path.join("ccnet_d2", "layers", "csrc")


def _sources(pattern_ext):
    found = []
    for root, _, files in os.walk(SOURCE_DIR):
        found += [os.path.join(root, f) for f in sorted(files) if f.endswith(pattern_ext)]
    return sorted(found)


def _nvcc(cuda_home, flag):
    """The output of this toolkit's ``nvcc <flag>``, or None when it cannot be run."""
    try:
        return subprocess.run([os.path.join(cuda_home, "bin", "nvcc"), flag], check=True, capture_output=True,
                              text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def _nvcc_archs(cuda_home):
    """Compute capabilities ('7.5', ...) that this toolkit's nvcc can compile, or None if unknown."""
    listed = _nvcc(cuda_home, "--list-gpu-arch")
    if listed is None:
        return None
    return {f"{a[8:-1]}.{a[-1]}" for a in listed.split() if a.startswith("compute_")}


def _toolkit_major(cuda_home):
    """The CUDA major version of this toolkit's nvcc, or None if unknown."""
    out = _nvcc(cuda_home, "--version")
    if out is None:
        return None
    release = out.split("release ", 1)[-1].split(".", 1)[0]
    return release if release.isdigit() else None


def _default_arch_list(cuda_home):
    supported = _nvcc_archs(cuda_home)
    archs = [a for a in DEFAULT_ARCHS if supported is None or a in supported]
    if not archs:
        raise RuntimeError(f"nvcc in {cuda_home} supports none of {DEFAULT_ARCHS}; set TORCH_CUDA_ARCH_LIST")
    return ";".join(archs[:-1] + [archs[-1] + "+PTX"])


def _point_at_a_toolkit_with_headers():
    """torch takes the toolkit from the nvcc on PATH; when that nvcc is a wrapper script outside the toolkit
    (``/usr/local/bin/nvcc``), torch's guess (``/usr/local``) has no CUDA headers and the build fails on
    ``cuda.h``. Then ``/usr/local/cuda`` is used, if it has them. An explicit CUDA_HOME / CUDA_PATH wins."""
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return
    nvcc = shutil.which("nvcc")
    guess = os.path.dirname(os.path.dirname(os.path.realpath(nvcc))) if nvcc else "/usr/local/cuda"
    if not os.path.isfile(os.path.join(guess, "include", "cuda.h")) and os.path.isfile("/usr/local/cuda/include/cuda.h"):
        os.environ["CUDA_HOME"] = "/usr/local/cuda"


def _extensions():
    if os.environ.get("CCNET_D2_NO_EXTENSION") == "1":
        return [], {}
    _point_at_a_toolkit_with_headers()
    import torch
    from torch.utils import cpp_extension

    cuda_home = cpp_extension.CUDA_HOME
    with_cuda = os.environ.get("FORCE_CUDA") == "1" or (cuda_home is not None and torch.version.cuda is not None)
    toolkit = _toolkit_major(cuda_home) if with_cuda and os.environ.get("FORCE_CUDA") != "1" else None
    if toolkit is not None and toolkit != torch.version.cuda.split(".")[0]:
        # torch refuses to build CUDA code with a toolkit of another major version than its own.
        print(f"ccnet_d2: the CUDA toolkit in {cuda_home} is CUDA {toolkit}, this torch was built with CUDA "
              f"{torch.version.cuda}: compiling the CPU kernel only (a CUDA {torch.version.cuda.split('.')[0]} "
              "toolkit, or FORCE_CUDA=1 to try anyway, builds the CUDA kernels)")
        with_cuda = False
    cxx_flags = ["-O3"]  # the C++ standard is the one torch.utils.cpp_extension picks for this torch
    if not with_cuda:
        ext = cpp_extension.CppExtension("ccnet_d2._C", _sources(".cpp"), extra_compile_args={"cxx": cxx_flags})
        return [ext], {"build_ext": cpp_extension.BuildExtension}
    if cuda_home is None:
        raise RuntimeError("FORCE_CUDA=1 but no CUDA toolkit was found: set CUDA_HOME (e.g. /usr/local/cuda)")
    if not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        os.environ["TORCH_CUDA_ARCH_LIST"] = _default_arch_list(cuda_home)
    print(f"ccnet_d2: compiling the CUDA op with {cuda_home} for TORCH_CUDA_ARCH_LIST="
          f"{os.environ['TORCH_CUDA_ARCH_LIST']}")
    ext = cpp_extension.CUDAExtension(
        "ccnet_d2._C",
        _sources(".cpp") + _sources(".cu"),
        define_macros=[("CCNET_WITH_CUDA", None)],
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--expt-relaxed-constexpr"]},
    )
    return [ext], {"build_ext": cpp_extension.BuildExtension}


class BuildPyWithConfigs(build_py):
    """Also copy configs/ into the built package (ccnet_d2/model_zoo/configs), so that an installed wheel
    has them for ccnet_d2.model_zoo; configs/ stays the one place they are edited."""

    def run(self):
        super().run()
        if not self.editable_mode:
            shutil.copytree("configs", os.path.join(self.build_lib, "ccnet_d2", "model_zoo", "configs"),
                            dirs_exist_ok=True)


ext_modules, cmdclass = _extensions()
cmdclass["build_py"] = BuildPyWithConfigs

setup(
    name="ccnet_d2",
    version="0.1.0",
    description="CCNet criss-cross attention as a Detectron2 extension",
    packages=find_packages(exclude=("tests", "tests.*", "tools", "configs")),
    python_requires=">=3.10",
    # detectron2 is required but cannot be named here: it is not on the package registry under its
    # own name (dev/install.sh installs it, docs/INSTALL.md). Its own requirements are listed below, so
    # that they are in place whichever copy of detectron2 is installed.
    install_requires=[
        "torch>=2.14",  # the oldest torch the whole suite passes with (docs/INSTALL.md, "Compatibility")
        "torchvision",
        # detectron2's requirements
        "fvcore",
        "iopath",
        "yacs",
        "omegaconf>=2.1,<2.4",  # the range detectron2 declares (its LazyConfig)
        "hydra-core>=1.1",  # the range detectron2 declares
        "pycocotools",
        "termcolor",
        "tabulate",
        "cloudpickle",
        "matplotlib",
        "tensorboard",
        "tqdm",
        "numpy<2",  # detectron2's evaluators call np.array(..., copy=False), an error under numpy 2
        "setuptools<81",  # detectron2's model zoo imports pkg_resources (gone in setuptools 82; tested up to 80)
        # the project's own
        "opencv-python-headless",
        "cityscapesscripts",
        "scipy",
        "shapely>=2.0",  # the Cityscapes instance loader (buffer(quad_segs=...))
        "pillow",
    ],
    extras_require={
        "test": ["pytest", "pytest-timeout"],
        # tools/export_model.py and tools/benchmark_inference.py (docs/DEPLOYMENT.md); numpy stays < 2 (above)
        "export": [
            "onnx>=1.17,<1.20",  # 1.20 needs ml_dtypes >= 0.5.4, which needs numpy 2; 1.17 has the opset-18 checker
            "ml_dtypes>=0.5,<0.5.4",  # what onnx and onnxscript need, in the last versions that take numpy 1
            "onnxscript>=0.5",  # the torch.export-based ONNX exporter (torch.onnx.export(dynamo=True)) translates with it
            "onnxruntime>=1.20",  # runs the exported files (tests, benchmark); tested with 1.32
        ],
    },
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
