"""Published CCNet checkpoints: the official layout converts key for key, and ccnet_d2's model with the
official config and the converted weights computes the official network's logits in float64.

The reference is ``official_ccnet.OfficialCCNet``, written from the published architecture; random
weights (norm weights of both signs, gamma != 0, random running statistics) stand in for the released
file, which cannot be downloaded here.
"""
import pytest
import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from ccnet_d2.checkpoint import INPLACE_ABN_EPS, compare_with_model, convert_ccnet_state_dict
from tests.common import build_cfg, config_path, load_tool

from .official_ccnet import OfficialCCNet, randomise

OFFICIAL_CONFIG = "Cityscapes-SemanticSegmentation/ccnet_R_101_official_r2_769x769_cityscapes.yaml"
# A narrow copy (every width / 8) of the official network and the matching ccnet_d2 overrides.
NARROW_WIDTH, NARROW_HEAD = 8, 16
NARROW = ("MODEL.RESNETS.STEM_OUT_CHANNELS", "16", "MODEL.RESNETS.RES2_OUT_CHANNELS", "32",
          "MODEL.RESNETS.WIDTH_PER_GROUP", "8", "MODEL.SEM_SEG_HEAD.CONVS_DIM", "16",
          "MODEL.SEM_SEG_HEAD.AUX_CONVS_DIM", "16")
TILE = 41  # sliding-window size of the narrow test; the official stride is ceil(2/3 tile) = 28


def _cfg(*overrides):
    return build_cfg(config_path(OFFICIAL_CONFIG), "MODEL.DEVICE", "cpu", "MODEL.RESNETS.NORM", "BN",
                     "MODEL.SEM_SEG_HEAD.NORM", "BN", *overrides)


def _narrow_pair(depth=101, seed=0):
    reference = randomise(OfficialCCNet(depth, width=NARROW_WIDTH, head_channels=NARROW_HEAD).double(), seed)
    return reference, {k: v.clone() for k, v in reference.state_dict().items()}


def _ccnet_d2_model(converted, tmp_path, *overrides):
    """The official config's model (narrow), loaded through DetectionCheckpointer from a written file."""
    path = str(tmp_path / "converted.pth")
    torch.save({"model": converted}, path)
    model = build_model(_cfg("MODEL.RESNETS.DEPTH", "101", *NARROW, *overrides)).double().eval()
    DetectionCheckpointer(model).load(path)
    return model


@pytest.mark.parametrize("depth", [50, 101])
def test_published_official_layout_converts_every_key_with_its_shape(depth):
    """Full-size state dicts with the published keys and shapes: nothing unmatched either way."""
    with torch.device("meta"):
        official = OfficialCCNet(depth).state_dict()
    result = convert_ccnet_state_dict(official, "official")
    assert not result.unmapped and result.dropped == ["dsn.0.bias"]
    model_state = build_model(_cfg("MODEL.RESNETS.DEPTH", str(depth))).state_dict()
    assert compare_with_model(result.model, model_state) == ([], [], [])


@pytest.mark.parametrize("size", [(45, 59), (48, 64)], ids=["odd", "even"])
@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_converted_official_weights_reproduce_the_official_logits_in_float64(tmp_path, size, mode):
    reference, official = _narrow_pair()
    result = convert_ccnet_state_dict(official, "official")
    model = _ccnet_d2_model(result.model, tmp_path, "TEST.SEM_SEG.MODE", mode, "TEST.SEM_SEG.CROP_SIZE",
                            f"[{TILE}, {TILE}]", "TEST.SEM_SEG.STRIDE", "[28, 28]")
    image = torch.randn(1, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference.predict_whole(image) if mode == "whole" else reference.predict_sliding(image, TILE)
        actual = model.inference_logits(image)
    assert actual.shape == expected.shape == (1, 19, *size)
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10 * scale)


def test_converted_auxiliary_head_reproduces_the_official_dsn(tmp_path):
    """The auxiliary head (training only) gets the dsn weights, its conv bias folded into the norm."""
    reference, official = _narrow_pair()
    model = _ccnet_d2_model(convert_ccnet_state_dict(official, "official").model, tmp_path)
    image = torch.randn(1, 3, 45, 59, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference.dsn(reference.backbone(image)[0])
        actual = model.sem_seg_head.aux_head(model.backbone(image)["res4"])
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10 * expected.abs().max().item())


@pytest.mark.parametrize("damage", ["swapped query and key", "w instead of |w| + eps", "dsn bias not folded"])
def test_negative_controls_break_the_equivalence(tmp_path, damage):
    reference, official = _narrow_pair()
    if damage == "swapped query and key":
        official["head.cca.query_conv.weight"], official["head.cca.key_conv.weight"] = (
            official["head.cca.key_conv.weight"], official["head.cca.query_conv.weight"])
    converted = convert_ccnet_state_dict(official, "official").model
    if damage == "w instead of |w| + eps":
        converted["sem_seg_head.rcca_block.reduce.norm.weight"] = official["head.conva.1.weight"]
    if damage == "dsn bias not folded":
        converted["sem_seg_head.aux_head.0.norm.running_mean"] = official["dsn.1.running_mean"]
    model = _ccnet_d2_model(converted, tmp_path, "TEST.SEM_SEG.MODE", "whole")
    image = torch.randn(1, 3, 45, 59, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        if damage == "dsn bias not folded":  # the auxiliary head only runs in training: compare its output
            actual = model.sem_seg_head.aux_head(model.backbone(image)["res4"])
            expected = reference.dsn(reference.backbone(image)[0])
        else:
            actual, expected = model.inference_logits(image), reference.predict_whole(image)
    assert (actual - expected).abs().max() > 1e-6


def test_inplace_abn_weights_become_abs_plus_eps_and_the_dsn_bias_moves_into_the_mean():
    _, official = _narrow_pair()
    converted = convert_ccnet_state_dict(official, "official").model
    torch.testing.assert_close(converted["backbone.stem.conv1.norm.weight"],
                               official["bn1.weight"].abs() + INPLACE_ABN_EPS, rtol=0, atol=0)
    torch.testing.assert_close(converted["sem_seg_head.aux_head.0.norm.running_mean"],
                               official["dsn.1.running_mean"] - official["dsn.0.bias"], rtol=0, atol=0)
    assert converted["sem_seg_head.rcca_block.rcca.attention.gamma"].shape == (1,)


def test_tool_writes_a_checkpoint_and_refuses_a_wrong_config(tmp_path, capsys):
    _, official = _narrow_pair()
    source = tmp_path / "official.pth"
    torch.save({k: v.float() for k, v in official.items()}, str(source))
    tool = load_tool("convert_ccnet_checkpoint")
    output = tmp_path / "converted.pth"
    args = ["--format", "official", "--input", str(source), "--config-file", config_path(OFFICIAL_CONFIG),
            "--output", str(output)]
    assert tool.main(args + ["MODEL.RESNETS.DEPTH", "101", *NARROW]) == 0
    assert "sha256" in capsys.readouterr().out and output.exists()
    assert tool.main([*args[:-1], str(tmp_path / "wrong.pth"), "MODEL.RESNETS.DEPTH", "50", *NARROW]) == 1
    err = capsys.readouterr().err
    assert "converted key the model lacks: backbone.res4.6.conv1.weight" in err and not (tmp_path / "wrong.pth").exists()
