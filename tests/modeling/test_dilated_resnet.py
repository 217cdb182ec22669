"""The dilated ResNet (Detectron2's DeepLab builder behind config checks): output stride, dilations,
deep stem, and exact agreement with Detectron2's plain ResNet.

The strongest check uses a property of dilation: with the stride in the 1x1 convs (STRIDE_IN_1X1),
a network whose res4/res5 keep stride 1 with dilations 2/4 computes, at every 2nd/4th pixel, exactly
what the undilated network computes at stride 16/32 with the same weights. Detectron2's own ResNet
is the reference.
"""
import pytest
import torch

from detectron2.config import get_cfg
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling.backbone.resnet import build_resnet_backbone
from detectron2.projects.deeplab.resnet import DeepLabStem

from ccnet_d2 import add_ccnet_config
from ccnet_d2.modeling.backbone import build_dilated_resnet_backbone


def _cfg(**resnets):
    """A narrow ResNet-50 (1/8 of the channels) so that the tests stay fast."""
    cfg = get_cfg()
    add_ccnet_config(cfg)
    r = cfg.MODEL.RESNETS
    r.DEPTH, r.NORM, r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS, r.WIDTH_PER_GROUP = 50, "BN", 16, 32, 8
    r.STEM_TYPE, r.RES4_DILATION, r.RES5_DILATION, r.RES5_MULTI_GRID = "basic", 2, 4, [1, 1, 1]
    r.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    for key, value in resnets.items():
        setattr(r, key, value)
    return cfg


def _build(cfg, builder=build_dilated_resnet_backbone):
    torch.manual_seed(0)
    return builder(cfg, ShapeSpec(channels=3)).eval()


def _randomise_batch_norm(model):
    """Non-trivial running statistics, so that the comparisons exercise every normalisation."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def test_output_stride_8_and_dilations():
    model = _build(_cfg(RES5_MULTI_GRID=[1, 2, 4]))
    shapes = model.output_shape()
    assert {k: v.stride for k, v in shapes.items()} == {"res2": 4, "res3": 8, "res4": 8, "res5": 8}
    assert [b.conv2.dilation for b in model.res4] == [(2, 2)] * 6
    assert [b.conv2.dilation for b in model.res5] == [(4, 4), (8, 8), (16, 16)]  # 4 x multi-grid
    for block in list(model.res4) + list(model.res5):
        assert block.stride == 1 and block.conv2.padding == block.conv2.dilation
    features = model(torch.randn(1, 3, 67, 45))
    assert features["res5"].shape[-2:] == features["res4"].shape[-2:] == (9, 6)  # ceil(67/8), ceil(45/8)
    assert features["res5"].shape[1] == shapes["res5"].channels


def test_output_stride_8_equals_detectron2_resnet_sampled_every_4th_pixel():
    ours = _build(_cfg(STRIDE_IN_1X1=True))
    reference = _build(_cfg(STRIDE_IN_1X1=True, RES4_DILATION=1, RES5_DILATION=1), build_resnet_backbone)
    _randomise_batch_norm(reference)
    ours.load_state_dict(reference.state_dict())  # same weights; only strides/dilations differ
    x = torch.randn(2, 3, 75, 61)
    with torch.no_grad():
        dilated, plain = ours(x), reference(x)
    assert reference.output_shape()["res5"].stride == 32
    assert torch.allclose(dilated["res3"], plain["res3"], atol=1e-5)
    assert torch.allclose(dilated["res4"][..., ::2, ::2], plain["res4"], atol=1e-4)
    assert torch.allclose(dilated["res5"][..., ::4, ::4], plain["res5"], atol=1e-4)
    assert dilated["res5"].shape[-2:] == (10, 8) and plain["res5"].shape[-2:] == (3, 2)


def test_output_stride_16_equals_detectron2_res5_dilation_2():
    """Where Detectron2 itself supports it (RES5_DILATION 2), the two builders agree exactly."""
    ours = _build(_cfg(RES4_DILATION=1, RES5_DILATION=2))
    reference_cfg = _cfg(RES5_DILATION=2)
    reference = _build(reference_cfg, build_resnet_backbone)
    _randomise_batch_norm(reference)
    assert ours.state_dict().keys() == reference.state_dict().keys()
    ours.load_state_dict(reference.state_dict())
    assert {k: v.stride for k, v in ours.output_shape().items()} == \
        {k: v.stride for k, v in reference.output_shape().items()}
    x = torch.randn(1, 3, 53, 70)
    with torch.no_grad():
        a, b = ours(x), reference(x)
    for name in ("res2", "res3", "res4", "res5"):
        assert torch.allclose(a[name], b[name], atol=1e-5), name


def test_deep_stem_and_freezing():
    cfg = _cfg(STEM_TYPE="deeplab", STEM_OUT_CHANNELS=128)
    cfg.MODEL.BACKBONE.FREEZE_AT = 2
    model = _build(cfg)
    assert isinstance(model.stem, DeepLabStem)
    convs = [model.stem.conv1, model.stem.conv2, model.stem.conv3]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (3, 64, (3, 3), (2, 2)), (64, 64, (3, 3), (1, 1)), (64, 128, (3, 3), (1, 1))]
    assert model.res2[0].in_channels == 128
    # FREEZE_AT 2: the deep stem and res2 are frozen.
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert not any(p.requires_grad for p in model.res2.parameters())
    assert all(p.requires_grad for p in model.res3.parameters())
    assert isinstance(model.stem.conv1.norm, FrozenBatchNorm2d)
    assert model(torch.randn(1, 3, 33, 41))["res5"].shape[-2:] == (5, 6)


@pytest.mark.parametrize("overrides, message", [
    ({"RES4_DILATION": 2, "RES5_DILATION": 2}, "output stride 8"),
    ({"STEM_TYPE": "wide"}, "STEM_TYPE"),
    ({"RES5_MULTI_GRID": [1, 2]}, r"RES5_MULTI_GRID needs one positive integer per res5 block \(3\)"),
    ({"DEPTH": 18, "RES2_OUT_CHANNELS": 64}, r"DEPTH must be one of \(50, 101, 152\), got 18"),
    ({"DEFORM_ON_PER_STAGE": [False, True, False, False]}, "DEFORM_ON_PER_STAGE must be all False"),
])
def test_invalid_configurations_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        _build(_cfg(**overrides))


def test_ceil_mode_stem_pool_gives_the_official_grid():
    """The official network's stem max-pool rounds up: even sizes gain a row/column of cells (1024x2048 ->
    129x257 at stride 8 there, 128x256 with the floor), odd sizes such as 769 agree (97)."""
    floor = _build(_cfg(STEM_TYPE="deeplab", STEM_OUT_CHANNELS=16))
    ceil = _build(_cfg(STEM_TYPE="deeplab", STEM_OUT_CHANNELS=16, STEM_POOL_CEIL_MODE=True))
    ceil.load_state_dict(floor.state_dict())
    with torch.no_grad():
        for size, cells_floor, cells_ceil in (((64, 96), (8, 12), (9, 13)), ((65, 97), (9, 13), (9, 13))):
            x = torch.randn(1, 3, *size)
            assert floor(x)["res5"].shape[-2:] == cells_floor
            assert ceil(x)["res5"].shape[-2:] == cells_ceil
            pooled = torch.nn.functional.max_pool2d(
                torch.relu(floor.stem.conv3(torch.relu(floor.stem.conv2(torch.relu(floor.stem.conv1(x)))))),
                kernel_size=3, stride=2, padding=1, ceil_mode=True)
            torch.testing.assert_close(ceil.stem(x), pooled)
    with pytest.raises(ValueError, match="STEM_POOL_CEIL_MODE needs STEM_TYPE 'deeplab'"):
        _build(_cfg(STEM_POOL_CEIL_MODE=True))


def test_contract_dilation_halves_the_first_dilated_block_only():
    model = _build(_cfg(CONTRACT_DILATION=True, RES5_MULTI_GRID=[1, 1, 1]))
    assert [b.conv2.dilation for b in model.res4] == [(1, 1)] + [(2, 2)] * 5
    assert [b.conv2.dilation for b in model.res5] == [(2, 2), (4, 4), (4, 4)]
    assert all(b.conv2.padding == b.conv2.dilation for b in list(model.res4) + list(model.res5))
    assert [b.conv2.dilation for b in model.res3] == [(1, 1)] * 4
    assert model(torch.randn(1, 3, 67, 45))["res5"].shape[-2:] == (9, 6)
