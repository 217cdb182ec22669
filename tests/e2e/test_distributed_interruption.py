"""SIGTERM to a multi-process ``tools/train_net.py`` run on CPU (gloo): every process stops after the same
iteration, the checkpoint of that iteration is complete and named by ``last_checkpoint`` before the
launching command returns 143, no process of the run outlives it, nothing prints a traceback, and
``--resume`` continues from the next iteration. Signalled as a terminal or a scheduler does (the whole
process group), as ``kill <pid>`` does (the launcher alone), and with two "machines" of which one only
gets the signal."""
import glob
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from tests.common import REPO_ROOT, TOY_SEMANTIC_CONFIG, tool_env

pytestmark = pytest.mark.slow

MAX_ITER = 200
TINY = ["MODEL.DEVICE", "cpu", "SOLVER.MAX_ITER", str(MAX_ITER), "SOLVER.IMS_PER_BATCH", "2",
        "INPUT.CROP.SIZE", "(48, 48)", "DATALOADER.NUM_WORKERS", "1", "DATASETS.TEST", "()",
        "SOLVER.CHECKPOINT_PERIOD", "1000", "SEED", "0"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(output_dir, flags, resume=False, console="console.txt", opts=()):
    os.makedirs(output_dir, exist_ok=True)
    command = [sys.executable, os.path.join(REPO_ROOT, "tools/train_net.py"), "--config-file", TOY_SEMANTIC_CONFIG,
               *flags, *(["--resume"] if resume else []), *TINY, "OUTPUT_DIR", str(output_dir), *opts]
    env = tool_env(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    with open(os.path.join(output_dir, console), "w") as out:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _read(path):
    with open(path) as f:
        return f.read()


def _wait_for_training(output_dir, processes, timeout=240):
    """Until the run has written its first metrics row (iteration 19)."""
    start = time.monotonic()
    while not os.path.exists(os.path.join(output_dir, "metrics.json")) or not _read(
            os.path.join(output_dir, "metrics.json")).strip():
        if any(p.poll() is not None for p in processes) or time.monotonic() - start > timeout:
            for p in processes:
                p.kill()
            raise AssertionError("the run ended or stalled before training:\n" +
                                 _read(os.path.join(output_dir, "console.txt"))[-4000:])
        time.sleep(0.1)


def _processes_in_group(pgid):
    """{pid: command line} of the live processes of a process group."""
    found = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = _read(stat).rsplit(")", 1)[1].split()
            with open(stat[:-len("stat")] + "cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found[int(stat.split("/")[2])] = command
    return found


def _check_no_survivor(launcher):
    """When the launcher returns, no training process or loader worker of its group is alive (they are
    spawned with multiprocessing.spawn, loader workers forked from them); multiprocessing's resource
    tracker, which exits when the launcher's end of its pipe closes, is gone within seconds."""
    left = _processes_in_group(launcher.pid)
    assert not [c for c in left.values() if "spawn_main" in c], f"training processes outlived the launcher: {left}"
    deadline = time.monotonic() + 10
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _processes_in_group(launcher.pid)
    assert not left, f"processes of the run still alive 10 s after the launcher: {left}"


def _check_stopped(output_dir, processes, ranks=(0, 1)):
    """The state right after the launching command(s) returned: one complete checkpoint of the iteration
    every rank stopped after, named by last_checkpoint; no survivor; no traceback."""
    for p in processes:
        _check_no_survivor(p)
    with open(os.path.join(output_dir, "last_checkpoint")) as f:
        named = f.read().strip()
    logs = [_read(os.path.join(output_dir, "log.txt" + (f".rank{r}" if r else ""))) for r in ranks]
    stops = [re.findall(r"Stopped by SIGTERM after iteration (\d+); checkpoint (\S+)\.", log) for log in logs]
    assert all(len(s) == 1 for s in stops), stops
    (iteration, path), = stops[0]
    assert all(s == stops[0] for s in stops), stops  # the same iteration and file on every rank
    assert named == f"model_{int(iteration):07d}.pth" and path == os.path.join(output_dir, named)
    assert torch.load(path, map_location="cpu", weights_only=False)["iteration"] == int(iteration)
    for console in glob.glob(os.path.join(output_dir, "console*.txt")) + glob.glob(os.path.join(output_dir, "log.txt*")):
        text = _read(console)
        assert "Traceback" not in text and "ignored due to race condition" not in text, text[-4000:]
    return int(iteration)


def test_sigterm_to_the_process_group_then_resume(tmp_path):
    flags = ["--num-gpus", "2", "--dist-url", f"tcp://127.0.0.1:{_free_port()}"]
    launcher = _start(tmp_path, flags)
    _wait_for_training(tmp_path, [launcher])
    os.killpg(launcher.pid, signal.SIGTERM)  # launcher, workers and their loader workers, as Ctrl-C or Slurm
    assert launcher.wait(timeout=120) == 128 + signal.SIGTERM
    stop = _check_stopped(tmp_path, [launcher])
    assert "every worker saved and exited" in _read(tmp_path / "console.txt")

    flags = ["--num-gpus", "2", "--dist-url", f"tcp://127.0.0.1:{_free_port()}"]
    resumed = _start(tmp_path, flags, resume=True, console="resumed.txt", opts=["SOLVER.MAX_ITER", str(stop + 4)])
    assert resumed.wait(timeout=180) == 0, _read(tmp_path / "resumed.txt")[-4000:]
    assert f"Starting training from iteration {stop + 1}" in _read(tmp_path / "log.txt")


def test_sigterm_to_the_launcher_alone_reaches_the_workers(tmp_path):
    launcher = _start(tmp_path, ["--num-gpus", "2", "--dist-url", f"tcp://127.0.0.1:{_free_port()}"])
    _wait_for_training(tmp_path, [launcher])
    launcher.send_signal(signal.SIGTERM)  # kill <pid>: a scheduler that signals the main process only
    assert launcher.wait(timeout=120) == 128 + signal.SIGTERM
    _check_stopped(tmp_path, [launcher])


def test_two_machines_stop_together_when_one_is_signalled(tmp_path):
    url = f"tcp://127.0.0.1:{_free_port()}"
    machines = [_start(tmp_path, ["--num-gpus", "1", "--num-machines", "2", "--machine-rank", str(rank),
                                  "--dist-url", url], console=f"console{rank}.txt") for rank in (0, 1)]
    _wait_for_training(tmp_path, machines)
    os.killpg(machines[1].pid, signal.SIGTERM)  # only the second machine is preempted
    for machine in machines:
        assert machine.wait(timeout=120) == 128 + signal.SIGTERM
    _check_stopped(tmp_path, machines)


def test_stop_agreement_benchmark_prints_its_table():
    result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tools/benchmark_stop_agreement.py"),
                             "--iterations", "5", "--step-ms", "1"], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=300, env=tool_env(OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-4000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "us)" not in line]
    assert [row.split(" | ")[0] for row in rows] == ["| asynchronous all-reduce (StopAgreement)",
                                                     "| blocking all_gather (comm.all_gather)"]
    assert all(float(value) > 0 for row in rows for value in row.strip(" |").split(" | ")[1:])
