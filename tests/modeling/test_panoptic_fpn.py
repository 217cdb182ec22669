"""Panoptic FPN + RCCA: the CCNet stuff branch against its definition (Detectron2's SemSegFPNHead with the
CCNet context block before the classifier) and its reach (a pixel sees its whole row and column, which the
plain branch's convolutions do not), then every panoptic config: it builds, carries RCCA where its name
says, trains one step and predicts panoptic segments."""
import os

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model
from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead
from detectron2.utils.events import EventStorage

from ccnet_d2 import CrissCrossAttention, RCCAHeadBlock
from ccnet_d2.export.random_weights import set_attention_gamma
from ccnet_d2.modeling.heads import CCNetSemSegFPNHead
from tests.common import PANOPTIC_CONFIG_FOLDERS, TOY_PANOPTIC_CONFIG, build_cfg, find_configs
from tests.modeling.test_instance_configs import _instances as two_instances

CONFIGS = find_configs(PANOPTIC_CONFIG_FOLDERS)
SHAPES = {"p2": ShapeSpec(channels=8, stride=4), "p3": ShapeSpec(channels=8, stride=8),
          "p4": ShapeSpec(channels=8, stride=16)}


def _heads(norm="GN", seed=0):
    """A CCNetSemSegFPNHead and a SemSegFPNHead holding the same scale-head and classifier weights."""
    torch.manual_seed(seed)
    common = dict(num_classes=5, conv_dims=32, common_stride=4, norm=norm, ignore_value=255)
    context = RCCAHeadBlock(32, out_channels=32, inner_channels=32, recurrence=2, reduction=4, norm=norm,
                            backend="torch")
    ccnet = CCNetSemSegFPNHead(SHAPES, context=context, **common).eval()
    plain = SemSegFPNHead(SHAPES, **common).eval()
    plain.load_state_dict({k: v for k, v in ccnet.state_dict().items() if not k.startswith("context.")})
    set_attention_gamma(ccnet, 1.0)  # zero at initialisation: the attention would add nothing yet
    return ccnet, plain


def _features(seed=1):
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(1, 8, 64 // spec.stride, 96 // spec.stride, generator=generator)
            for name, spec in SHAPES.items()}


def test_stuff_branch_is_the_fpn_branch_with_the_ccnet_block():
    ccnet, plain = _heads()
    features = _features()
    with torch.no_grad():
        merged = sum(plain.scale_heads[i](features[f]) for i, f in enumerate(plain.in_features))
        expected = plain.predictor(ccnet.context(merged))
        logits, _ = ccnet(features)
    assert logits.shape == (1, 5, 64, 96)  # upsampled to the input like the parent's
    up = torch.nn.functional.interpolate(expected, scale_factor=4, mode="bilinear", align_corners=False)
    torch.testing.assert_close(logits, up, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(plain(features)[0], logits, atol=1e-3)  # the block changes the answer


def test_a_pixel_sees_its_row_through_the_attention():
    """A change of p2 at the far left of row 8 moves the stuff logits at the far right of that row with the
    CCNet branch; the plain branch's 3x3 convs reach no further than a few pixels (negative control). No
    norm layers: a group norm's statistics would spread any change over the whole map."""
    ccnet, plain = _heads(norm="")
    features = _features()
    changed = {k: v.clone() for k, v in features.items()}
    changed["p2"][0, :, 8, 0] += 10.0
    with torch.no_grad():
        for head, moves in ((ccnet, True), (plain, False)):
            before = head.layers(features)[0, :, 8, -1]
            after = head.layers(changed)[0, :, 8, -1]
            assert (not torch.allclose(before, after, atol=1e-6)) == moves, type(head).__name__


def context_block_macs(channels: int, height: int, width: int, recurrence: int = 2, reduction: int = 8) -> int:
    """Multiply-accumulates of the stuff branch's context block on a ``channels`` x H x W map (docs/MODEL_ZOO.md):
    two 3x3 convs, R loops of criss-cross attention, the 3x3 bottleneck over the concatenation."""
    pixels, qk = height * width, channels // reduction
    convs = 2 * pixels * channels * channels * 9 + pixels * 2 * channels * channels * 9
    loop = pixels * channels * (2 * qk + channels) + pixels * (height + width) * (qk + channels)
    return convs + recurrence * loop


def test_context_block_cost_is_the_documented_count():
    from ccnet_d2.export.arithmetic_rate import count_gflops

    block = RCCAHeadBlock(32, out_channels=32, inner_channels=32, recurrence=2, reduction=8, norm="GN",
                          backend="torch").eval()
    counted = count_gflops(block, (torch.rand(1, 32, 20, 28),))
    # fvcore counts the convolutions exactly and takes the einsums' count from numpy's contraction-path
    # estimate, which here differs from the exact product by 220 of 967680 multiply-accumulates per loop
    assert counted == pytest.approx(2 * context_block_macs(32, 20, 28) / 1e9, rel=1e-3)
    # the figure MODEL_ZOO.md quotes: CONVS_DIM 128 on the 1/4 map of an 800x1333 image (padded to 800x1344)
    assert round(2 * context_block_macs(128, 200, 336) / 1e9, 1) == 105.5


def test_every_panoptic_config_is_found():
    names = {os.path.basename(p) for p in CONFIGS}
    for depth in ("50", "101"):
        for schedule in ("1x", "3x"):
            assert f"panoptic_fpn_R_{depth}_{schedule}_coco.yaml" in names
            assert f"panoptic_fpn_rcca_R_{depth}_{schedule}_coco.yaml" in names
    assert {"panoptic_fpn_R_50_cityscapes.yaml", "panoptic_fpn_rcca_R_50_cityscapes.yaml",
            "panoptic_fpn_rcca_R_50_w16_toy.yaml"} <= names


def _cfg(path):
    cfg = build_cfg(path, "MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu", "MODEL.CCNET.BACKEND", "torch")
    return cfg


def _sample(h, w, cfg):
    """A training sample with two instances (those of the instance config tests) and stuff labels."""
    sem_seg = torch.randint(0, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, (h, w))
    sem_seg[:4] = 255  # some void
    return {"image": torch.randint(0, 255, (3, h, w)).float(), "height": h, "width": w,
            "instances": two_instances(h, w, cfg.MODEL.ROI_HEADS.NUM_CLASSES), "sem_seg": sem_seg}


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_builds_trains_one_step_and_predicts_panoptic_segments(path):
    torch.manual_seed(0)
    cfg = _cfg(path)
    model = build_model(cfg)
    attention = [n for n, m in model.named_modules() if isinstance(m, CrissCrossAttention)]
    if "rcca" in os.path.basename(path):
        assert isinstance(model.sem_seg_head, CCNetSemSegFPNHead)
        assert any(n.startswith("backbone.bottom_up.res4.rcca.") for n in attention), attention
        assert any(n.startswith("sem_seg_head.context.rcca.") for n in attention), attention
    else:
        assert type(model.sem_seg_head) is SemSegFPNHead and not attention
    model.train()
    h, w = 97, 131  # not a multiple of the FPN's stride 32
    with EventStorage():
        losses = model([_sample(h, w, cfg)])
    assert {"loss_sem_seg", "loss_cls", "loss_mask", "loss_rpn_cls"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.sem_seg_head.predictor.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        (output,) = model([{"image": torch.randint(0, 255, (3, h, w)).float(), "height": 50, "width": 66}])
    panoptic, segments = output["panoptic_seg"]
    assert panoptic.shape == (50, 66) and output["sem_seg"].shape[1:] == (50, 66)
    assert sorted(int(s["id"]) for s in segments) == sorted(i for i in panoptic.unique().tolist() if i != 0)


def test_test_time_augmentation_is_refused_with_the_reason():
    """Detectron2's R-CNN test-time augmentation would drop the panoptic outputs the evaluation reads."""
    from ccnet_d2.engine import Trainer

    cfg = _cfg(TOY_PANOPTIC_CONFIG)
    cfg.TEST.AUG.ENABLED = True
    with pytest.raises(ValueError, match="TEST.AUG.ENABLED.*returns instances only.*Panoptic FPN"):
        Trainer.test(cfg, build_model(cfg))
