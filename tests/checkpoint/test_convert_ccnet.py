"""Published CCNet checkpoints (the official Cityscapes models and mmsegmentation's model zoo): each layout
converts key for key, and ccnet_d2's model with the family's config and the converted weights computes
the reference network's logits in float64.

The references (``official_ccnet.OfficialCCNet``, ``mmseg_ccnet.MMSegCCNet``) are written from the
published architectures; random weights (norm weights of both signs, gamma != 0, random running
statistics) stand in for the released files, which cannot be downloaded here.
"""
import os

import pytest
import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from ccnet_d2.checkpoint import INPLACE_ABN_EPS, compare_with_model, convert_ccnet_state_dict
from tests.common import SEMANTIC_CONFIG_FOLDERS, build_cfg, config_path, find_configs, load_tool

from .mmseg_ccnet import MMSegCCNet
from .official_ccnet import OfficialCCNet
from .random_weights import randomise

TILE, TILE_STRIDE = 41, 28  # sliding windows of the narrow tests (the official stride is ceil(2/3 tile))
SIZES = {"odd": (45, 59), "even": (48, 64)}
# family -> (config, reference at published size, narrow reference, ccnet_d2 overrides of the narrow copy)
FAMILIES = {
    "official": (
        "Cityscapes-SemanticSegmentation/ccnet_R_101_official_r2_769x769_cityscapes.yaml",
        lambda depth: OfficialCCNet(depth),
        lambda align_corners: OfficialCCNet(101, width=8, head_channels=16),
        ("MODEL.RESNETS.STEM_OUT_CHANNELS", "16", "MODEL.RESNETS.RES2_OUT_CHANNELS", "32",
         "MODEL.RESNETS.WIDTH_PER_GROUP", "8", "MODEL.SEM_SEG_HEAD.CONVS_DIM", "16",
         "MODEL.SEM_SEG_HEAD.AUX_CONVS_DIM", "16")),
    "mmseg": (
        "Cityscapes-SemanticSegmentation/ccnet_R_101_mmseg_769x769_cityscapes.yaml",
        lambda depth: MMSegCCNet(depth),
        lambda align_corners: MMSegCCNet(101, width=8, channels=16, aux_channels=8, align_corners=align_corners),
        ("MODEL.RESNETS.STEM_OUT_CHANNELS", "8", "MODEL.RESNETS.RES2_OUT_CHANNELS", "32",
         "MODEL.RESNETS.WIDTH_PER_GROUP", "8", "MODEL.SEM_SEG_HEAD.CONVS_DIM", "16",
         "MODEL.SEM_SEG_HEAD.AUX_CONVS_DIM", "8")),
}


def _cfg(family, *overrides):
    return build_cfg(config_path(FAMILIES[family][0]), "MODEL.DEVICE", "cpu", "MODEL.RESNETS.NORM", "BN",
                     "MODEL.SEM_SEG_HEAD.NORM", "BN", *overrides)


def _narrow_pair(family, align_corners=True, seed=0):
    reference = randomise(FAMILIES[family][2](align_corners).double(), seed)
    return reference, {k: v.clone() for k, v in reference.state_dict().items()}


def _ccnet_d2_model(family, converted, tmp_path, *overrides):
    """The family's config model (narrow), loaded through DetectionCheckpointer from a written file."""
    path = str(tmp_path / "converted.pth")
    torch.save({"model": converted}, path)
    model = build_model(_cfg(family, "MODEL.RESNETS.DEPTH", "101", *FAMILIES[family][3], *overrides))
    model = model.double().eval()
    DetectionCheckpointer(model).load(path)
    return model


def _reference_logits(family, reference, image, mode):
    if mode == "whole":
        return reference.predict_whole(image)
    if family == "official":
        return reference.predict_sliding(image, TILE)
    return reference.predict_slide(image, TILE, TILE_STRIDE)


def _image(size):
    return torch.randn(1, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("depth", [50, 101])
def test_published_layout_converts_every_key_with_its_shape(family, depth):
    """Full-size state dicts with the published keys and shapes: nothing unmatched either way."""
    with torch.device("meta"):
        published = FAMILIES[family][1](depth).state_dict()
    result = convert_ccnet_state_dict(published, family)
    assert not result.unmapped
    assert result.dropped == (["dsn.0.bias"] if family == "official" else [])
    model_state = build_model(_cfg(family, "MODEL.RESNETS.DEPTH", str(depth))).state_dict()
    assert compare_with_model(result.model, model_state) == ([], [], [])


# (family, inference mode, align_corners): the official network always upsamples with align_corners;
# mmsegmentation's 512 configs do not, its 769 configs do.
INFERENCE_CASES = [("official", "whole", True), ("official", "slide", True), ("mmseg", "whole", False),
                   ("mmseg", "whole", True), ("mmseg", "slide", True)]


@pytest.mark.parametrize("size", sorted(SIZES))
@pytest.mark.parametrize("family, mode, align_corners", INFERENCE_CASES)
def test_converted_weights_reproduce_the_reference_logits_in_float64(tmp_path, family, mode, align_corners, size):
    reference, published = _narrow_pair(family, align_corners)
    model = _ccnet_d2_model(family, convert_ccnet_state_dict(published, family).model, tmp_path,
                            "TEST.SEM_SEG.MODE", mode, "TEST.SEM_SEG.CROP_SIZE", f"[{TILE}, {TILE}]",
                            "TEST.SEM_SEG.STRIDE", f"[{TILE_STRIDE}, {TILE_STRIDE}]",
                            "MODEL.SEM_SEG_HEAD.ALIGN_CORNERS", str(align_corners))
    image = _image(SIZES[size])
    with torch.no_grad():
        expected = _reference_logits(family, reference, image, mode)
        actual = model.inference_logits(image)
    assert actual.shape == expected.shape == (1, 19, *SIZES[size])
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10 * expected.abs().max().item())


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_converted_auxiliary_head_reproduces_the_reference(tmp_path, family):
    """The auxiliary head (training only) gets the reference's weights (official: its conv bias folded
    into the norm)."""
    reference, published = _narrow_pair(family)
    model = _ccnet_d2_model(family, convert_ccnet_state_dict(published, family).model, tmp_path)
    image = _image(SIZES["odd"])
    with torch.no_grad():
        if family == "official":
            expected = reference.dsn(reference.backbone(image)[0])
        else:
            expected = reference.auxiliary(image)
        actual = model.sem_seg_head.aux_head(model.backbone(image)["res4"])
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10 * expected.abs().max().item())


NEGATIVE_CONTROLS = [
    ("official", "swapped query and key"), ("official", "w instead of |w| + eps"),
    ("official", "dsn bias not folded"), ("mmseg", "swapped query and key"), ("mmseg", "no contracted dilation"),
]


@pytest.mark.parametrize("family, damage", NEGATIVE_CONTROLS)
def test_negative_controls_break_the_equivalence(tmp_path, family, damage):
    reference, published = _narrow_pair(family)
    prefix = "head" if family == "official" else "decode_head"
    if damage == "swapped query and key":
        query, key = f"{prefix}.cca.query_conv.weight", f"{prefix}.cca.key_conv.weight"
        published[query], published[key] = published[key], published[query]
    converted = convert_ccnet_state_dict(published, family).model
    if damage == "w instead of |w| + eps":
        converted["sem_seg_head.rcca_block.reduce.norm.weight"] = published["head.conva.1.weight"]
    if damage == "dsn bias not folded":
        converted["sem_seg_head.aux_head.0.norm.running_mean"] = published["dsn.1.running_mean"]
    overrides = ("MODEL.RESNETS.CONTRACT_DILATION", "False") if damage == "no contracted dilation" else ()
    model = _ccnet_d2_model(family, converted, tmp_path, "TEST.SEM_SEG.MODE", "whole", *overrides)
    image = _image(SIZES["odd"])
    with torch.no_grad():
        if damage == "dsn bias not folded":  # the auxiliary head runs in training only: compare it directly
            actual = model.sem_seg_head.aux_head(model.backbone(image)["res4"])
            expected = reference.dsn(reference.backbone(image)[0])
        else:
            actual, expected = model.inference_logits(image), reference.predict_whole(image)
    assert (actual - expected).abs().max() > 1e-6


def test_official_norms_become_abs_plus_eps_and_the_dsn_bias_moves_into_the_mean():
    _, published = _narrow_pair("official")
    converted = convert_ccnet_state_dict(published, "official").model
    torch.testing.assert_close(converted["backbone.stem.conv1.norm.weight"],
                               published["bn1.weight"].abs() + INPLACE_ABN_EPS, rtol=0, atol=0)
    torch.testing.assert_close(converted["sem_seg_head.aux_head.0.norm.running_mean"],
                               published["dsn.1.running_mean"] - published["dsn.0.bias"], rtol=0, atol=0)
    assert converted["sem_seg_head.rcca_block.rcca.attention.gamma"].shape == (1,)


def test_mmseg_gamma_gets_its_shape_and_the_wrong_format_is_named():
    _, published = _narrow_pair("mmseg")
    converted = convert_ccnet_state_dict(published, "mmseg").model
    assert published["decode_head.cca.gamma.scale"].shape == ()
    assert converted["sem_seg_head.rcca_block.rcca.attention.gamma"].shape == (1,)
    with pytest.raises(ValueError, match="not a official CCNet checkpoint; it looks like format 'mmseg'"):
        convert_ccnet_state_dict(published, "official")


def test_tool_writes_a_checkpoint_and_refuses_a_wrong_config(tmp_path, capsys):
    _, published = _narrow_pair("official")
    source = tmp_path / "official.pth"
    torch.save({k: v.float() for k, v in published.items()}, str(source))
    tool = load_tool("convert_ccnet_checkpoint")
    output = tmp_path / "converted.pth"
    args = ["--format", "official", "--input", str(source), "--config-file", config_path(FAMILIES["official"][0]),
            "--output", str(output)]
    assert tool.main(args + ["MODEL.RESNETS.DEPTH", "101", *FAMILIES["official"][3]]) == 0
    assert "sha256" in capsys.readouterr().out and output.exists()
    wrong_depth = ["MODEL.RESNETS.DEPTH", "50", *FAMILIES["official"][3]]
    assert tool.main([*args[:-1], str(tmp_path / "wrong.pth"), *wrong_depth]) == 1
    err = capsys.readouterr().err
    assert "converted key the model lacks: backbone.res4.6.conv1.weight" in err
    assert not (tmp_path / "wrong.pth").exists()


PUBLISHED_CONFIGS = [p for p in find_configs(SEMANTIC_CONFIG_FOLDERS) if "_official_" in p or "_mmseg_" in p]


@pytest.mark.parametrize("path", PUBLISHED_CONFIGS, ids=os.path.basename)
def test_every_published_family_config_takes_its_checkpoint_layout(path):
    """Each config's model takes, key for key and shape for shape, the layout of the checkpoints it is for
    (the family and depth its name says, its dataset's class count), and sets the family's architecture."""
    family = "official" if "_official_" in path else "mmseg"
    depth = 101 if "_R_101_" in path else 50
    cfg = build_cfg(path, "MODEL.DEVICE", "cpu")
    num_classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    with torch.device("meta"):
        reference = OfficialCCNet(depth, num_classes) if family == "official" else MMSegCCNet(depth, num_classes)
    converted = convert_ccnet_state_dict(reference.state_dict(), family).model
    assert compare_with_model(converted, build_model(cfg).state_dict()) == ([], [], [])
    official = family == "official"
    assert cfg.MODEL.RESNETS.STEM_POOL_CEIL_MODE == official and cfg.MODEL.RESNETS.CONTRACT_DILATION != official
    assert cfg.MODEL.CCNET.ACTIVATION == ("leaky_relu" if official else "relu")
    assert cfg.MODEL.CCNET.PAD_TO_STRIDE is False
    assert cfg.MODEL.SEM_SEG_HEAD.ALIGN_CORNERS == (official or "769x769" in path)
    assert (cfg.INPUT.FORMAT, list(cfg.MODEL.PIXEL_STD)) == (("BGR", [1.0] * 3) if official else
                                                              ("RGB", [58.395, 57.12, 57.375]))
