#!/usr/bin/env bash
# The main job (README "Quick start"): set up .venv, then train Mask R-CNN + RCCA from scratch on the
# built-in toy dataset, evaluate box/mask AP, draw DefaultPredictor predictions. Extra arguments are
# config overrides (KEY VALUE ...). Re-running resumes from the last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
# Without a GPU the job never calls the compiled kernel, so its compilation waits for dev/test.sh.
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  bash dev/install.sh
else
  CCNET_D2_DEFER_EXTENSION=1 bash dev/install.sh
fi
# Two compute threads, one per core of a machine of this kind (faster than one thread when the
# machine is otherwise idle). On cores shared with other jobs, a second OpenMP thread waits on preempted
# peers and slows training down several-fold: there, run with OMP_NUM_THREADS=1.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec .venv/bin/python -W ignore::FutureWarning -W ignore::UserWarning tools/main_job.py "$@"
