#!/usr/bin/env bash
# Set up (or reuse) the environment with dev/install.sh, then run the tests. Arguments go to pytest;
# without a test path among them (e.g. none at all, or only options such as -x or -m "not slow"),
# the whole suite under tests/ runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash dev/install.sh
for arg in "$@"; do
  if [ -e "${arg%%::*}" ]; then exec .venv/bin/python -m pytest "$@"; fi
done
exec .venv/bin/python -m pytest tests "$@"
