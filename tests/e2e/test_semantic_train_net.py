"""``tools/train_net.py`` trains CCNet a few iterations and evaluates, on generated LIP and Cityscapes trees.

Each run is a fresh process with ``DETECTRON2_DATASETS`` pointing at the generated tree (the datasets
are registered at import, as in real use), the toy-size CCNet config shrunk further by overrides.
"""
import math
import os
import subprocess
import sys

import pytest

from tests.common import REPO_ROOT as REPO, TOY_SEMANTIC_CONFIG as TOY_CONFIG, load_tool
from tests.data.trees import make_ade20k_tree, make_cityscapes_tree, make_lip_tree, make_voc_sbd_tree

pytestmark = pytest.mark.slow



def _train_and_evaluate(dataset_root, output_dir, overrides, config=TOY_CONFIG):
    command = [sys.executable, os.path.join(REPO, "tools/train_net.py"), "--config-file", config,
               "SOLVER.MAX_ITER", "3", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.CHECKPOINT_PERIOD", "1000",
               "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(output_dir), *overrides]
    env = dict(os.environ, DETECTRON2_DATASETS=str(dataset_root))
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    return log


def _copypaste_metrics(log):
    """The metrics Detectron2 prints as ``copypaste: name,name,...`` then ``copypaste: value,value,...``."""
    lines = [line.split("copypaste: ", 1)[1].strip() for line in log.splitlines() if "copypaste: " in line]
    for names, values in zip(lines, lines[1:]):
        if "IoU" in names:
            metrics = dict(zip(names.split(","), map(float, values.split(","))))
            print("evaluation:", metrics)  # shown with pytest -s / -rP
            return metrics
    raise AssertionError("no evaluation metrics in the log:\n" + log[-4000:])


def test_train_net_trains_and_evaluates_on_a_lip_tree(tmp_path):
    make_lip_tree(str(tmp_path / "data"), splits=(("train", 4), ("val", 2)), size=(64, 48))
    log = _train_and_evaluate(tmp_path / "data", tmp_path / "out", [
        "DATASETS.TRAIN", "('lip_sem_seg_train',)", "DATASETS.TEST", "('lip_sem_seg_val',)",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "20", "INPUT.FORMAT", "RGB", "INPUT.CROP.SIZE", "(48, 48)",
        "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "64", "TEST.AUG.ENABLED", "True", "TEST.AUG.FLIP", "True"])
    metrics = _copypaste_metrics(log)
    for name in ("mIoU", "fwIoU", "mACC", "pACC"):  # LIP reports mean accuracy too
        assert 0.0 <= metrics[name] <= 100.0 and not math.isnan(metrics[name]), metrics
    assert "RandomHFlipSwapLabels" in log  # the LIP flip was in the training augmentations
    # the inference mode is printed with the results
    assert "The results above were obtained with inference mode: whole image, scales [1.0], flip (swapping class pairs" in log, log[-3000:]


def test_train_net_trains_and_evaluates_on_a_cityscapes_tree(tmp_path):
    make_cityscapes_tree(str(tmp_path / "data"), splits=(("train", 2), ("val", 1)), size=(48, 96))
    load_tool("prepare_cityscapes").main([str(tmp_path / "data" / "cityscapes"), "--workers", "1"])
    log = _train_and_evaluate(tmp_path / "data", tmp_path / "out", [
        "DATASETS.TRAIN", "('cityscapes_fine_sem_seg_train',)", "DATASETS.TEST", "('cityscapes_fine_sem_seg_val',)",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "19", "INPUT.FORMAT", "RGB", "INPUT.CROP.SIZE", "(48, 48)",
        "INPUT.MIN_SIZE_TEST", "48", "INPUT.MAX_SIZE_TEST", "96"])
    metrics = _copypaste_metrics(log)
    miou = metrics.get("mIoU", metrics.get("IoU"))  # SemSegEvaluator: mIoU; official Cityscapes: IoU
    assert miou is not None and 0.0 <= miou <= 100.0, metrics


def test_train_net_trains_and_evaluates_on_an_ade20k_tree(tmp_path):
    make_ade20k_tree(str(tmp_path / "data"), counts=(("training", 2), ("validation", 1)), size=(48, 64))
    load_tool("prepare_ade20k").main([str(tmp_path / "data" / "ADEChallengeData2016")])
    log = _train_and_evaluate(tmp_path / "data", tmp_path / "out", [
        "DATASETS.TRAIN", "('ade20k_sem_seg_train',)", "DATASETS.TEST", "('ade20k_sem_seg_val',)",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "150", "INPUT.CROP.SIZE", "(48, 48)",
        "INPUT.MIN_SIZE_TEST", "48", "INPUT.MAX_SIZE_TEST", "64"])
    assert 0.0 <= _copypaste_metrics(log)["mIoU"] <= 100.0


def test_train_net_trains_and_evaluates_on_a_voc_tree(tmp_path):
    make_voc_sbd_tree(str(tmp_path / "data"), size=(40, 52))
    load_tool("prepare_voc_sbd").main([
        "--voc", str(tmp_path / "data" / "VOCdevkit" / "VOC2012"),
        "--sbd", str(tmp_path / "data" / "benchmark_RELEASE" / "dataset")])
    log = _train_and_evaluate(tmp_path / "data", tmp_path / "out", [
        "DATASETS.TRAIN", "('voc_2012_sem_seg_train_aug',)", "DATASETS.TEST", "('voc_2012_sem_seg_val',)",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "21", "INPUT.CROP.SIZE", "(32, 32)",
        "INPUT.MIN_SIZE_TEST", "40", "INPUT.MAX_SIZE_TEST", "52"])
    assert 0.0 <= _copypaste_metrics(log)["mIoU"] <= 100.0
