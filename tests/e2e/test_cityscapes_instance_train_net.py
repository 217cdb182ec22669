"""``tools/train_net.py`` trains the Cityscapes Mask R-CNN + RCCA config 2 iterations, then evaluates the
result (``--eval-only``) with the official Cityscapes instance evaluator, on a generated ``cityscapes/``
tree (Detectron2's own ``cityscapes_fine_instance_seg_*`` loaders, which need shapely), and
``tools/check_dataset.py`` scans the same split.

Evaluation runs in a process of its own: Detectron2's Cityscapes instance loader forks a
``multiprocessing.Pool``, and at the end of training, when the metric writers' threads exist, that fork
has been seen to hang a run (a worker blocked on the pool's queue lock).
"""
import os
import subprocess
import sys

import pytest

from tests.common import REPO_ROOT, config_path, tool_env
from tests.data.trees import make_cityscapes_tree

pytestmark = pytest.mark.slow

CONFIG = config_path("Cityscapes-InstanceSegmentation/mask_rcnn_rcca_R_50_FPN_cityscapes.yaml")
# Shrunk to the generated 48x96 frames; from scratch (no download), one thread.
TINY = ["MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu", "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.CHECKPOINT_PERIOD", "1000",
        "INPUT.MIN_SIZE_TRAIN", "(48,)", "INPUT.MAX_SIZE_TRAIN", "96", "INPUT.MIN_SIZE_TEST", "48",
        "INPUT.MAX_SIZE_TEST", "96", "DATALOADER.NUM_WORKERS", "0", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
        "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32", "MODEL.RPN.POST_NMS_TOPK_TEST", "50",
        "TEST.DETECTIONS_PER_IMAGE", "10"]


def _run(tool, args, dataset_root):
    env = tool_env(DETECTRON2_DATASETS=str(dataset_root), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tools", tool), *args], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    return result.returncode, result.stdout + result.stderr


def test_cityscapes_instance_config_trains_and_evaluates(tmp_path):
    make_cityscapes_tree(str(tmp_path / "data"), splits=(("train", 2), ("val", 1)), size=(48, 96))
    out = str(tmp_path / "out")
    status, log = _run("train_net.py", ["--config-file", CONFIG, *TINY, "DATASETS.TEST", "()", "OUTPUT_DIR", out],
                       tmp_path / "data")
    assert status == 0, log[-6000:]
    assert "Starting training from iteration 0" in log
    status, log = _run("train_net.py", ["--config-file", CONFIG, "--eval-only", *TINY, "OUTPUT_DIR", out,
                                        "MODEL.WEIGHTS", os.path.join(out, "model_final.pth")], tmp_path / "data")
    assert status == 0, log[-6000:]
    # Detectron2's CityscapesInstanceEvaluator ran the official evaluation and reported AP and AP50.
    lines = [line.split("copypaste: ", 1)[1].strip() for line in log.splitlines() if "copypaste: " in line]
    names, values = lines[lines.index("AP,AP50")], lines[lines.index("AP,AP50") + 1]
    metrics = dict(zip(names.split(","), map(float, values.split(","))))
    assert set(metrics) == {"AP", "AP50"} and all(0.0 <= v <= 100.0 for v in metrics.values()), metrics

    status, log = _run("check_dataset.py", ["--no-progress", "cityscapes_fine_instance_seg_val"], tmp_path / "data")
    assert status == 0 and "cityscapes_fine_instance_seg_val: 0 problem(s), 0 of them missing files" in log, log[-3000:]
