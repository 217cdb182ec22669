"""Mask R-CNN + RCCA end to end on the toy dataset: a few iterations of ``tools/train_net.py``, then
``--eval-only`` (COCO box + mask AP), then ``--resume``, then ``DefaultPredictor`` and ``tools/demo.py``
on an image. The evaluation path itself is checked against perfect predictions (AP = 100)."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.engine import DefaultPredictor
from detectron2.structures import BitMasks, Boxes, BoxMode, Instances

from ccnet_d2.data.datasets import toy
from tests.common import TOY_INSTANCE_CONFIG as CONFIG, build_cfg, load_tool
from tests.common import REPO_ROOT as REPO

pytestmark = pytest.mark.slow

# A few iterations at a small LR check the plumbing, not learning: after 2 warm-up iterations the recipe's
# LR (0.03) moves the from-scratch weights so far that, with BN running statistics still near their initial
# values, eval mode can predict only degenerate (empty) boxes.
TINY = ["SOLVER.IMS_PER_BATCH", "2", "SOLVER.WARMUP_ITERS", "2", "SOLVER.BASE_LR", "0.002",
        "SOLVER.CHECKPOINT_PERIOD", "2", "DATALOADER.NUM_WORKERS", "0", "MODEL.CCNET.BACKEND", "torch", "SEED", "1"]


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("toy"))
    toy.ensure_toy_dataset(root)
    return root


def train_net(toy_root, flags, opts):
    env = dict(os.environ, CCNET_D2_TOY_ROOT=toy_root, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, os.path.join(REPO, "tools/train_net.py"), "--config-file", CONFIG,
                             *flags, *TINY, *opts], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    return log


def metrics_lines(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_train_eval_resume_predict(toy_root, tmp_path, capsys):
    out = str(tmp_path / "out")
    train_net(toy_root, [], ["SOLVER.MAX_ITER", "4", "DATASETS.TEST", "()", "OUTPUT_DIR", out])
    with open(os.path.join(out, "last_checkpoint")) as f:
        assert f.read().strip() == "model_final.pth"
    assert metrics_lines(out)[-1]["iteration"] == 3
    assert np.isfinite(metrics_lines(out)[-1]["total_loss"])

    # A 4-iteration model scores below the default 0.05 threshold; keep every detection so the COCO
    # evaluation really runs for boxes and masks.
    log = train_net(toy_root, ["--eval-only"], ["MODEL.WEIGHTS", os.path.join(out, "model_final.pth"),
                                                "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "OUTPUT_DIR", out])
    for task in ("bbox", "segm"):
        assert f"Evaluation results for {task}" in log
    copypaste = [line.split("copypaste: ", 1)[1] for line in log.splitlines() if "copypaste: " in line]
    assert copypaste[0::3] == ["Task: bbox", "Task: segm"]  # each task: "Task", names, values
    for values in copypaste[2::3]:  # AP, AP50, AP75 (APl is nan: no toy shape is "large")
        assert all(0.0 <= float(v) <= 100.0 for v in values.split(",")[:3]), values
    assert os.path.isfile(os.path.join(out, "inference", "coco_instances_results.json"))

    log = train_net(toy_root, ["--resume"], ["SOLVER.MAX_ITER", "6", "DATASETS.TEST", "()", "OUTPUT_DIR", out])
    assert "Starting training from iteration 4" in log
    assert metrics_lines(out)[-1]["iteration"] == 5

    cfg = build_cfg(CONFIG, "MODEL.WEIGHTS", os.path.join(out, "model_final.pth"),
                    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0")
    image_path = os.path.join(toy_root, toy.VERSION, "val", "images", "000000.png")
    image = cv2.imread(image_path)
    instances = DefaultPredictor(cfg)(image)["instances"]
    assert instances.image_size == image.shape[:2]
    assert len(instances) > 0 and instances.pred_masks.shape[1:] == image.shape[:2]

    demo = load_tool("demo")
    written = demo.main(["--config-file", CONFIG, "--input", image_path, "--output", str(tmp_path / "demo"),
                         "--opts", "MODEL.WEIGHTS", os.path.join(out, "model_final.pth")])
    assert cv2.imread(written[0]).shape == image.shape
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot be decoded"):
        demo.main(["--config-file", CONFIG, "--input", str(broken), "--output", str(tmp_path / "demo"),
                   "--opts", "MODEL.WEIGHTS", os.path.join(out, "model_final.pth")])
    # A folder: every readable image is drawn, the unreadable ones are named at the end, and the exit is non-zero.
    folder = tmp_path / "folder"
    folder.mkdir()
    cv2.imwrite(str(folder / "good.png"), image)
    (folder / "bad.png").write_bytes(b"not a png")
    # A truncated JPEG: OpenCV decodes it without an error (grey where the data is missing).
    cv2.imwrite(str(folder / "cut.jpg"), image)
    data = (folder / "cut.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert cv2.imread(str(folder / "cut.jpg")) is not None  # (what the demo used to draw)
    with pytest.raises(SystemExit, match="2 of 3 images could not be read"):
        demo.main(["--config-file", CONFIG, "--input", str(folder), "--output", str(tmp_path / "folder_out"),
                   "--opts", "MODEL.WEIGHTS", os.path.join(out, "model_final.pth")])
    assert (tmp_path / "folder_out" / "good_pred.png").exists()
    captured = capsys.readouterr()
    assert "bad.png" in captured.err and "cut.jpg" in captured.err
    assert "1 image(s) at " in captured.out and " images/s " in captured.out


def test_evaluator_gives_100_ap_to_the_ground_truth(toy_root, tmp_path, monkeypatch):
    """The toy annotations, fed back as predictions through build_evaluator, score AP = 100 for boxes
    and masks: the dataset, the RLE masks and the evaluator agree."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from ccnet_d2.evaluation import build_evaluator

    names = ["ccnet_toy_val", "ccnet_toy_train", "ccnet_toy_sem_seg_val", "ccnet_toy_sem_seg_train"]

    def reregister(root):
        for name in names:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        toy.register_all_toy(root)

    reregister(toy_root)
    try:
        records = DatasetCatalog.get("ccnet_toy_val")[:20]
        cfg = get_cfg()
        cfg.OUTPUT_DIR = str(tmp_path)
        evaluator = build_evaluator(cfg, "ccnet_toy_val")
        evaluator.reset()
        for record in records:
            annotations = record["annotations"]
            size = (record["height"], record["width"])
            predicted = Instances(size)
            boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annotations]
            predicted.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
            predicted.scores = torch.ones(len(annotations))
            predicted.pred_classes = torch.tensor([a["category_id"] for a in annotations])
            masks = [mask_util.decode(a["segmentation"]) for a in annotations]
            predicted.pred_masks = BitMasks(torch.from_numpy(np.stack(masks)).bool()).tensor
            evaluator.process([{"image_id": record["image_id"]}], [{"instances": predicted}])
        results = evaluator.evaluate(img_ids=[r["image_id"] for r in records])
    finally:
        reregister(None)
    assert results["bbox"]["AP"] == pytest.approx(100.0)
    assert results["segm"]["AP"] == pytest.approx(100.0)
