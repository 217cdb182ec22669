"""The CCNet semantic model: every semantic config builds and trains a step on CPU; the inference
modes (whole, sliding window, multi-scale, flip with left/right class swap); DefaultPredictor."""
import logging
import os

import numpy as np
import pytest
import torch

from detectron2.data import MetadataCatalog
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model
from detectron2.utils.visualizer import Visualizer

from ccnet_d2.modeling.test_time_augmentation import (
    flip_logits,
    multi_scale_logits,
    sliding_window_logits,
    swap_channels,
    window_starts,
)
from ccnet_d2.modeling.heads import CCNetHead
from ccnet_d2.modeling.meta_arch import CCNetSegmentor

from ccnet_d2.engine import Trainer
from tests.common import SEMANTIC_CONFIG_FOLDERS, TOY_SEMANTIC_CONFIG as TOY_CONFIG, build_cfg, config_path, find_configs

SEMANTIC_CONFIGS = find_configs(SEMANTIC_CONFIG_FOLDERS)


def _cfg(path, *overrides):
    return build_cfg(path, "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", *overrides)


def _model(path, *overrides):
    torch.manual_seed(0)
    return build_model(_cfg(path, *overrides))


def _inputs(num_classes, sizes=((45, 53), (37, 61)), seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"image": torch.randint(0, 256, (3, h, w), generator=g).float(),
             "sem_seg": torch.randint(0, num_classes, (h, w), generator=g)} for h, w in sizes]


def test_all_semantic_configs_are_found():
    names = {os.path.basename(p) for p in SEMANTIC_CONFIGS}
    for expected in ("ccnet_R_101_os8_r2_769x769_60k_bs8_cityscapes.yaml",
                     "ccnet_R_101_os8_r2_ohem_769x769_60k_bs8_cityscapes.yaml",
                     "ccnet_R_101_os8_r2_ccl_769x769_60k_bs8_cityscapes.yaml",
                     "ccnet_R_50_os8_r1_769x769_60k_bs8_cityscapes.yaml"):
        assert expected in names
    assert len(SEMANTIC_CONFIGS) >= 12


# Narrow channels (1/8 of ResNet's, 32 in the head) keep the step fast on 2 CPU cores; depth, stem,
# dilations, R, norms, losses and inference settings stay those of the config.
NARROW = ["MODEL.RESNETS.WIDTH_PER_GROUP", "8", "MODEL.RESNETS.STEM_OUT_CHANNELS", "32",
          "MODEL.RESNETS.RES2_OUT_CHANNELS", "32", "MODEL.SEM_SEG_HEAD.CONVS_DIM", "32",
          "MODEL.SEM_SEG_HEAD.AUX_CONVS_DIM", "32"]


@pytest.mark.parametrize("path", SEMANTIC_CONFIGS, ids=os.path.basename)
def test_config_builds_and_trains_one_step_on_cpu(path):
    """Each config's model, narrowed, at a small odd input size: forward, losses, backward."""
    cfg = _cfg(path, *NARROW)
    model = _model(path, *NARROW)
    assert isinstance(model, CCNetSegmentor) and isinstance(model.sem_seg_head, CCNetHead)
    assert model.backbone.output_shape()["res5"].stride == 8
    assert len(model.backbone.res4) == {50: 6, 101: 23}[cfg.MODEL.RESNETS.DEPTH]
    assert model.sem_seg_head.rcca_block.rcca.recurrence == cfg.MODEL.CCNET.RECURRENCE
    model.train()
    num_classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    inputs = _inputs(num_classes, sizes=((33, 41), (29, 35)))
    inputs[0]["sem_seg"][:5] = cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE  # some ignored pixels (255; CamVid: 11)
    losses = model(inputs)
    expected = {"loss_sem_seg", "loss_sem_seg_aux"}
    if cfg.MODEL.CCNET.CONSISTENT_LOSS.ENABLED:
        expected |= {"loss_ccl_var", "loss_ccl_dis", "loss_ccl_reg"}
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # The attention's gamma (0 at start) gets a gradient: the attention is in the graph.
    assert model.sem_seg_head.rcca_block.rcca.attention.gamma.grad.abs().sum() > 0


def test_loss_types_and_auxiliary_head_follow_the_config():
    model = _model(TOY_CONFIG, "MODEL.SEM_SEG_HEAD.LOSS_TYPE", "ohem", "MODEL.SEM_SEG_HEAD.OHEM_MIN_KEPT", "50",
                   "MODEL.SEM_SEG_HEAD.AUX_LOSS_WEIGHT", "0.0")
    assert not hasattr(model.sem_seg_head, "aux_head")
    assert model.sem_seg_head.main_loss.min_kept == 50
    assert set(model(_inputs(4))) == {"loss_sem_seg"}
    with pytest.raises(ValueError, match="LOSS_TYPE"):
        _model(TOY_CONFIG, "MODEL.SEM_SEG_HEAD.LOSS_TYPE", "hard_pixel_mining")


def test_inference_returns_logits_at_the_requested_resolution():
    model = _model(TOY_CONFIG).eval()
    inputs = _inputs(4)
    inputs[1]["height"], inputs[1]["width"] = 74, 122  # e.g. the original size before a test resize
    with torch.no_grad():
        outputs = model(inputs)
    assert outputs[0]["sem_seg"].shape == (4, 45, 53)
    assert outputs[1]["sem_seg"].shape == (4, 74, 122)


def test_sliding_window_with_a_covering_crop_equals_whole_image_inference():
    whole = _model(TOY_CONFIG).eval()
    slide = _model(TOY_CONFIG, "TEST.SEM_SEG.MODE", "slide", "TEST.SEM_SEG.CROP_SIZE", "[64, 64]",
                   "TEST.SEM_SEG.STRIDE", "[40, 40]").eval()
    slide.load_state_dict(whole.state_dict())
    image = _inputs(4, sizes=((45, 53),))
    with torch.no_grad():
        a, b = whole(image)[0]["sem_seg"], slide(image)[0]["sem_seg"]
        assert torch.allclose(a, b, atol=1e-5)
        # A crop smaller than the image gives a different (stitched) but complete prediction.
        small = _model(TOY_CONFIG, "TEST.SEM_SEG.MODE", "slide", "TEST.SEM_SEG.CROP_SIZE", "[32, 40]",
                       "TEST.SEM_SEG.STRIDE", "[16, 16]").eval()
        small.load_state_dict(whole.state_dict())
        c = small(image)[0]["sem_seg"]
    assert c.shape == a.shape and torch.isfinite(c).all() and not torch.allclose(a, c, atol=1e-3)
    assert "slide 32x40 stride 16x16" in small.inference_mode


def test_sliding_window_stitches_a_pointwise_function_exactly():
    """For a per-pixel logits_fn, overlapping crops must reproduce the whole-image result exactly."""
    weight = torch.randn(5, 3)
    pointwise = lambda x: torch.einsum("kc,nchw->nkhw", weight, x)  # noqa: E731
    image = torch.randn(2, 3, 50, 37)
    stitched = sliding_window_logits(image, pointwise, crop_size=(16, 12), stride=(10, 7))
    assert torch.allclose(stitched, pointwise(image), atol=1e-5)
    assert window_starts(50, 16, 10) == [0, 10, 20, 30, 34]
    assert window_starts(10, 16, 10) == [0]


def test_flip_swaps_left_right_class_channels():
    image = torch.randn(1, 4, 6, 7)
    identity = lambda x: x.clone()  # noqa: E731  logits = the input channels
    pairs = [(0, 3)]
    flipped = flip_logits(image, identity, pairs)
    assert torch.equal(flipped, image[:, [3, 1, 2, 0]])
    averaged = multi_scale_logits(image, identity, scales=[1.0], flip=True, flip_pairs=pairs)
    assert torch.allclose(averaged, (image + image[:, [3, 1, 2, 0]]) / 2)
    assert torch.equal(swap_channels(image, [(1, 2), (0, 3)]), image[:, [3, 2, 1, 0]])
    with pytest.raises(ValueError, match="outside"):
        swap_channels(image, [(1, 9)])


def test_flip_test_time_augmentation_reads_pairs_from_the_test_metadata():
    MetadataCatalog.get("ccnet_test_flip_pairs_val").set(flip_pairs=[(1, 2)])
    model = _model(TOY_CONFIG, "DATASETS.TEST", "('ccnet_test_flip_pairs_val',)", "TEST.AUG.ENABLED", "True", "TEST.AUG.FLIP", "True").eval()
    assert model.flip_pairs == ((1, 2),)
    assert "flip (swapping class pairs [(1, 2)])" in model.inference_mode
    image = _inputs(4, sizes=((40, 47),))
    with torch.no_grad():
        result = model(image)[0]["sem_seg"]
        x = ((image[0]["image"] - model.pixel_mean) / model.pixel_std).unsqueeze(0)
        plain = model.network_logits(x)
        mirrored = model.network_logits(x.flip(-1)).flip(-1)[:, [0, 2, 1, 3]]
    assert torch.allclose(result, ((plain + mirrored) / 2)[0], atol=1e-5)
    assert not torch.allclose(result, plain[0], atol=1e-3)


def test_multi_scale_inference_averages_scales_at_input_resolution(caplog):
    model = _model(TOY_CONFIG, "TEST.AUG.ENABLED", "True", "TEST.AUG.FLIP", "False", "TEST.SEM_SEG.SCALES", "[0.75, 1.0, 1.5]").eval()
    image = _inputs(4, sizes=((41, 50),))
    with torch.no_grad(), caplog.at_level(logging.INFO, logger="ccnet_d2"):
        result = model(image)[0]["sem_seg"]
        x = ((image[0]["image"] - model.pixel_mean) / model.pixel_std).unsqueeze(0)
        expected = sum(torch.nn.functional.interpolate(
            model.network_logits(torch.nn.functional.interpolate(x, scale_factor=s, mode="bilinear")),
            size=(41, 50), mode="bilinear") for s in (0.75, 1.0, 1.5)) / 3
    assert result.shape == (4, 41, 50)
    assert torch.allclose(result, expected[0], atol=1e-5)
    assert "whole image, scales [0.75, 1.0, 1.5], no flip" in caplog.text


def test_default_predictor_and_visualizer_work_unchanged():
    cfg = _cfg(TOY_CONFIG)
    predictor = DefaultPredictor(cfg)
    image = np.random.RandomState(0).randint(0, 256, (57, 71, 3), dtype=np.uint8)
    output = predictor(image)
    assert output["sem_seg"].shape == (cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, 57, 71)
    metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0])
    drawn = Visualizer(image[:, :, ::-1], metadata).draw_sem_seg(output["sem_seg"].argmax(0).to("cpu"))
    assert drawn.get_image().shape == (57, 71, 3)


def test_test_scales_without_test_time_augmentation_are_refused():
    """SCALES only take effect with TEST.AUG.ENABLED: a config asking for them without it is an error,
    not a silent single-scale evaluation."""
    with pytest.raises(ValueError, match=r"TEST.SEM_SEG.SCALES is \[0.75, 1.0\], but test-time augmentation is off"):
        _model(TOY_CONFIG, "TEST.SEM_SEG.SCALES", "[0.75, 1.0]")
    assert _model(TOY_CONFIG, "TEST.AUG.FLIP", "True").flip is False  # FLIP alone: TTA is off
    assert _model(TOY_CONFIG, "TEST.AUG.ENABLED", "True", "TEST.AUG.FLIP", "True").flip is True


@pytest.mark.parametrize("path, decay", [
    ("Cityscapes-SemanticSegmentation/ccnet_R_101_os8_r2_769x769_60k_bs8_cityscapes.yaml", 1e-4),
    ("ADE20K-SemanticSegmentation/ccnet_R_101_os8_r2_512x512_160k_bs16_ade20k.yaml", 5e-4),
])
def test_recipes_decay_norm_parameters_like_their_sources(path, decay):
    """The official code and mmsegmentation decay every parameter, norms included; Detectron2 exempts
    norms unless SOLVER.WEIGHT_DECAY_NORM says otherwise."""
    cfg = _cfg(config_path(path), "MODEL.RESNETS.DEPTH", "50", "MODEL.RESNETS.NORM", "BN",
               "MODEL.SEM_SEG_HEAD.NORM", "BN")
    model = build_model(cfg)
    optimizer = Trainer.build_optimizer(cfg, model)
    decay_of = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    norm = model.backbone.res4[0].conv1.norm.weight
    assert decay_of[id(norm)] == decay_of[id(model.backbone.res4[0].conv1.weight)] == decay
    assert decay_of[id(model.sem_seg_head.rcca_block.rcca.attention.gamma)] == decay


def test_inputs_the_model_cannot_mean_are_refused_or_flagged(caplog):
    model = _model(TOY_CONFIG).eval()
    for shape in ((1, 32, 40), (3, 32), (1, 3, 32, 40)):
        with pytest.raises(ValueError, match=r"input 0 has an 'image' of shape .*; expected \[3, H, W\] with values"):
            model([{"image": torch.rand(*shape)}])
    with caplog.at_level(logging.WARNING), torch.no_grad():
        model([{"image": (torch.rand(3, 32, 40) > 0.5).float()}])  # a dark 8-bit image (0s and 1s): no warning
        assert "multiply the image by 255" not in caplog.text
        model([{"image": torch.rand(3, 32, 40)}])  # a 0..1 image: it runs, with a warning, once
        model([{"image": torch.rand(3, 32, 40)}])
        model([{"image": 255 * torch.rand(3, 32, 40)}])
    assert caplog.text.count("multiply the image by 255") == 1
