"""The CCNet video model: every video config trains a step on clips on CPU; one frame equals the image
model with the same weights; the centre frame is the one predicted; DefaultPredictor and ClipPredictor."""
import os

import numpy as np
import pytest
import torch

from detectron2.engine import DefaultPredictor

from ccnet_d2.data import build_clip_mapper
from ccnet_d2.engine import ClipPredictor
from ccnet_d2.layers import RCCA3d
from ccnet_d2.modeling.heads import CCNetVideoHead
from ccnet_d2.modeling.meta_arch import CCNetSegmentor, CCNetVideoSegmentor
from tests.common import TOY_VIDEO_CONFIG, VIDEO_CONFIG_FOLDERS, find_configs

from .test_ccnet_model import NARROW, _cfg, _model

VIDEO_CONFIGS = find_configs(VIDEO_CONFIG_FOLDERS)


def _clip(length, size=(29, 35), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (length, 3, *size), generator=g).float()


def _with_attention(model, gamma=0.7):
    """Switch the attention on and scale the classifier (initialised with std 0.01) up, so that
    differences show in the logits; inference mode."""
    with torch.no_grad():
        model.sem_seg_head.rcca_block.rcca.attention.gamma.fill_(gamma)
        model.sem_seg_head.predictor.weight.mul_(100.0)
    return model.eval()


def test_video_configs_are_found():
    assert {os.path.basename(p) for p in VIDEO_CONFIGS} == {
        "ccnet3d_R_101_os8_r2_t5_camvid.yaml", "ccnet3d_R_101_os8_r2_t1_camvid.yaml",
        "ccnet3d_R_50_narrow_os8_r2_t3_toy.yaml"}


@pytest.mark.parametrize("path", VIDEO_CONFIGS, ids=os.path.basename)
def test_video_config_trains_one_step_on_clips(path):
    cfg = _cfg(path, *NARROW)
    model = _model(path, *NARROW)
    assert isinstance(model, CCNetVideoSegmentor) and isinstance(model.sem_seg_head, CCNetVideoHead)
    assert isinstance(model.sem_seg_head.rcca_block.rcca, RCCA3d)
    assert model.sem_seg_head.rcca_block.rcca.recurrence == cfg.MODEL.CCNET.RECURRENCE
    length = cfg.INPUT.CLIP_LENGTH
    labels = torch.randint(0, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, (2, 29, 35))
    labels[0, :4] = cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE
    model.train()
    losses = model([{"frames": _clip(length, seed=i), "sem_seg": labels[i]} for i in range(2)])
    assert set(losses) == {"loss_sem_seg", "loss_sem_seg_aux"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.sem_seg_head.rcca_block.rcca.attention.gamma.grad.abs().sum() > 0


def test_one_frame_equals_the_image_model_with_the_same_weights():
    video = _with_attention(_model(TOY_VIDEO_CONFIG, "INPUT.CLIP_LENGTH", "1"))
    image_model = _model(TOY_VIDEO_CONFIG, "MODEL.META_ARCHITECTURE", "CCNetSegmentor",
                         "MODEL.SEM_SEG_HEAD.NAME", "CCNetHead", "INPUT.CLIP_LENGTH", "1").eval()
    assert type(image_model) is CCNetSegmentor
    image_model.load_state_dict(video.state_dict())  # the same parameter names and shapes
    frame = _clip(1)[0]
    with torch.no_grad():
        expected = image_model([{"image": frame}])[0]["sem_seg"]
        torch.testing.assert_close(video([{"image": frame}])[0]["sem_seg"], expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(video([{"frames": frame[None]}])[0]["sem_seg"], expected, rtol=1e-4, atol=1e-4)


def test_the_centre_frame_is_predicted_with_context_from_the_others():
    model = _model(TOY_VIDEO_CONFIG).eval()
    clip = _clip(5)
    with torch.no_grad():
        alone = model([{"image": clip[2]}])[0]["sem_seg"]
        # gamma = 0: no path between frames, so the clip's output is the centre frame's alone
        torch.testing.assert_close(model([{"frames": clip}])[0]["sem_seg"], alone, rtol=1e-4, atol=1e-4)
        _with_attention(model)
        with_context = model([{"frames": clip}])[0]["sem_seg"]
        assert (with_context - model([{"image": clip[2]}])[0]["sem_seg"]).abs().max() > 1e-2
        # the attention treats the other frames as a set: swapping two of them changes nothing
        swapped = clip[[4, 1, 2, 3, 0]]
        torch.testing.assert_close(model([{"frames": swapped}])[0]["sem_seg"], with_context, rtol=1e-4, atol=1e-4)
        changed = clip.clone()
        changed[0] = 255 - changed[0]
        assert (model([{"frames": changed}])[0]["sem_seg"] - with_context).abs().max() > 1e-2


def test_sliding_window_over_clips_with_a_covering_crop_equals_whole_clips():
    whole = _with_attention(_model(TOY_VIDEO_CONFIG))
    slide = _with_attention(_model(TOY_VIDEO_CONFIG, "TEST.SEM_SEG.MODE", "slide", "TEST.SEM_SEG.CROP_SIZE",
                                   "[40, 40]", "TEST.SEM_SEG.STRIDE", "[24, 24]"))
    slide.load_state_dict(whole.state_dict())
    clip = _clip(3)
    with torch.no_grad():
        torch.testing.assert_close(slide([{"frames": clip}])[0]["sem_seg"], whole([{"frames": clip}])[0]["sem_seg"],
                                   rtol=1e-5, atol=1e-5)


def test_default_predictor_and_clip_predictor():
    cfg = _cfg(TOY_VIDEO_CONFIG, "INPUT.MIN_SIZE_TEST", "40", "INPUT.MAX_SIZE_TEST", "64")
    torch.manual_seed(0)
    clip_predictor = ClipPredictor(cfg)
    _with_attention(clip_predictor.model)
    image_predictor = DefaultPredictor(cfg)
    image_predictor.model = clip_predictor.model
    rng = np.random.RandomState(0)
    frames = [rng.randint(0, 256, (45, 57, 3), dtype=np.uint8) for _ in range(3)]
    output = clip_predictor(frames)["sem_seg"]
    assert output.shape == (4, 45, 57)
    one_frame = ClipPredictor(_cfg(TOY_VIDEO_CONFIG, "INPUT.MIN_SIZE_TEST", "40", "INPUT.MAX_SIZE_TEST", "64",
                                   "INPUT.CLIP_LENGTH", "1"))
    one_frame.model = clip_predictor.model
    torch.testing.assert_close(one_frame(frames[1:2])["sem_seg"], image_predictor(frames[1])["sem_seg"])
    resized = [torch.as_tensor(clip_predictor.aug.get_transform(f).apply_image(f).astype("float32").transpose(2, 0, 1))
               for f in frames]
    with torch.no_grad():
        expected = clip_predictor.model([{"frames": torch.stack(resized), "height": 45, "width": 57}])[0]["sem_seg"]
    torch.testing.assert_close(output, expected)
    for clip in (frames[:1], frames[:2], frames + frames[:2]):  # only the model's clip length
        with pytest.raises(ValueError, match=f"a clip of {len(clip)} frames; this model takes clips of "
                                             "INPUT.CLIP_LENGTH = 3"):
            clip_predictor(clip)
    with pytest.raises(ValueError, match="frame 1 of the clip is None"):
        clip_predictor([frames[0], None, frames[2]])
    with pytest.raises(ValueError, match=r"one array of shape \(45, 57, 3\); expected a clip"):
        clip_predictor(frames[0])


def test_bad_clips_and_configs_are_refused():
    model = _model(TOY_VIDEO_CONFIG).eval()
    with pytest.raises(ValueError, match=r"'frames' of shape \(4, 3, 29, 35\); expected \[T, 3, H, W\] with an odd T"):
        model([{"frames": _clip(4)}])
    with pytest.raises(ValueError, match="needs MODEL.SEM_SEG_HEAD.NAME 'CCNetVideoHead'"):
        _model(TOY_VIDEO_CONFIG, "MODEL.SEM_SEG_HEAD.NAME", "CCNetHead")
    image_cfg = _cfg(TOY_VIDEO_CONFIG, "MODEL.META_ARCHITECTURE", "CCNetSegmentor", "MODEL.SEM_SEG_HEAD.NAME", "CCNetHead")
    with pytest.raises(ValueError, match="INPUT.CLIP_LENGTH is 3, but MODEL.META_ARCHITECTURE 'CCNetSegmentor' takes"):
        build_clip_mapper(image_cfg, True)
    with pytest.raises(ValueError, match="INPUT.CLIP_LENGTH must be an odd number"):
        build_clip_mapper(_cfg(TOY_VIDEO_CONFIG, "INPUT.CLIP_LENGTH", "2"), True)
