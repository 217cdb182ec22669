#!/usr/bin/env bash
# One-command set-up: a virtual environment in .venv with pinned torch/torchvision, detectron2,
# the project (editable, with the CUDA extension compiled when a toolkit is found) and test tools.
# A second run with nothing changed is a no-op that finishes in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3}

TORCH_PIN="torch==2.14.1"
TORCHVISION_PIN="torchvision==0.29.1"
D2_COMMIT="c69939aa85460e8135f40bce908a6cddaa73065f"
D2_REGISTRY_PIN="sal-detectron2==0.7.2"
# detectron2's Python requirements, pinned where its code needs it (see README "Installation").
D2_REQUIREMENTS=(fvcore iopath yacs "omegaconf>=2.1,<2.4" "hydra-core>=1.1" pycocotools termcolor tabulate
  cloudpickle matplotlib tensorboard tqdm "numpy<2" "setuptools<81" pillow)
PROJECT_REQUIREMENTS=(opencv-python-headless cityscapesscripts scipy ninja pytest pytest-timeout)

log() { printf '[install] %s\n' "$*"; }

if [ -z "${CUDA_HOME:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDA_HOME=/usr/local/cuda   # default detection picks /usr/local and fails to link cudart
fi

# Stamps: dependencies are keyed by this script's content, the compiled op by its sources.
deps_key=$(sha256sum "$0" | cut -c1-16)
ext_key=$(cat setup.py $(find ccnet_d2/csrc -type f 2>/dev/null | sort) 2>/dev/null | sha256sum | cut -c1-16)
ext_key="$ext_key-${CUDA_HOME:-nocuda}-${TORCH_CUDA_ARCH_LIST:-default}-${FORCE_CUDA:-0}"
DEPS_STAMP=$VENV/.ccnet_deps_stamp
EXT_STAMP=$VENV/.ccnet_ext_stamp

if [ -f "$DEPS_STAMP" ] && [ "$(cat "$DEPS_STAMP")" = "$deps_key" ]; then
  log "dependencies up to date ($VENV)"
else
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment in $VENV"
    "$PY" -m venv "$VENV"
  fi
  VPY=$VENV/bin/python
  "$VPY" -m pip install -q --upgrade "pip>=24" wheel
  log "installing $TORCH_PIN $TORCHVISION_PIN, detectron2's requirements and the project's test tools"
  "$VPY" -m pip install -q "$TORCH_PIN" "$TORCHVISION_PIN" "${D2_REQUIREMENTS[@]}" "${PROJECT_REQUIREMENTS[@]}"
  if [ -f "$VENV/.ccnet_d2_source" ] && "$VPY" -c "import detectron2" 2>/dev/null; then
    log "detectron2 already installed ($(cat "$VENV/.ccnet_d2_source"))"
  else
    log "trying detectron2 from the official source at $D2_COMMIT"
    if timeout 300 "$VPY" -m pip install -q --no-build-isolation \
        "detectron2 @ git+https://github.com/facebookresearch/detectron2.git@$D2_COMMIT" >/dev/null 2>&1; then
      D2_SOURCE="official source, commit $D2_COMMIT"
    else
      log "official source unreachable; using the registry copy $D2_REGISTRY_PIN (Python sources only)"
      SITE=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
      TMP=$(mktemp -d)
      "$VPY" -m pip install -q --no-deps --only-binary=:all: --python-version 3.10 --implementation cp \
        --target "$TMP" "$D2_REGISTRY_PIN"
      # The wheel's compiled _C is built for CPython 3.10; nothing here uses it, so it is left out.
      rm -f "$TMP"/detectron2/_C*.so
      cp -r "$TMP"/detectron2 "$TMP"/*.dist-info "$SITE"/
      rm -rf "$TMP"
      D2_SOURCE="registry package $D2_REGISTRY_PIN"
    fi
    echo "$D2_SOURCE" > "$VENV/.ccnet_d2_source"
  fi
  echo "$deps_key" > "$DEPS_STAMP"
  rm -f "$EXT_STAMP"
fi

VPY=$VENV/bin/python
if [ -f "$EXT_STAMP" ] && [ "$(cat "$EXT_STAMP")" = "$ext_key" ]; then
  log "project up to date"
elif [ "${CCNET_D2_DEFER_EXTENSION:-0}" = 1 ] && [ -f "$EXT_STAMP" ]; then
  log "project installed; the compiled op is left as it is (CCNET_D2_DEFER_EXTENSION=1)"
elif [ "${CCNET_D2_DEFER_EXTENSION:-0}" = 1 ]; then
  # The main job on a machine without a GPU never calls the kernel: install without compiling it now;
  # the next plain run of this script (e.g. through dev/test.sh) compiles it.
  log "installing the project (editable) without compiling the op (CCNET_D2_DEFER_EXTENSION=1)"
  CCNET_D2_NO_EXTENSION=1 "$VPY" -m pip install -q --no-build-isolation --no-deps -e "$ROOT"
  echo "deferred" > "$EXT_STAMP"
else
  log "installing the project (editable); compiling the CUDA op when a toolkit is found (a few minutes)"
  MAX_JOBS=${MAX_JOBS:-2} "$VPY" -m pip install -q --no-build-isolation --no-deps -e "$ROOT"
  echo "$ext_key" > "$EXT_STAMP"
fi

"$VPY" -W ignore - <<PYEOF
import torch, torchvision
print(f"[install] torch {torch.__version__}, torchvision {torchvision.__version__}")
print("[install] detectron2 from: $(cat "$VENV/.ccnet_d2_source")")
try:
    from ccnet_d2.layers import cuda_extension_status
    print(f"[install] compiled criss-cross op: {cuda_extension_status()}")
except ImportError as e:
    print(f"[install] ccnet_d2 not importable yet: {e}")
PYEOF
