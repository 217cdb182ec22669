"""``tools/train_net.py`` trains the CCNet video model a few iterations on clips and evaluates mIoU on a
generated CamVid tree whose neighbouring frames ``tools/prepare_camvid.py`` made."""
import math

import pytest

from tests.common import TOY_VIDEO_CONFIG, load_tool
from tests.data.trees import make_camvid_tree

from .test_semantic_train_net import _copypaste_metrics, _train_and_evaluate

pytestmark = pytest.mark.slow


def test_train_net_trains_on_camvid_clips_and_evaluates(tmp_path):
    _, source = make_camvid_tree(str(tmp_path / "data"))
    load_tool("prepare_camvid").main([source, str(tmp_path / "data" / "CamVid"), "--max-offset", "3"])
    log = _train_and_evaluate(tmp_path / "data", tmp_path / "out", [
        "DATASETS.TRAIN", "('camvid_sem_seg_train',)", "DATASETS.TEST", "('camvid_sem_seg_val',)",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "11", "MODEL.SEM_SEG_HEAD.IGNORE_VALUE", "11", "INPUT.CROP.SIZE", "(32, 40)",
        "INPUT.CLIP_LENGTH", "3", "INPUT.CLIP_FRAME_STEP", "3", "INPUT.MIN_SIZE_TEST", "36", "INPUT.MAX_SIZE_TEST", "48"],
        config=TOY_VIDEO_CONFIG)
    metrics = _copypaste_metrics(log)
    assert 0.0 <= metrics["mIoU"] <= 100.0 and not math.isnan(metrics["mIoU"]), metrics
    assert "CCNetVideoSegmentor" in log and "Evaluation results for camvid_sem_seg_val" in log
