#!/usr/bin/env bash
# Run the test suite against another detectron2 and/or another torch, and print one line that says what
# ran and how it ended (docs/INSTALL.md, "Compatibility", keeps the table of these lines).
#
#   bash dev/compat.sh [--detectron2 DIR] [--torch VERSION [--torchvision VERSION]] [pytest arguments]
#
#   --detectron2 DIR   a detectron2 source tree (e.g. a clone of its main branch), imported instead of the
#                      installed detectron2, by the tests and by every tool they start; its C++ ops are not
#                      built, which is fine: ccnet_d2 never needs detectron2._C
#   --torch VERSION    the suite runs in a copy of this tree, output/compat/torch-VERSION, whose .venv
#                      dev/install.sh makes with that torch (and --torchvision, default: the release made
#                      for it); the compiled op is built there against that torch
# Without --torch, the suite runs with .venv (made by dev/install.sh if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
D2_DIR="" TORCH_VERSION="" TORCHVISION_VERSION=""
while [ $# -gt 0 ]; do
  case $1 in
    --detectron2) D2_DIR=$(cd "$2" && pwd); shift 2 ;;
    --torch) TORCH_VERSION=$2; shift 2 ;;
    --torchvision) TORCHVISION_VERSION=$2; shift 2 ;;
    *) break ;;
  esac
done
die() { printf '[compat] error: %s\n' "$*" >&2; exit 1; }

if [ -n "$D2_DIR" ]; then
  [ -f "$D2_DIR/detectron2/__init__.py" ] || die "$D2_DIR is not a detectron2 source tree (no detectron2/__init__.py)"
  export PYTHONPATH=$D2_DIR${PYTHONPATH:+:$PYTHONPATH}
  d2_desc="detectron2 source $D2_DIR"
  if git -C "$D2_DIR" rev-parse --short=8 HEAD >/dev/null 2>&1; then
    d2_desc="$d2_desc ($(git -C "$D2_DIR" log -1 --format='%h, %cs'))"
  fi
fi

if [ -n "$TORCH_VERSION" ]; then
  if [ -z "$TORCHVISION_VERSION" ]; then  # torchvision's release for each torch (its README's table)
    case $TORCH_VERSION in
      2.4.*) TORCHVISION_VERSION=0.19.1 ;; 2.5.*) TORCHVISION_VERSION=0.20.1 ;; 2.6.*) TORCHVISION_VERSION=0.21.0 ;;
      2.7.*) TORCHVISION_VERSION=0.22.1 ;; 2.8.*) TORCHVISION_VERSION=0.23.0 ;; 2.9.*) TORCHVISION_VERSION=0.24.1 ;;
      2.10.*) TORCHVISION_VERSION=0.25.0 ;; 2.11.*) TORCHVISION_VERSION=0.26.0 ;; 2.12.*) TORCHVISION_VERSION=0.27.1 ;;
      2.13.*) TORCHVISION_VERSION=0.28.0 ;; 2.14.*) TORCHVISION_VERSION=0.29.1 ;;
      *) die "no known torchvision for torch $TORCH_VERSION: pass --torchvision VERSION" ;;
    esac
  fi
  WORK=$ROOT/output/compat/torch-$TORCH_VERSION
  mkdir -p "$WORK"
  # The tree as a clone would have it (tracked and untracked files, nothing ignored); its .venv is kept.
  git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$WORK"
  CCNET_D2_TORCH_PIN="torch==$TORCH_VERSION" CCNET_D2_TORCHVISION_PIN="torchvision==$TORCHVISION_VERSION" \
    bash "$WORK/dev/install.sh"
else
  WORK=$ROOT
  bash dev/install.sh
fi

cd "$WORK"
versions=$(.venv/bin/python -W ignore - <<'PYEOF'
import os, platform, detectron2, torch, torchvision
source = os.path.dirname(os.path.dirname(detectron2.__file__))
print(f"Python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"detectron2 {detectron2.__version__} from {source}")
PYEOF
)
mkdir -p output
LOG=$(mktemp "$WORK/output/compat-XXXXXX.log")  # one per run: runs may go on side by side
set +e
.venv/bin/python -m pytest tests -p no:cacheprovider "$@" | tee "$LOG"
status=${PIPESTATUS[0]}
set -e
summary=$(grep -E '[0-9]+ (passed|failed|error).* in [0-9.]+s' "$LOG" | tail -n 1 | tr -d '=' | sed 's/^ *//')
printf '[compat] %s | %s | %s | %s\n' "$(date -u +%Y-%m-%d)" "$versions" "${d2_desc:-detectron2 as installed}" \
  "${summary:-no pytest summary (exit status $status)}"
exit "$status"
