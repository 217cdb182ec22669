#!/usr/bin/env bash
# GPU check of the compiled criss-cross op (dev/README.md), for a machine with an NVIDIA GPU, nvcc,
# Python and torch: builds the op for that GPU in a copy of the repository under build/device_check/
# (the repository's own build, ccnet_d2/_C*.so, is never touched), runs the CUDA and CPU tests of the
# op and all layer tests against that build, then the benchmark.
#
#   bash dev/device_check.sh [--clean] [--logs DIR] [benchmark arguments ...]
#     --clean      build from scratch (removes build/device_check/ first); otherwise the objects of
#                  the previous check are reused where the sources did not change
#     --logs DIR   where the logs and the benchmark table go (default output/device_check/)
#   Other arguments go to tools/benchmark_attention.py.
#
# detectron2 and its small requirements: already importable, or as wheels in .whl/, made with
# `bash dev/make_device_wheels.sh PYTHON_VERSION` on a machine with registry access and installed
# here into build/device_check/site. Environment: CCNET_D2_PYTHON (default python3), CUDA_HOME (default
# /usr/local/cuda), TORCH_CUDA_ARCH_LIST (default: the architecture of GPU 0), MAX_JOBS.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LOGS=$ROOT/output/device_check
CLEAN=0
while [ $# -gt 0 ]; do
  case $1 in
    --clean) CLEAN=1; shift ;;
    --logs) LOGS=$(realpath -m "${2:?--logs needs a folder}"); shift 2 ;;
    *) break ;;
  esac
done
PY=${CCNET_D2_PYTHON:-python3}
STAGE=$ROOT/build/device_check
mkdir -p "$LOGS"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
  TORCH_CUDA_ARCH_LIST=$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability(0))') ||
    { echo "no CUDA GPU visible to torch; this check needs one"; exit 1; }
  export TORCH_CUDA_ARCH_LIST
fi
status=0

[ "$CLEAN" = 1 ] && rm -rf "$STAGE"
# A fresh copy of the working tree (modification times kept, so unchanged sources are not recompiled).
rm -rf "$STAGE/tree" "$STAGE/site"
mkdir -p "$STAGE/tree"
tar -cf - --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./output --exclude=./.whl \
  --exclude=./datasets --exclude='./ccnet_d2/_C*.so' --exclude=__pycache__ . | tar -xf - -C "$STAGE/tree"

SITEPATH=
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$STAGE/site" .whl/*.whl \
    >"$LOGS/wheels.log" 2>&1 || { echo "installing .whl/*.whl failed:"; tail -20 "$LOGS/wheels.log"; exit 1; }
  SITEPATH=$STAGE/site:
fi
cd "$STAGE/tree"
export PYTHONPATH=$SITEPATH$PWD
"$PY" -c 'import detectron2' 2>/dev/null ||
  { echo "detectron2 is not importable: make .whl/ with dev/make_device_wheels.sh (dev/README.md)"; exit 1; }

{ date -u; nvidia-smi; "$CUDA_HOME/bin/nvcc" --version
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())'
} >"$LOGS/environment.txt" 2>&1

echo "== build (TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST) in $STAGE"
start=$(date +%s)
MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" setup.py build_ext --inplace --build-temp "$STAGE/temp" >"$LOGS/build.log" 2>&1 ||
  { echo "build failed"; tail -40 "$LOGS/build.log"; exit 1; }
echo "built in $(($(date +%s) - start)) s: $("$PY" -c 'from ccnet_d2.layers import compiled_op_status; print(compiled_op_status())')"

echo "== tests of the compiled op (CUDA and CPU cases)"
"$PY" -m pytest tests/layers/test_compiled_op_cuda.py tests/layers/test_compiled_op.py -v -p no:cacheprovider 2>&1 |
  tee "$LOGS/tests_compiled_op.log" | tail -25
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== tests of the fused Triton kernel (CUDA cases)"
"$PY" -m pytest tests/layers/test_fused_kernel_cuda.py -v -p no:cacheprovider 2>&1 |
  tee "$LOGS/tests_fused_kernel.log" | tail -25
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== all operator and module tests (backend auto on CUDA where they use it)"
"$PY" -m pytest tests/layers -p no:cacheprovider 2>&1 | tee "$LOGS/tests_layers.log" | tail -3
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== benchmark"
"$PY" tools/benchmark_attention.py "$@" 2>&1 | tee "$LOGS/benchmark.md"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
echo "logs in $LOGS"
exit $status
