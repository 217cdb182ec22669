"""Two-process training on CPU over gloo, as ``tools/train_net.py --num-gpus 2`` and as two "machines" on
localhost: the replicas end with identical weights (gradients averaged by DistributedDataParallel, batch
statistics by SyncBN) although each saw other images, and the logged losses are the mean of the
processes' own losses."""
import os
import socket
import subprocess
import sys

import pytest
import torch

from tests.common import REPO_ROOT, TOY_SEMANTIC_CONFIG, tool_env

pytestmark = pytest.mark.slow

TINY = ["SOLVER.MAX_ITER", "3", "SOLVER.IMS_PER_BATCH", "2", "INPUT.CROP.SIZE", "(48, 48)", "DATALOADER.NUM_WORKERS",
        "0", "DATASETS.TEST", "()", "SOLVER.CHECKPOINT_PERIOD", "1000", "SEED", "0",
        "MODEL.RESNETS.NORM", "SyncBN", "MODEL.SEM_SEG_HEAD.NORM", "SyncBN"]  # the semantic configs' norm


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(output_dir, flags):
    command = [sys.executable, "-m", "tests.e2e.distributed_worker", "--config-file", TOY_SEMANTIC_CONFIG,
               *flags, *TINY, "OUTPUT_DIR", str(output_dir)]
    env = tool_env(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _finish(process):
    log, _ = process.communicate(timeout=300)
    assert process.returncode == 0, log[-6000:]
    return log


def _check_replicas(output_dir):
    ranks = [torch.load(os.path.join(output_dir, f"rank{r}.pth"), weights_only=False) for r in (0, 1)]
    assert ranks[0]["norms"] == ["NaiveSyncBatchNorm"] == ranks[1]["norms"]  # SyncBN, made to work on CPU
    first, second = ranks[0]["state_dict"], ranks[1]["state_dict"]
    assert first.keys() == second.keys()
    for key in first:  # weights and BN running statistics alike
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0, msg=key)
    own = [r["own_losses"] for r in ranks]
    assert len(own[0]) == len(own[1]) == 3
    assert any(a["loss_sem_seg"] != b["loss_sem_seg"] for a, b in zip(*own))  # (the processes saw other images)
    logged = ranks[0]["logged"]
    for iteration, (a, b) in enumerate(zip(*own)):
        assert logged["loss_sem_seg"][iteration] == pytest.approx((a["loss_sem_seg"] + b["loss_sem_seg"]) / 2)
        assert logged["total_loss"][iteration] == pytest.approx((sum(a.values()) + sum(b.values())) / 2)


def test_two_processes_on_one_machine(tmp_path):
    log = _finish(_worker(tmp_path, ["--num-gpus", "2", "--dist-url", f"tcp://127.0.0.1:{_free_port()}"]))
    assert "torch.nn.SyncBatchNorm layers replaced by Detectron2's NaiveSyncBatchNorm" in log
    _check_replicas(tmp_path)


def test_two_machines_on_localhost(tmp_path):
    url = f"tcp://127.0.0.1:{_free_port()}"
    machines = [_worker(tmp_path, ["--num-gpus", "1", "--num-machines", "2", "--machine-rank", str(rank),
                                   "--dist-url", url]) for rank in (0, 1)]
    for machine in machines:
        _finish(machine)
    _check_replicas(tmp_path)
