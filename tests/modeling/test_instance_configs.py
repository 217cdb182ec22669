"""Every instance-segmentation config of the repository builds and trains one step on CPU, and the
RCCA ones carry the block where their file name says."""
import os

import pytest
import torch

from detectron2.engine import DefaultTrainer
from detectron2.modeling import GeneralizedRCNNWithTTA, build_model
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage

from ccnet_d2 import CrissCrossAttention
from ccnet_d2.engine import Trainer
from tests.common import INSTANCE_CONFIG_FOLDERS, TOY_INSTANCE_CONFIG, build_cfg, find_configs

CONFIGS = find_configs(INSTANCE_CONFIG_FOLDERS)


def _cfg(path):
    cfg = build_cfg(path)
    cfg.MODEL.WEIGHTS = ""  # no downloads: random initialisation
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.NORM = "BN" if cfg.MODEL.RESNETS.NORM == "SyncBN" else cfg.MODEL.RESNETS.NORM
    return cfg


def _instances(h, w, num_classes):
    inst = Instances((h, w))
    inst.gt_boxes = Boxes(torch.tensor([[10.0, 12.0, 60.0, 50.0], [30.0, 5.0, 90.0, 70.0]]))
    inst.gt_classes = torch.tensor([0, num_classes - 1])
    masks = torch.zeros(2, h, w, dtype=torch.bool)
    masks[0, 12:50, 10:60] = True
    masks[1, 5:70, 30:90] = True
    inst.gt_masks = BitMasks(masks)
    return inst


def test_every_instance_config_is_found():
    names = {os.path.basename(p) for p in CONFIGS}
    for depth in ("50", "101"):
        for schedule in ("1x", "3x"):
            assert f"mask_rcnn_R_{depth}_FPN_{schedule}_coco.yaml" in names
            assert f"mask_rcnn_rcca_R_{depth}_FPN_{schedule}_coco.yaml" in names
    assert any("cityscapes" in n and "rcca" in n for n in names)


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_builds_and_trains_one_step(path):
    torch.manual_seed(0)
    cfg = _cfg(path)
    model = build_model(cfg)
    attention = [n for n, m in model.named_modules() if isinstance(m, CrissCrossAttention)]
    if "rcca" in os.path.basename(path):
        assert attention and all(".rcca." in n for n in attention), attention
        assert all(n.split(".")[2] in cfg.MODEL.CCNET.BACKBONE_STAGES for n in attention), attention
    else:
        assert not attention
    model.train()
    h, w = 97, 131  # odd, not a multiple of the FPN's stride 32
    batch = [{"image": torch.randint(0, 255, (3, h, w), dtype=torch.uint8).float(), "height": h, "width": w,
              "instances": _instances(h, w, cfg.MODEL.ROI_HEADS.NUM_CLASSES)}]
    with EventStorage():
        losses = model(batch)
    assert {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)


@pytest.mark.parametrize("enabled", [False, True])
def test_trainer_evaluates_rcnn_with_test_time_augmentation_when_enabled(monkeypatch, enabled):
    """TEST.AUG.ENABLED wraps an R-CNN in Detectron2's GeneralizedRCNNWithTTA (sizes and flip of TEST.AUG),
    which then predicts at the input's size; disabled, the model is evaluated as it is."""
    cfg = _cfg(TOY_INSTANCE_CONFIG)
    cfg.TEST.AUG.ENABLED, cfg.TEST.AUG.MIN_SIZES, cfg.TEST.AUG.MAX_SIZE = enabled, (96, 160), 200
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    evaluated = []
    monkeypatch.setattr(DefaultTrainer, "test",
                        classmethod(lambda cls, cfg, model, evaluators=None: evaluated.append(model) or {}))
    Trainer.test(cfg, model)
    if not enabled:
        assert evaluated == [model]
        return
    (tta,) = evaluated
    assert isinstance(tta, GeneralizedRCNNWithTTA) and tta.model is model
    with torch.no_grad():
        (result,) = tta([{"image": torch.randint(0, 256, (3, 120, 136)).float(), "height": 90, "width": 102}])
    assert result["instances"].image_size == (90, 102)
