#!/usr/bin/env bash
# On a machine with registry access: collect into .whl/ (git-ignored) what dev/device_check.sh needs
# on a GPU machine that has Python, torch, numpy, OpenCV and pytest but no registry access:
#   - detectron2's Python sources: the registry copy, repacked as pure Python by dev/install.sh;
#   - pycocotools and PyYAML built for the GPU machine's Python version;
#   - detectron2's pure-Python requirements.
#
#   bash dev/make_device_wheels.sh PYTHON_VERSION [PLATFORM]    e.g. 3.12 (PLATFORM: x86_64 or aarch64)
#
# Copy the repository with .whl/ to the GPU machine and run `bash dev/device_check.sh` there.
# CCNET_D2_PYTHON (default python3) runs pip here.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${1:?usage: bash dev/make_device_wheels.sh PYTHON_VERSION [PLATFORM], e.g. 3.12}
ARCH=${2:-x86_64}
PY=${CCNET_D2_PYTHON:-python3}
COMPILED=(pycocotools PyYAML)
PURE=(fvcore iopath portalocker yacs "omegaconf>=2.1,<2.4" "antlr4-python3-runtime==4.9.*" "hydra-core>=1.1"
  termcolor tabulate cloudpickle tqdm)

rm -rf .whl
mkdir -p .whl
bash dev/install.sh --registry-wheel .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$VERSION" --implementation cp \
  --platform "manylinux_2_28_$ARCH" --platform "manylinux_2_17_$ARCH" --platform "manylinux2014_$ARCH" \
  -d .whl "${COMPILED[@]}"
# some of these exist only as source archives: pip wheel makes universal wheels of them
"$PY" -m pip wheel -q --no-deps -w .whl "${PURE[@]}"
ls -1 .whl
du -sh .whl
