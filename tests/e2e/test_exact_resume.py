"""Exact resume: a toy CCNet run (random scale, crop and flip in 2 loader workers, dropout in the head)
killed at several random iterations in sequence (SIGKILL after a step, SIGKILL in the middle of a
checkpoint write, SIGTERM) and resumed each time ends with the uninterrupted run's parameters and
optimizer state bit for bit, and with its ``metrics.json`` rows (every value but the timings).

The fault points are drawn at random for every run of the test; a failure names them, and
``CCNET_D2_FAULT_SEED`` replays a draw.
"""
import json
import os
import random
import signal
import subprocess
import sys

import pytest
import torch

from tests.common import REPO_ROOT, TOY_SEMANTIC_CONFIG, tool_env

pytestmark = pytest.mark.slow

MAX_ITER, PERIOD = 40, 8  # checkpoints after iterations 7, 15, 23, 31 (the writers' period is capped at 8)
TINY = ["SOLVER.MAX_ITER", str(MAX_ITER), "SOLVER.CHECKPOINT_PERIOD", str(PERIOD), "SOLVER.IMS_PER_BATCH", "2",
        "INPUT.CROP.SIZE", "(48, 48)", "DATASETS.TEST", "()", "SEED", "3", "DATALOADER.NUM_WORKERS", "2"]
WALL_CLOCK = ("time", "data_time", "rank_data_time", "eta_seconds")  # metrics.json values that differ in every run


def _train(output_dir, fault=None, resume=False, opts=()):
    prefix = ["-m", "tests.e2e.fault_run", *fault] if fault else [os.path.join(REPO_ROOT, "tools/train_net.py")]
    command = [sys.executable, *prefix, "--config-file", TOY_SEMANTIC_CONFIG, *(["--resume"] if resume else []),
               *TINY, "OUTPUT_DIR", str(output_dir), *opts]
    result = subprocess.run(command, cwd=REPO_ROOT, env=tool_env(OMP_NUM_THREADS="1"),
                            capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout + result.stderr


def _rows(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [{k: v for k, v in json.loads(line).items() if k not in WALL_CLOCK} for line in f]


def _final(output_dir):
    return torch.load(os.path.join(output_dir, "model_final.pth"), map_location="cpu", weights_only=False)


def _newest_intact_iteration(output_dir):
    """The iteration a resume starts after: the newest readable model_*.pth (-1: none)."""
    best = -1
    for name in os.listdir(output_dir):
        if name.startswith("model_0") and name.endswith(".pth"):
            try:
                best = max(best, torch.load(os.path.join(output_dir, name), weights_only=False)["iteration"])
            except Exception:
                pass
    return best


def _fault_plan(rng):
    """(mode, iteration) faults in the order they hit, each after the previous run's resume point."""
    first = rng.randint(2, 12)  # before or after the first checkpoint (7): a resume from scratch, or from 7
    save = rng.choice([15, 23])  # killed writing this checkpoint: the resume falls back to the one before
    sigterm = rng.randint(save - PERIOD + 2, save + 5)
    last = rng.randint(sigterm + 2, MAX_ITER - 3)
    return [("step", first), ("save", save), ("sigterm", sigterm), ("step", last)]


def test_interrupted_and_resumed_run_equals_the_uninterrupted_run(tmp_path):
    seed = int(os.environ.get("CCNET_D2_FAULT_SEED", random.SystemRandom().randrange(10**6)))
    plan = _fault_plan(random.Random(seed))
    about = f"fault plan {plan} (CCNET_D2_FAULT_SEED={seed})"
    print(about)

    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    status, log = _train(reference)
    assert status == 0, log[-6000:]

    for number, (mode, iteration) in enumerate(plan):
        start = _newest_intact_iteration(interrupted) + 1 if number else 0
        status, log = _train(interrupted, (mode, str(iteration)), resume=number > 0)
        assert f"Starting training from iteration {start}" in log, f"{about}\n{log[-4000:]}"
        if mode == "sigterm":  # seen after the fault's step, acted on after the next one
            assert status == 128 + signal.SIGTERM, f"{about}\n{log[-4000:]}"
            assert f"Stopped by SIGTERM after iteration {iteration + 1}" in log, about
        else:
            assert status == -signal.SIGKILL, f"{about}\n{log[-4000:]}"
    status, log = _train(interrupted, resume=True)
    assert status == 0, f"{about}\n{log[-6000:]}"

    expected, got = _final(reference), _final(interrupted)
    assert got["iteration"] == expected["iteration"] == MAX_ITER - 1
    for key, value in expected["model"].items():  # weights and batch-norm statistics
        assert torch.equal(got["model"][key], value), f"{key}; {about}"
    optimizer, expected_optimizer = got["trainer"]["_trainer"]["optimizer"], expected["trainer"]["_trainer"]["optimizer"]
    assert optimizer["state"].keys() == expected_optimizer["state"].keys()
    for index, state in expected_optimizer["state"].items():
        for name, value in state.items():
            assert torch.equal(optimizer["state"][index][name], value), f"{index} {name}; {about}"
    # The same rows, in the same order: none repeated by a resume, none missing, the same smoothed losses.
    assert _rows(interrupted) == _rows(reference), about


def test_negative_control_another_seed_differs(tmp_path):
    """The comparison above can fail: one SEED apart, the final weights differ."""
    for name, seed in (("a", "3"), ("b", "4")):
        status, log = _train(tmp_path / name, opts=["SOLVER.MAX_ITER", "8", "SEED", seed])
        assert status == 0, log[-4000:]
    a, b = _final(tmp_path / "a")["model"], _final(tmp_path / "b")["model"]
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
