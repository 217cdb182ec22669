"""The ResNet(+RCCA)-FPN backbone of Mask R-CNN + RCCA: placement, shapes, identity at init, FREEZE_AT
and checkpoint loading. A quarter-width R-50 keeps every test well under a second."""
import logging
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone
from detectron2.modeling.backbone.fpn import build_resnet_fpn_backbone
from detectron2.structures import ImageList

from ccnet_d2 import add_ccnet_config
from ccnet_d2.layers import RCCA
from tests.layers.reference import loop_criss_cross


def small_cfg(**ccnet):
    cfg = get_cfg()
    add_ccnet_config(cfg)
    cfg.MODEL.BACKBONE.NAME = "build_resnet_rcca_fpn_backbone"
    cfg.MODEL.RESNETS.DEPTH = 50
    cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 4
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = 16
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 32
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.OUT_CHANNELS = 16
    cfg.MODEL.CCNET.BACKEND = "torch"
    for key, value in ccnet.items():
        cfg.MODEL.CCNET[key] = value
    return cfg


def build(cfg, seed=0):
    torch.manual_seed(seed)
    return build_backbone(cfg).eval()


def set_gamma(backbone, value):
    for name, p in backbone.named_parameters():
        if name.endswith("rcca.attention.gamma"):
            p.data.fill_(value)


def test_block_in_res4_before_its_last_block_by_default():
    stage = build(small_cfg()).bottom_up.res4
    names = [name for name, _ in stage.named_children()]
    assert names == ["0", "1", "2", "3", "4", "rcca", "5"]  # R-50 res4 has 6 blocks; old names kept
    block = stage.rcca
    assert isinstance(block, RCCA) and block.stride == 1
    assert block.in_channels == block.out_channels == 128
    assert block.recurrence == 2 and block.attention.query_conv.out_channels == 128 // 8


def test_configured_stages_and_position():
    bottom_up = build(small_cfg(BACKBONE_STAGES=["res3", "res5"], BACKBONE_POSITION=0, RECURRENCE=3,
                                REDUCTION=4)).bottom_up
    assert [n for n, _ in bottom_up.res3.named_children()][0] == "rcca"
    assert [n for n, _ in bottom_up.res5.named_children()][0] == "rcca"
    assert not any(n == "rcca" for n, _ in bottom_up.res4.named_children())
    assert bottom_up.res5.rcca.recurrence == 3
    # At position 0 the block sees the previous stage's output (res4: 128 channels, res5: 256).
    assert bottom_up.res5.rcca.in_channels == 128
    assert bottom_up.res5.rcca.attention.query_conv.out_channels == 128 // 4
    # The stage list used by ResNet.forward is the same object as the attribute.
    assert bottom_up.stages[3] is bottom_up.res5
    shapes = {k: v.shape for k, v in bottom_up(torch.randn(1, 3, 64, 64)).items()}
    assert shapes["res5"] == (1, 256, 2, 2)


def test_block_appended_after_the_last_block():
    stage = build(small_cfg(BACKBONE_STAGES=["res3"], BACKBONE_POSITION=4)).bottom_up.res3
    assert [n for n, _ in stage.named_children()] == ["0", "1", "2", "3", "rcca"]
    assert stage.rcca.in_channels == 64


def test_bad_stage_or_position_is_a_clear_error():
    with pytest.raises(ValueError, match="res7"):
        build(small_cfg(BACKBONE_STAGES=["res7"]))
    with pytest.raises(ValueError, match="BACKBONE_POSITION=9"):
        build(small_cfg(BACKBONE_POSITION=9))


@pytest.mark.parametrize("height,width", [(97, 131), (64, 45)])
def test_fpn_shapes_and_strides_on_odd_sizes(height, width):
    backbone = build(small_cfg())
    padded = ImageList.from_tensors([torch.randn(3, height, width)], backbone.size_divisibility).tensor
    features = backbone(padded)
    shapes = backbone.output_shape()
    assert list(features) == ["p2", "p3", "p4", "p5", "p6"]
    assert {k: s.stride for k, s in shapes.items()} == {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}
    ph, pw = padded.shape[-2:]
    assert ph % 32 == 0 and pw % 32 == 0
    for name, feature in features.items():
        stride = shapes[name].stride
        assert feature.shape == (1, 16, -(-ph // stride), -(-pw // stride)), name


def test_equals_plain_fpn_at_init_and_differs_with_gamma():
    cfg = small_cfg()
    rcca = build(cfg)
    plain_cfg = cfg.clone()
    plain_cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    plain = build_resnet_fpn_backbone(plain_cfg, ShapeSpec(channels=3)).eval()
    result = rcca.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == sorted(k for k in rcca.state_dict() if ".rcca." in k)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        reference = plain(x)
        out = rcca(x)
        for name in reference:
            torch.testing.assert_close(out[name], reference[name], rtol=0, atol=0)
        set_gamma(rcca, 0.7)
        changed = rcca(x)
    # p6 and p5 sit above res5 and all levels mix through the top-down path: every level changes.
    for name in reference:
        assert (changed[name] - reference[name]).abs().max() > 1e-4, name


def test_block_matches_the_loop_reference_with_shared_weights():
    torch.manual_seed(0)
    block = RCCA(6, recurrence=2, reduction=2, backend="torch").double()
    block.attention.gamma.data.fill_(0.8)
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    att = block.attention
    expected = x
    for _ in range(2):  # the same weights on both loops
        out, _ = loop_criss_cross(att.query_conv(expected), att.key_conv(expected), att.value_conv(expected))
        expected = 0.8 * out + expected
    torch.testing.assert_close(block(x), expected)


def test_freeze_at():
    frozen = build(small_cfg(), seed=0)  # default FREEZE_AT = 2: stem and res2
    assert all(p.requires_grad for p in frozen.bottom_up.res4.rcca.parameters())
    assert not any(p.requires_grad for p in frozen.bottom_up.res2.parameters())
    assert all(p.requires_grad for p in frozen.bottom_up.res4.parameters())

    cfg = small_cfg()
    cfg.MODEL.BACKBONE.FREEZE_AT = 4  # stem, res2, res3, res4: the RCCA block in res4 too
    frozen = build(cfg)
    assert not any(p.requires_grad for p in frozen.bottom_up.res4.parameters())
    assert all(p.requires_grad for p in frozen.bottom_up.res5.parameters())


def test_plain_checkpoint_reports_rcca_weights_as_new(tmp_path, caplog):
    """An ImageNet-style checkpoint (ResNet keys only, matched by Detectron2's suffix heuristics as for
    MSRA/torchvision pickles) loads; the RCCA weights are reported as not found and keep their init."""
    cfg = small_cfg()
    model = nn.Module()
    model.backbone = build(cfg, seed=1)
    plain_cfg = cfg.clone()
    plain_cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    torch.manual_seed(2)
    plain_resnet = build_resnet_fpn_backbone(plain_cfg, ShapeSpec(channels=3)).bottom_up
    weights = {k: v.numpy() for k, v in plain_resnet.state_dict().items()}
    rcca_before = {k: v.clone() for k, v in model.state_dict().items() if ".rcca." in k}
    path = tmp_path / "imagenet_like.pkl"
    with open(path, "wb") as f:  # a .pkl without "__author__" is read as an MSRA/Caffe2 ImageNet file
        pickle.dump(weights, f)
    with caplog.at_level(logging.WARNING):
        DetectionCheckpointer(model).load(str(path))
    state = model.state_dict()
    conv_weights = [k for k in plain_resnet.state_dict() if k.endswith("weight") and ".norm." not in k]
    assert len(conv_weights) == 53  # stem + 16 blocks x 3 convs + 4 shortcuts
    for key in conv_weights:
        np.testing.assert_array_equal(state["backbone.bottom_up." + key].numpy(),
                                      plain_resnet.state_dict()[key].numpy())
    for key, value in rcca_before.items():
        torch.testing.assert_close(state[key], value)
    assert "backbone.bottom_up.res4.rcca.attention" in caplog.text  # "not found in checkpoint"


def test_backbone_block_refuses_zero_recurrence():
    with pytest.raises(ValueError, match="RCCA: recurrence must be an integer >= 1"):
        RCCA(64, recurrence=0)
