#!/usr/bin/env bash
# The GPU check of the compiled criss-cross op, run on the accelerator machine from the project root:
# build the extension in place for Hopper, run the CUDA tests and the layer tests, run the benchmark.
# Logs go to $OUT (the device tool's output folder; output/device_check elsewhere).
#
# Before the call, here: `bash ../shared/device/make_wheels.sh` (detectron2 and its small requirements
# as wheels in .whl/, git-ignored). The device call: carry [".whl"], command `bash dev/device_check.sh`,
# timeout_s 600; extra arguments go to tools/benchmark_attention.py. The build takes about a minute there; tests and benchmark a few minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/output/device_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
status=0

if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
    python3 -m zipfile -e .whl/d2/sal_detectron2-*.whl /tmp/site || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD
else
  echo "no .whl/ folder: detectron2 must already be importable (see the header of this script)"
  export PYTHONPATH=$PWD
fi

{ date -u; nvidia-smi; "$CUDA_HOME/bin/nvcc" --version
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())'
} > "$OUT/environment.txt" 2>&1

echo "== build (TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST)"
rm -rf build ccnet_d2/_C*.so
start=$(date +%s)
MAX_JOBS=${MAX_JOBS:-8} python3 setup.py build_ext --inplace > "$OUT/build.log" 2>&1 || {
  echo "build failed"; tail -40 "$OUT/build.log"; exit 1; }
echo "built in $(( $(date +%s) - start )) s: $(python3 -c 'from ccnet_d2.layers import cuda_backend as c; print(c.extension_status())')"

echo "== CUDA tests of the compiled op"
python3 -m pytest tests/layers/test_compiled_op.py -v -p no:cacheprovider 2>&1 | tee "$OUT/tests_compiled_op.log" | tail -25
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== all operator and module tests (backend auto on CUDA where they use it)"
python3 -m pytest tests/layers -q -p no:cacheprovider 2>&1 | tee "$OUT/tests_layers.log" | tail -8
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== benchmark"
python3 tools/benchmark_attention.py "$@" 2>&1 | tee "$OUT/benchmark.md"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
exit $status
