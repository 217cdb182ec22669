#!/usr/bin/env bash
# One-command set-up (docs/INSTALL.md): a virtual environment in .venv with pinned torch/torchvision,
# detectron2 (its official source, or the registry copy where that cannot be reached), the project
# (editable) with the dependencies setup.py declares and its test tools, and the compiled criss-cross
# op (with CUDA kernels when a toolkit is found). A second run with nothing changed is a no-op.
#
# Switches (environment variables):
#   CCNET_D2_PYTHON=python3.12        interpreter for a new .venv (default python3; >= 3.10)
#   CCNET_D2_DETECTRON2=auto          auto: the official commit when its repository answers, else the
#                                     registry copy; official or registry: only that one
#   CCNET_D2_DEFER_EXTENSION=1        do not compile the op now; the next plain run compiles it
#   CCNET_D2_NO_EXTENSION=1           install without the compiled op (read by setup.py)
#   CCNET_D2_TORCH_PIN=torch==2.4.1    another torch than the pinned one (dev/compat.sh uses it), with
#   CCNET_D2_TORCHVISION_PIN=torchvision==0.19.1   its torchvision
#   CUDA_HOME, TORCH_CUDA_ARCH_LIST, FORCE_CUDA, MAX_JOBS: as everywhere in PyTorch extensions
# Other use:
#   bash dev/install.sh --registry-wheel DIR   only write the repacked registry detectron2 wheel to DIR
#
# pip's output goes to .venv/install-logs/<step>.log; a failing step prints its tail.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
VPY=$VENV/bin/python
LOGS=$VENV/install-logs

# ---- Pins owned by this installer (the project's own requirements are declared in setup.py) ----
TORCH_PIN=${CCNET_D2_TORCH_PIN:-"torch==2.14.1"}
TORCHVISION_PIN=${CCNET_D2_TORCHVISION_PIN:-"torchvision==0.29.1"}
# detectron2 is not on the registry under its own name. Official source: this commit is the last whose
# Cityscapes evaluators import the public cityscapesscripts package.
D2_REPO="https://github.com/facebookresearch/detectron2.git"
D2_COMMIT="c69939aa85460e8135f40bce908a6cddaa73065f"
# Registry copy: detectron2's Python sources in a wheel tagged cp310 (its compiled _C is left out).
D2_REGISTRY_PIN="sal-detectron2==0.7.2"
# Tools for the --no-build-isolation builds; setuptools with setup.py's own bound.
BUILD_TOOLS=("pip>=24" wheel "setuptools<81" ninja)
# -------------------------------------------------------------------------------------------------

log() { printf '[install] %s\n' "$*"; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

# run_logged NAME CMD...: run CMD with its output in $LOGS/NAME.log (the last attempt of that step).
run_logged() {
  local file=$LOGS/$1.log
  shift
  mkdir -p "$LOGS"
  printf '$ %s\n' "$*" >"$file"
  "$@" >>"$file" 2>&1
}
# fail LOGNAME MESSAGE: print the tail of that log and stop.
fail() {
  local file=$LOGS/$1.log
  printf '[install] ---- last 30 lines of %s ----\n' "$file" >&2
  tail -n 30 "$file" >&2
  die "$2 (full log: $file)"
}

check_python() {  # check_python INTERPRETER HINT
  command -v "$1" >/dev/null 2>&1 || die "no Python interpreter '$1' on PATH. $2"
  "$1" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "ccnet_d2 needs Python >= 3.10; found $("$1" --version 2>&1) at $(command -v "$1"). $2"
}
PY=${CCNET_D2_PYTHON:-python3}
PICK="Choose another interpreter with CCNET_D2_PYTHON=/path/to/python3.X (3.10 or newer)."

# registry_wheel PYTHON OUTDIR: download the registry copy of detectron2 (tagged cp310), drop its
# compiled _C (built for CPython 3.10; nothing here uses it) and its top-level `tools` package (detectron2's
# scripts; installed, it would shadow this repository's tools/ folder on import), retag it as pure Python
# and repack it, so that pip installs it with a RECORD listing exactly what is installed.
# Prints the wheel's path.
registry_wheel() {
  local py=$1 out=$2 tmp=$2/work unpacked wheelfile
  rm -rf "$tmp" && mkdir -p "$tmp"
  if ! "$py" -m wheel version >/dev/null 2>&1; then
    "$py" -m pip install --target "$tmp/tools" wheel >&2 || return 1
  fi
  "$py" -m pip download --no-deps --only-binary=:all: --python-version 3.10 --implementation cp \
    -d "$tmp/download" "$D2_REGISTRY_PIN" >&2 || return 1
  PYTHONPATH=$tmp/tools "$py" -m wheel unpack -d "$tmp/unpacked" "$tmp"/download/*.whl >&2 || return 1
  unpacked=$(echo "$tmp"/unpacked/*)
  rm -rf "$unpacked"/detectron2/_C*.so "$unpacked"/tools
  echo detectron2 >"$(echo "$unpacked"/*.dist-info/top_level.txt)"
  wheelfile=$(echo "$unpacked"/*.dist-info/WHEEL)
  awk '/^Root-Is-Purelib:/ { print "Root-Is-Purelib: true"; next }
       /^Tag:/ { if (!tagged) print "Tag: py3-none-any"; tagged = 1; next } { print }' \
    "$wheelfile" >"$wheelfile.new" && mv "$wheelfile.new" "$wheelfile"
  PYTHONPATH=$tmp/tools "$py" -m wheel pack -d "$out" "$unpacked" >&2 || return 1  # writes a new RECORD
  rm -rf "$tmp"
  ls -t "$out"/*-py3-none-any.whl | head -n 1
}

if [ "${1:-}" = --registry-wheel ]; then
  [ -n "${2:-}" ] || die "usage: bash dev/install.sh --registry-wheel DIR"
  check_python "$PY" "$PICK"
  LOGS=$ROOT/output/install-logs
  run_logged registry-wheel registry_wheel "$PY" "$2" || fail registry-wheel "could not make the $D2_REGISTRY_PIN wheel"
  log "wrote $(tail -n 1 "$LOGS/registry-wheel.log")"
  exit 0
fi
[ $# -eq 0 ] || die "unknown arguments: $* (the switches are environment variables; see the header of $0)"

D2_MODE=${CCNET_D2_DETECTRON2:-auto}
case $D2_MODE in auto | official | registry) ;; *) die "CCNET_D2_DETECTRON2=$D2_MODE: expected auto, official or registry" ;; esac

if [ -z "${CUDA_HOME:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDA_HOME=/usr/local/cuda  # default detection picks /usr/local and fails to link cudart
fi

# ---- 1. the virtual environment ----
if [ -x "$VPY" ]; then
  check_python "$VPY" "Remove .venv and run again (with CCNET_D2_PYTHON=... to pick the interpreter)."
  if [ -n "${CCNET_D2_PYTHON:-}" ] && [ "$("$PY" -c 'import sys; print(sys.version_info[:2])' 2>/dev/null)" != \
    "$("$VPY" -c 'import sys; print(sys.version_info[:2])')" ]; then
    log "note: .venv keeps its Python $("$VPY" -c 'import platform; print(platform.python_version())'); CCNET_D2_PYTHON applies when .venv is created (remove .venv to switch)"
  fi
else
  check_python "$PY" "$PICK"
  log "creating the virtual environment .venv with $("$PY" --version 2>&1) ($(command -v "$PY"))"
  "$PY" -m venv "$VENV" || die "'$PY -m venv' failed (on Debian/Ubuntu: install python3-venv)"
fi
rm -f "$VENV"/.ccnet_deps_stamp "$VENV"/.ccnet_ext_stamp "$VENV"/.ccnet_d2_source  # older installer's stamps

# ---- stamps ----
# Dependencies: keyed on the pins above, the requirements that setup.py's setup() call declares and
# the interpreter, not on the bytes of this script (a comment edit changes nothing). The compiled op:
# keyed on its C++/CUDA sources, the code of setup.py (without its requirement lists), the torch it is
# built against and the variables that steer the build.
read -r meta_key setup_key < <("$VPY" - <<'PYEOF'
import ast, hashlib, json, sys
tree = ast.parse(open("setup.py").read())
meta = {}
for node in ast.walk(tree):
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
        for kw in list(node.keywords):
            if kw.arg in ("install_requires", "extras_require", "python_requires"):
                meta[kw.arg] = ast.literal_eval(kw.value)
                node.keywords.remove(kw)
h = lambda s: hashlib.sha256(s.encode()).hexdigest()[:16]
print(h(json.dumps([meta, sys.version], sort_keys=True)), h(ast.dump(tree)))
PYEOF
)
[ -n "${setup_key:-}" ] || die "could not read the setup() call of setup.py"
deps_key=$(printf '%s\n' "$TORCH_PIN" "$TORCHVISION_PIN" "${BUILD_TOOLS[@]}" "$meta_key" | sha256sum | cut -c1-16)
src_key=$(find ccnet_d2 -type f \( -name '*.cpp' -o -name '*.cu' -o -name '*.h' -o -name '*.cuh' \) | LC_ALL=C sort |
  xargs -r sha256sum | sha256sum | cut -c1-16)
ext_key="$src_key $setup_key $TORCH_PIN cuda_home=${CUDA_HOME:-} arch=${TORCH_CUDA_ARCH_LIST:-default}"
ext_key="$ext_key force_cuda=${FORCE_CUDA:-0} no_extension=${CCNET_D2_NO_EXTENSION:-0}"
DEPS_STAMP=$VENV/.ccnet_d2_deps
EXT_STAMP=$VENV/.ccnet_d2_ext
D2_RECORD=$VENV/.ccnet_d2_detectron2

# ---- 2. torch and the project's declared dependencies ----
if [ "$(cat "$DEPS_STAMP" 2>/dev/null)" = "$deps_key" ]; then
  log "dependencies up to date"
else
  log "installing build tools, $TORCH_PIN, $TORCHVISION_PIN (log: $LOGS/torch.log)"
  run_logged pip "$VPY" -m pip install --upgrade "${BUILD_TOOLS[0]}" || fail pip "could not upgrade pip"
  run_logged torch "$VPY" -m pip install --upgrade "${BUILD_TOOLS[@]:1}" "$TORCH_PIN" "$TORCHVISION_PIN" ||
    fail torch "could not install $TORCH_PIN and $TORCHVISION_PIN"
  # The project with the dependencies it declares (setup.py) and its test and export extras; the op is compiled
  # in step 4, so that a change of requirements alone never recompiles it.
  log "installing the project (editable) with its declared dependencies (log: $LOGS/project-deps.log)"
  CCNET_D2_NO_EXTENSION=1 run_logged project-deps "$VPY" -m pip install --no-build-isolation -e ".[test,export]" ||
    fail project-deps "could not install the project's dependencies"
  echo "$deps_key" >"$DEPS_STAMP"
fi

# ---- 3. detectron2 ----
# Its source and pin are recorded in .venv; a different pin (or CCNET_D2_DETECTRON2 asking for the
# other source) reinstalls it. The official build compiles detectron2's own C++ ops against torch,
# so its record names the torch pin too.
D2_REGISTRY_DIST=${D2_REGISTRY_PIN%%[<>=!~;@ ]*}
OFFICIAL_ID="detectron2 official source $D2_REPO@$D2_COMMIT, built against $TORCH_PIN"
REGISTRY_ID="$D2_REGISTRY_DIST registry copy $D2_REGISTRY_PIN (Python sources; detectron2._C left out)"
d2_installed=$(cat "$D2_RECORD" 2>/dev/null || true)
d2_wanted() {
  case $D2_MODE in
    auto) [ "$1" = "$OFFICIAL_ID" ] || [ "$1" = "$REGISTRY_ID" ] ;;
    official) [ "$1" = "$OFFICIAL_ID" ] ;;
    registry) [ "$1" = "$REGISTRY_ID" ] ;;
  esac
}
dist_present() { "$VPY" -c 'import importlib.metadata as m, sys; m.distribution(sys.argv[1])' "$1" 2>/dev/null; }
remove_old_detectron2() {  # whichever copy is there: the official dist, the recorded one, the registry one
  local names=(detectron2 "$D2_REGISTRY_DIST")
  [ -n "$d2_installed" ] && names+=("${d2_installed%% *}")
  run_logged detectron2-uninstall "$VPY" -m pip uninstall -y "${names[@]}" ||
    fail detectron2-uninstall "could not uninstall the previous detectron2"
  rm -f "$D2_RECORD"
}
official_unreachable() {  # cheap check first: the repository answers within 20 s
  ! command -v git >/dev/null 2>&1 ||
    ! GIT_TERMINAL_PROMPT=0 timeout 20 git ls-remote "$D2_REPO" HEAD >"$LOGS/detectron2-reachable.log" 2>&1
}
install_official() {
  log "installing detectron2 from $D2_REPO@$D2_COMMIT (log: $LOGS/detectron2.log; compiles its C++ ops)"
  remove_old_detectron2
  MAX_JOBS=${MAX_JOBS:-$(nproc)} run_logged detectron2 "$VPY" -m pip install --no-build-isolation \
    "detectron2 @ git+$D2_REPO@$D2_COMMIT"
}
install_registry() {
  local wheel
  log "installing detectron2 from the registry copy $D2_REGISTRY_PIN (log: $LOGS/detectron2.log)"
  rm -rf "$VENV/.ccnet_d2_wheels"
  run_logged detectron2-wheel registry_wheel "$VPY" "$VENV/.ccnet_d2_wheels" ||
    fail detectron2-wheel "could not download and repack $D2_REGISTRY_PIN (D2_REGISTRY_PIN in $0)"
  wheel=$(tail -n 1 "$LOGS/detectron2-wheel.log")
  remove_old_detectron2
  # with the requirements the wheel declares, so that the environment's metadata is consistent
  run_logged detectron2 "$VPY" -m pip install "$wheel" || fail detectron2 "could not install $wheel"
  rm -rf "$VENV/.ccnet_d2_wheels"
  echo "$REGISTRY_ID" >"$D2_RECORD"
}

if [ -n "$d2_installed" ] && d2_wanted "$d2_installed" && dist_present "${d2_installed%% *}"; then
  log "detectron2 up to date"
else
  mkdir -p "$LOGS"
  case $D2_MODE in
    registry) install_registry ;;
    official | auto)
      if official_unreachable; then
        [ "$D2_MODE" = official ] &&
          die "the official detectron2 source $D2_REPO cannot be reached (git ls-remote: $LOGS/detectron2-reachable.log); CCNET_D2_DETECTRON2=registry uses the registry copy"
        log "official detectron2 source unreachable; using the registry copy"
        install_registry
      elif install_official; then
        echo "$OFFICIAL_ID" >"$D2_RECORD"
      elif [ "$D2_MODE" = auto ] &&
        grep -qE "Could not resolve host|Failed to connect|unable to access|Connection (timed out|refused|reset)" "$LOGS/detectron2.log"; then
        log "official detectron2 source unreachable while fetching it; using the registry copy"
        install_registry
      else
        fail detectron2 "building detectron2 from its official source failed. To use the registry copy instead (Python sources, enough for ccnet_d2): CCNET_D2_DETECTRON2=registry bash dev/install.sh"
      fi
      ;;
  esac
fi

# ---- 4. the compiled op ----
built_op() { compgen -G "ccnet_d2/_C*.so" >/dev/null; }
ext_torch=$(cut -d' ' -f3 "$EXT_STAMP" 2>/dev/null || true)
if [ "$(cat "$EXT_STAMP" 2>/dev/null)" = "$ext_key" ] && { [ "${CCNET_D2_NO_EXTENSION:-0}" = 1 ] || built_op; }; then
  log "compiled op up to date"
elif [ "${CCNET_D2_DEFER_EXTENSION:-0}" = 1 ] && { ! built_op || [ "$ext_torch" = "$TORCH_PIN" ] || [ -z "$ext_torch" ]; }; then
  # (an op built against another torch would fail to load, so that case compiles below)
  log "compiled op not compiled now (CCNET_D2_DEFER_EXTENSION=1); the next plain run compiles it"
else
  if [ "${CCNET_D2_NO_EXTENSION:-0}" = 1 ]; then
    log "installing the project without the compiled op (CCNET_D2_NO_EXTENSION=1)"
    built_op && log "note: $(echo ccnet_d2/_C*.so) from an earlier build stays and is still loaded; delete it to go without"
  else
    log "compiling the criss-cross op$([ -n "${CUDA_HOME:-}" ] && echo " with CUDA kernels ($CUDA_HOME)"), a few minutes (log: $LOGS/compiled-op.log)"
  fi
  MAX_JOBS=${MAX_JOBS:-$(nproc)} run_logged compiled-op "$VPY" -m pip install -v --no-build-isolation --no-deps -e . ||
    fail compiled-op "building the compiled op failed (CCNET_D2_NO_EXTENSION=1 installs without it)"
  echo "$ext_key" >"$EXT_STAMP"
fi

# ---- report ----
"$VPY" - "$(cat "$D2_RECORD")" <<'PYEOF'
import sys, warnings
warnings.filterwarnings("ignore")
import torch, torchvision
print(f"[install] torch {torch.__version__} (CUDA build {torch.version.cuda}), torchvision {torchvision.__version__}")
print(f"[install] detectron2: {sys.argv[1].split(' ', 1)[1]}")
try:
    from ccnet_d2.layers import compiled_op_status
    print(f"[install] compiled op: {compiled_op_status()}")
except Exception as e:  # the package may be mid-change; the installation itself is done
    print(f"[install] compiled op: status unavailable ({type(e).__name__}: {e})")
PYEOF
