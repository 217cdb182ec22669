"""A toy CCNet run of ``tools/train_net.py`` stopped by SIGTERM, or killed by SIGKILL with its newest
checkpoint half written, continues with ``--resume`` from where it stopped.

The stopped run is compared with an uninterrupted one of the same seed: the checkpoint written on
SIGTERM must equal, tensor for tensor, the uninterrupted run's checkpoint at that iteration, and after
resuming, ``metrics.json`` holds the uninterrupted run's rows (the row that only the stop wrote is cut).
Faults at random iterations in sequence, compared down to the final weights: test_exact_resume.py.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.common import REPO_ROOT, TOY_SEMANTIC_CONFIG, tool_env

pytestmark = pytest.mark.slow

MAX_ITER = 100
TINY = ["SOLVER.MAX_ITER", str(MAX_ITER), "SOLVER.IMS_PER_BATCH", "2", "INPUT.CROP.SIZE", "(48, 48)",
        "DATASETS.TEST", "()", "SEED", "0"]
WORKERS = ["DATALOADER.NUM_WORKERS", "2"]  # they get the signal too, as in a real job


def _command(output_dir, checkpoint_period, resume=False, opts=()):
    return [sys.executable, os.path.join(REPO_ROOT, "tools/train_net.py"), "--config-file", TOY_SEMANTIC_CONFIG,
            *(["--resume"] if resume else []), *TINY, "SOLVER.CHECKPOINT_PERIOD", str(checkpoint_period),
            "OUTPUT_DIR", str(output_dir), *opts]


def _env():
    return tool_env(OMP_NUM_THREADS="1")


def _run(output_dir, checkpoint_period, resume=False, opts=()):
    result = subprocess.run(_command(output_dir, checkpoint_period, resume, opts), cwd=REPO_ROOT, env=_env(),
                            capture_output=True, text=True, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    return log


def _start(output_dir, checkpoint_period, opts=()):
    """The run in a session of its own, so that its process group can be signalled as a terminal or a
    scheduler signals a job."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "console.txt"), "w") as console:
        return subprocess.Popen(_command(output_dir, checkpoint_period, opts=opts), cwd=REPO_ROOT, env=_env(),
                                stdout=console, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_until(condition, process, output_dir, timeout=240):
    start = time.monotonic()
    while not condition():
        if process.poll() is not None or time.monotonic() - start > timeout:
            process.kill()
            with open(os.path.join(output_dir, "console.txt")) as f:
                raise AssertionError("the run ended or stalled before the awaited point:\n" + f.read()[-4000:])
        time.sleep(0.05)


def _metrics(output_dir):
    path = os.path.join(output_dir, "metrics.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().endswith("}")]


def _last_checkpoint(output_dir):
    path = os.path.join(output_dir, "last_checkpoint")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return os.path.join(output_dir, f.read().strip())


def _checkpoint_iteration(path):
    """The iteration in a ``model_<iteration>.pth`` name (-1 for None)."""
    return int(os.path.basename(path)[len("model_"):-len(".pth")]) if path else -1


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def _assert_same_state(a, b):
    assert a["iteration"] == b["iteration"]
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["trainer"]["iteration"] == b["trainer"]["iteration"]
    assert a["trainer"]["hooks"]["LRScheduler"] == b["trainer"]["hooks"]["LRScheduler"]
    optimizer_a, optimizer_b = a["trainer"]["_trainer"]["optimizer"], b["trainer"]["_trainer"]["optimizer"]
    assert optimizer_a["param_groups"] == optimizer_b["param_groups"]
    assert optimizer_a["state"].keys() == optimizer_b["state"].keys() and optimizer_a["state"]
    for index, state in optimizer_a["state"].items():
        for name, value in state.items():
            assert torch.equal(value, optimizer_b["state"][index][name]), (index, name)


def test_sigterm_saves_the_current_iteration_and_resume_continues_from_it(tmp_path):
    stopped, reference = tmp_path / "stopped", tmp_path / "reference"
    # No periodic checkpoint: only the signal saves one. The whole process group gets the signal, the
    # DataLoader's workers too, which die (the run must still finish its step and save).
    process = _start(stopped, checkpoint_period=1000, opts=WORKERS)
    _wait_until(lambda: _metrics(stopped), process, stopped)  # iteration 19 written
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=120) == 128 + signal.SIGTERM
    saved_path = _last_checkpoint(stopped)
    saved = _load(saved_path)
    stop = saved["iteration"]
    assert os.path.basename(saved_path) == f"model_{stop:07d}.pth" and 19 <= stop < MAX_ITER - 1
    assert [m["iteration"] for m in _metrics(stopped)][-1] == stop  # the loss history reaches the checkpoint
    with open(stopped / "console.txt") as f:
        assert f"Stopped by SIGTERM after iteration {stop}" in f.read()

    _run(reference, checkpoint_period=stop + 1, opts=WORKERS)  # uninterrupted, a checkpoint at the same iteration
    _assert_same_state(saved, _load(reference / f"model_{stop:07d}.pth"))

    log = _run(stopped, checkpoint_period=1000, resume=True, opts=WORKERS)
    assert f"Starting training from iteration {stop + 1}" in log
    resumed, uninterrupted = _metrics(stopped), {m["iteration"]: m for m in _metrics(reference)}
    iterations = [m["iteration"] for m in resumed]
    assert iterations == sorted(set(iterations)) and iterations[-1] == MAX_ITER - 1
    # (the reference also writes at its checkpoints, so it has every row of the resumed run and more)
    assert set(iterations) <= set(uninterrupted) and (stop in iterations) == ((stop + 1) % 20 == 0)
    for m in resumed:  # the poly schedule continues where it stopped, and so does the computation
        assert m["lr"] == uninterrupted[m["iteration"]]["lr"], m["iteration"]
        assert m["total_loss"] == uninterrupted[m["iteration"]]["total_loss"], m["iteration"]
    assert _load(stopped / "model_final.pth")["iteration"] == MAX_ITER - 1


def test_resume_after_sigkill_during_a_save_falls_back_to_the_previous_checkpoint(tmp_path):
    output = tmp_path / "killed"
    # A period the writers' (20) does not divide: metrics.json gets the checkpoints' iterations on top.
    process = _start(output, checkpoint_period=30, opts=["DATALOADER.NUM_WORKERS", "0"])
    _wait_until(lambda: _checkpoint_iteration(_last_checkpoint(output)) >= 59, process, output)  # 2 saved
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    newest = _last_checkpoint(output)
    newest_iteration = _checkpoint_iteration(newest)
    assert 59 <= newest_iteration < MAX_ITER - 1
    previous = output / f"model_{newest_iteration - 30:07d}.pth"
    assert previous.exists()
    # The loss history reaches every checkpoint before the newest (29 is not a multiple of the writers' period).
    assert set(range(29, newest_iteration, 30)) <= {m["iteration"] for m in _metrics(output)}
    # What an in-place writer leaves when killed mid-save: the pointer names a half-written file ...
    with open(newest, "rb") as f:
        head = f.read(os.path.getsize(newest) // 2)
    with open(newest, "wb") as f:
        f.write(head)
    with pytest.raises(Exception):  # (negative control: the file is really unreadable)
        _load(newest)
    # ... and what an atomic save leaves: a partial file next to the intact ones.
    with open(output / f"model_{newest_iteration + 30:07d}.pth.partial", "wb") as f:
        f.write(head[:1000])

    log = _run(output, checkpoint_period=30, resume=True, opts=["DATALOADER.NUM_WORKERS", "0"])
    assert f"Cannot resume from {newest}" in log
    assert f"Resuming from {previous}, the newest intact checkpoint" in log
    assert f"Ignoring {output / f'model_{newest_iteration + 30:07d}.pth.partial'}" in log
    assert f"Starting training from iteration {newest_iteration - 30 + 1}" in log
    assert _load(output / "model_final.pth")["iteration"] == MAX_ITER - 1
