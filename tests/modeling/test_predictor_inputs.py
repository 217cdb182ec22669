"""``ccnet_d2.Predictor`` over a table of inputs, for both model families: every wrong input is refused
with a message that says what was passed and what is expected; the convertible ones (grey, alpha, integer
arrays within 0..255) give exactly the prediction of the equivalent HxWx3 image; a dark but valid
uint8 image passes without a warning. Detectron2's own DefaultPredictor is the negative control."""
import logging

import numpy as np
import pytest
import torch
from detectron2.engine import DefaultPredictor
from PIL import Image

from ccnet_d2 import Predictor
from ccnet_d2.data.image_input import check_image_input
from tests.common import TOY_INSTANCE_CONFIG, TOY_SEMANTIC_CONFIG, build_cfg

RNG = np.random.RandomState(0)
IMAGE = RNG.randint(0, 256, (37, 45, 3), dtype=np.uint8)
GREY = IMAGE[:, :, 0]

REFUSED = {  # input -> what the message must say
    "None (cv2.imread of a missing file)": (lambda: None, r"is None; expected an HxWx3 numpy array.*check the path"),
    "float scaled to 0..1": (lambda: IMAGE / 255.0, r"float64 array with values from 0 to 1, scaled to 0\.\.1.*Multiply"),
    "channels first": (lambda: IMAGE.transpose(2, 0, 1).copy(), r"shape \(3, 37, 45\), channels first.*transpose\(1, 2, 0\)"),
    "uint16 of 12 bits": (lambda: IMAGE.astype(np.uint16) * 16, r"uint16 array with values from 0 to 4080.*16-bit"),
    "0x0": (lambda: np.zeros((0, 0, 3), np.uint8), r"an empty array of shape \(0, 0, 3\)"),
    "0x5 grey": (lambda: np.zeros((0, 5), np.uint8), r"an empty array of shape \(0, 5, 3\)"),
    "NaN": (lambda: np.full((8, 8, 3), np.nan, np.float32), r"holding NaN or infinite values"),
    "normalised values": (lambda: (IMAGE - 128.0) / 64.0, r"values from -2 to 1\.98.*undo the normalisation"),
    "two channels": (lambda: IMAGE[:, :, :2].copy(), r"shape \(37, 45, 2\) \(2 channels\)"),
    "a batch": (lambda: IMAGE[None], r"an array of shape \(1, 37, 45, 3\)"),
    "bool": (lambda: IMAGE > 128, r"dtype bool"),
    "torch tensor": (lambda: torch.from_numpy(IMAGE), r"a torch\.Tensor.*permute"),
    "PIL image": (lambda: Image.fromarray(IMAGE), r"a PIL\.Image\.Image.*np\.asarray"),
}
CONVERTED = {  # input -> the HxWx3 image it stands for
    "grey HxW": (lambda: GREY, lambda: np.repeat(GREY[:, :, None], 3, axis=2)),
    "grey HxWx1": (lambda: GREY[:, :, None], lambda: np.repeat(GREY[:, :, None], 3, axis=2)),
    "BGRA": (lambda: np.dstack([IMAGE, np.full(GREY.shape, 7, np.uint8)]), lambda: IMAGE),
    "int64 within 0..255": (lambda: IMAGE.astype(np.int64), lambda: IMAGE),
    "uint16 within 0..255": (lambda: IMAGE.astype(np.uint16), lambda: IMAGE),
    "non-contiguous": (lambda: np.ascontiguousarray(IMAGE[:, ::-1])[:, ::-1], lambda: IMAGE),
}


@pytest.fixture(scope="module", params=["semantic", "instance"])
def predictor(request):
    config = TOY_SEMANTIC_CONFIG if request.param == "semantic" else TOY_INSTANCE_CONFIG
    cfg = build_cfg(config, "MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
                    "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "96")
    torch.manual_seed(0)
    return Predictor(cfg)


def _output(outputs):
    if "sem_seg" in outputs:
        return outputs["sem_seg"]
    instances = outputs["instances"]
    return torch.cat([instances.pred_boxes.tensor.flatten(), instances.scores, instances.pred_classes.float()])


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_wrong_inputs_are_refused_with_what_was_passed(predictor, case):
    make, message = REFUSED[case]
    with pytest.raises(ValueError, match=message):
        predictor(make())


@pytest.mark.parametrize("case", sorted(CONVERTED))
def test_convertible_inputs_give_the_prediction_of_the_image_they_stand_for(predictor, case):
    make, equivalent = CONVERTED[case]
    torch.testing.assert_close(_output(predictor(make())), _output(predictor(equivalent())), rtol=0, atol=0)


def test_float_images_of_0_to_255_are_taken(predictor):
    """(Detectron2 resizes float images with torch and uint8 ones with PIL, so the two differ slightly.)"""
    assert _output(predictor(IMAGE.astype(np.float64))).shape == _output(predictor(IMAGE)).shape


def test_a_dark_uint8_image_passes_without_a_warning(predictor, caplog):
    dark = (IMAGE > 200).astype(np.uint8)  # 0s and 1s: valid, only dark
    with caplog.at_level(logging.WARNING):
        predictor(dark)
    assert "255" not in caplog.text, caplog.text


def test_detectron2s_predictor_takes_what_this_one_refuses(predictor):
    """Negative control: DefaultPredictor runs a 0..1 float image and gives an answer without a word."""
    plain = DefaultPredictor.__new__(DefaultPredictor)
    plain.__dict__.update(predictor.__dict__)
    outputs = plain(IMAGE / 255.0)
    assert outputs  # silently an answer
    with pytest.raises(ValueError):
        predictor(IMAGE / 255.0)


def test_each_conversion_is_announced_once(caplog):
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            check_image_input(np.zeros((4, 4, 1), np.uint8), "the test image")
            check_image_input(np.zeros((4, 4, 4), np.uint8), "the test image")
    messages = [r.getMessage() for r in caplog.records]
    assert sum("single-channel" in m for m in messages) <= 1 and sum("alpha" in m for m in messages) <= 1
