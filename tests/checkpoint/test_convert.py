"""ImageNet ResNet converters: converted weights make Detectron2's ResNets compute exactly what the
source networks compute.

References are independent of Detectron2: torchvision's ResNet-50 itself, and a network in the MIT
CSAIL layout (deep stem ``conv1..3``/``bn1..3``, torchvision bottlenecks) built here. Every checkpoint
goes through the written ``.pkl`` and ``DetectionCheckpointer``, as in training. BN statistics are
random so that every normalisation is exercised.
"""
import hashlib
import pickle

import pytest
import torch
from torch import nn
from torchvision.models import resnet50
from torchvision.models.resnet import Bottleneck

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone, build_model
from detectron2.modeling.backbone.resnet import build_resnet_backbone

from ccnet_d2 import add_ccnet_config
from ccnet_d2.checkpoint import (
    REQUIRED_CONFIG,
    convert_resnet_state_dict,
    infer_resnet_depth,
    load_source_state_dict,
    save_detectron2_checkpoint,
)
from ccnet_d2.modeling.backbone import build_dilated_resnet_backbone
from tests.common import build_cfg, config_path, load_tool

# Configs meant for ImageNet weights converted from the MIT layout (all real semantic configs).
SEMANTIC_CONFIGS = [
    "Cityscapes-SemanticSegmentation/ccnet_R_101_os8_r2_769x769_60k_bs8_cityscapes.yaml",
    "Cityscapes-SemanticSegmentation/ccnet_R_50_os8_r2_ohem_769x769_60k_bs8_cityscapes.yaml",
    "ADE20K-SemanticSegmentation/ccnet_R_101_os8_r2_512x512_160k_bs16_ade20k.yaml",
    "LIP-HumanParsing/ccnet_R_101_os8_r2_ccl_473x473_115k_bs40_lip.yaml",
    "PascalVOC-SemanticSegmentation/ccnet_R_101_os8_r2_512x512_40k_bs16_voc12aug.yaml",
]
IMAGE = (1, 3, 61, 83)  # odd sizes: every stride-2 layer rounds


def _randomise_batch_norm(model, seed):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.num_batches_tracked.fill_(1234)
    return model.eval()


def _torchvision_resnet50(dilated=False):
    """torchvision's ResNet-50; ``dilated``: output stride 8 as in CCNet, where every block of layer3/4
    uses dilation 2/4 (torchvision keeps the previous dilation in each stage's first block)."""
    torch.manual_seed(0)
    net = resnet50(weights=None, replace_stride_with_dilation=[False, dilated, dilated])
    if dilated:
        for stage, dilation in ((net.layer3, 2), (net.layer4, 4)):
            stage[0].conv2.dilation, stage[0].conv2.padding = (dilation, dilation), (dilation, dilation)
    return _randomise_batch_norm(net, seed=1)


def _mit_layout_resnet50(dilated=False):
    """The MIT CSAIL ImageNet ResNet layout: a deep stem (3x3 convs 3->64 stride 2, 64->64, 64->128,
    each + BN + ReLU, then 3x3/2 max pool) named conv1..3/bn1..3, and torchvision-style stages."""
    net = _torchvision_resnet50(dilated)
    net.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
    net.conv2, net.bn2 = nn.Conv2d(64, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64)
    net.conv3, net.bn3 = nn.Conv2d(64, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128)
    net.inplanes, net.dilation = 128, 1
    net.layer1 = net._make_layer(Bottleneck, 64, 3)  # its first block now takes the stem's 128 channels
    return _randomise_batch_norm(net, seed=2)


def _reference_features(net, x, deep_stem):
    x = net.relu(net.bn1(net.conv1(x)))
    if deep_stem:
        x = net.relu(net.bn3(net.conv3(net.relu(net.bn2(net.conv2(x))))))
    features = {"stem": net.maxpool(x)}
    for index in range(1, 5):
        x = getattr(net, f"layer{index}")(features["stem"] if index == 1 else x)
        features[f"res{index + 1}"] = x
    return features


def _d2_cfg(source_format, dilated):
    cfg = get_cfg()
    add_ccnet_config(cfg)
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    r = cfg.MODEL.RESNETS
    r.DEPTH, r.NORM, r.OUT_FEATURES = 50, "BN", ["res2", "res3", "res4", "res5"]
    r.STEM_TYPE = REQUIRED_CONFIG[source_format]["MODEL.RESNETS.STEM_TYPE"]
    r.STEM_OUT_CHANNELS = REQUIRED_CONFIG[source_format]["MODEL.RESNETS.STEM_OUT_CHANNELS"]
    r.STRIDE_IN_1X1 = REQUIRED_CONFIG[source_format]["MODEL.RESNETS.STRIDE_IN_1X1"]
    r.RES4_DILATION, r.RES5_DILATION, r.RES5_MULTI_GRID = (2, 4, [1, 1, 1]) if dilated else (1, 1, [1, 1, 1])
    return cfg


def _convert_and_save(net, source_format, path):
    result = convert_resnet_state_dict(net.state_dict(), source_format)
    assert not result.unmapped
    save_detectron2_checkpoint(result.model, str(path), author="test")
    return result


def _load(model, path):
    DetectionCheckpointer(model).load(str(path))
    return model.eval()


def _assert_all_loaded(model_state, converted, prefix=""):
    """Every converted tensor is in the model under ``prefix`` + its name, with equal values, and every
    backbone tensor of the model came from the checkpoint (BN batch counters aside)."""
    for name, value in converted.items():
        assert torch.equal(model_state[prefix + name], value), name
    backbone = {k[len(prefix):] for k in model_state if k.startswith(prefix) and not k.endswith("num_batches_tracked")}
    assert backbone == set(converted)


@pytest.mark.parametrize("source_format,dilated", [("torchvision", False), ("torchvision", True), ("mit", True)])
def test_converted_backbone_computes_what_the_source_computes(tmp_path, source_format, dilated):
    net = _mit_layout_resnet50(dilated) if source_format == "mit" else _torchvision_resnet50(dilated)
    result = _convert_and_save(net, source_format, tmp_path / "weights.pkl")
    builder = build_dilated_resnet_backbone if dilated else build_resnet_backbone
    model = _load(builder(_d2_cfg(source_format, dilated), ShapeSpec(channels=3)), tmp_path / "weights.pkl")
    _assert_all_loaded(model.state_dict(), result.model)

    x = torch.randn(*IMAGE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = _reference_features(net, x, deep_stem=source_format == "mit")
        actual = model(x)
        stem = model.stem(x)
    assert actual["res5"].shape[-2:] == ((8, 11) if dilated else (2, 3))
    torch.testing.assert_close(stem, expected["stem"], rtol=0, atol=0)
    for name in ("res2", "res3", "res4", "res5"):
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0, msg=name)


def test_stride_in_1x1_true_does_not_reproduce_torchvision(tmp_path):
    """Negative control: the same weights with Detectron2's default stride placement differ."""
    net = _torchvision_resnet50()
    _convert_and_save(net, "torchvision", tmp_path / "weights.pkl")
    cfg = _d2_cfg("torchvision", dilated=False)
    cfg.MODEL.RESNETS.STRIDE_IN_1X1 = True
    model = _load(build_resnet_backbone(cfg, ShapeSpec(channels=3)), tmp_path / "weights.pkl")
    x = torch.randn(*IMAGE)
    with torch.no_grad():
        assert not torch.allclose(model(x)["res3"], _reference_features(net, x, False)["res3"], atol=1e-3)


def test_mit_checkpoint_loads_into_the_ccnet_semantic_model(tmp_path):
    """The real R-50 Cityscapes config: the backbone (deep stem included) is fully loaded through
    Detectron2's suffix matching, and the head keeps its own initialisation."""
    _convert_and_save(_mit_layout_resnet50(dilated=True), "mit", tmp_path / "weights.pkl")
    cfg = build_cfg(config_path(SEMANTIC_CONFIGS[1]), "MODEL.DEVICE", "cpu", "MODEL.RESNETS.NORM", "BN",
                    "MODEL.SEM_SEG_HEAD.NORM", "BN")
    torch.manual_seed(0)
    model = build_model(cfg)
    head_before = {k: v.clone() for k, v in model.sem_seg_head.state_dict().items()}
    _load(model, tmp_path / "weights.pkl")
    with open(tmp_path / "weights.pkl", "rb") as f:
        converted = {k: torch.from_numpy(v) for k, v in pickle.load(f)["model"].items()}
    _assert_all_loaded(model.state_dict(), converted, prefix="backbone.")
    for name, value in model.sem_seg_head.state_dict().items():
        assert torch.equal(value, head_before[name]), name


def test_torchvision_checkpoint_loads_into_the_rcca_fpn_backbone(tmp_path):
    """The COCO RCCA config's backbone: the same file lands under ``bottom_up.`` in the FPN, and the
    RCCA block's names match nothing in it."""
    result = _convert_and_save(_torchvision_resnet50(), "torchvision", tmp_path / "weights.pkl")
    cfg = build_cfg(config_path("COCO-InstanceSegmentation/mask_rcnn_rcca_R_50_FPN_1x_coco.yaml"),
                    "MODEL.DEVICE", "cpu")
    for key, value in REQUIRED_CONFIG["torchvision"].items():
        if key.startswith("MODEL.RESNETS."):
            setattr(cfg.MODEL.RESNETS, key.rsplit(".", 1)[1], value)
    backbone = _load(build_backbone(cfg), tmp_path / "weights.pkl")
    state = backbone.state_dict()
    for name, value in result.model.items():
        assert torch.equal(state["bottom_up." + name], value), name


def test_dropped_and_unmapped_keys_are_reported():
    state = _torchvision_resnet50().state_dict()
    state["layer2.1.se.fc1.weight"] = torch.zeros(4, 4)  # a key no rule knows
    result = convert_resnet_state_dict(state, "torchvision")
    assert result.unmapped == ["layer2.1.se.fc1.weight"]
    assert {"fc.weight", "fc.bias", "bn1.num_batches_tracked", "layer1.0.downsample.1.num_batches_tracked"} \
        <= set(result.dropped)
    assert not any(k.startswith("fc.") or k.endswith("num_batches_tracked") for k in result.model)
    assert result.renamed["layer1.0.downsample.1.running_var"] == "res2.0.shortcut.norm.running_var"
    assert result.renamed["layer4.2.bn3.weight"] == "res5.2.conv3.norm.weight"
    assert result.renamed["bn1.bias"] == "stem.conv1.norm.bias"
    assert "1 unmapped" in result.summary() and "layer2.1.se.fc1.weight" in result.summary()


def test_the_wrong_layout_is_refused():
    with pytest.raises(ValueError, match="use source format 'mit'"):
        convert_resnet_state_dict(_mit_layout_resnet50().state_dict(), "torchvision")
    with pytest.raises(ValueError, match="use source format 'torchvision'"):
        convert_resnet_state_dict(_torchvision_resnet50().state_dict(), "mit")
    with pytest.raises(ValueError, match="must be one of"):
        convert_resnet_state_dict({}, "caffe2")


@pytest.mark.parametrize("blocks,bottleneck,depth", [
    ((2, 2, 2, 2), False, 18), ((3, 4, 6, 3), False, 34), ((3, 4, 6, 3), True, 50),
    ((3, 4, 23, 3), True, 101), ((3, 8, 36, 3), True, 152)])
def test_depth_is_inferred_from_the_block_counts(blocks, bottleneck, depth):
    convs = ("conv1", "conv2", "conv3") if bottleneck else ("conv1", "conv2")
    keys = {f"layer{s + 1}.{b}.{c}.weight": None for s, n in enumerate(blocks) for b in range(n) for c in convs}
    assert infer_resnet_depth(keys) == depth
    with pytest.raises(ValueError, match="not a standard ResNet"):
        infer_resnet_depth({k: v for k, v in keys.items() if not k.startswith("layer4.")})


@pytest.mark.parametrize("config", SEMANTIC_CONFIGS)
def test_semantic_configs_match_the_mit_weights(config):
    """The real semantic configs are set up for MIT deep-stem weights (STRIDE_IN_1X1, stem, RGB, mean/std)."""
    cfg = build_cfg(config_path(config))
    for key, value in REQUIRED_CONFIG["mit"].items():
        actual = cfg
        for part in key.split("."):
            actual = getattr(actual, part)
        assert (list(actual) if isinstance(value, list) else actual) == value, key


def test_cli_converts_a_data_parallel_checkpoint(tmp_path, capsys):
    net = _torchvision_resnet50()
    torch.save({"state_dict": {"module." + k: v for k, v in net.state_dict().items()}}, tmp_path / "in.pth")
    assert set(load_source_state_dict(str(tmp_path / "in.pth"))) == set(net.state_dict())
    tool = load_tool("convert_pretrained")
    output = tmp_path / "out.pkl"
    assert tool.main(["--format", "torchvision", "--input", str(tmp_path / "in.pth"), "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert hashlib.sha256(output.read_bytes()).hexdigest() in printed
    assert "ResNet-50" in printed and "MODEL.RESNETS.STRIDE_IN_1X1 False" in printed
    with open(output, "rb") as f:
        checkpoint = pickle.load(f)
    assert checkpoint["matching_heuristics"] is True and "stem.conv1.weight" in checkpoint["model"]

    state = dict(net.state_dict(), **{"layer1.0.extra.weight": torch.zeros(1)})
    torch.save(state, tmp_path / "extra.pth")
    argv = ["--format", "torchvision", "--input", str(tmp_path / "extra.pth"), "--output", str(tmp_path / "x.pkl")]
    assert tool.main(argv) == 1 and not (tmp_path / "x.pkl").exists()
    assert "layer1.0.extra.weight" in capsys.readouterr().out
    assert tool.main(argv + ["--allow-unmapped"]) == 0 and (tmp_path / "x.pkl").exists()
