"""INPUT.TEST_RESIZE_BACKEND "cv2" resizes test images exactly as mmsegmentation's test pipeline does
(mmcv's keep-ratio rescale with OpenCV, re-derived here from its definition), in the predictor, the
test loader and the export preprocessing; Detectron2's PIL resize, the default, gives other pixels."""
import cv2
import numpy as np
import pytest
import torch

from ccnet_d2 import Predictor
from ccnet_d2.data import build_test_resize
from ccnet_d2.export import preprocess
from tests.common import build_cfg, config_path

MMSEG_CONFIGS = {
    "cityscapes_769": "Cityscapes-SemanticSegmentation/ccnet_R_50_mmseg_769x769_cityscapes.yaml",
    "cityscapes_512": "Cityscapes-SemanticSegmentation/ccnet_R_101_mmseg_512x1024_cityscapes.yaml",
    "ade20k": "ADE20K-SemanticSegmentation/ccnet_R_101_mmseg_512x512_ade20k.yaml",
    "voc": "PascalVOC-SemanticSegmentation/ccnet_R_50_mmseg_512x512_voc12aug.yaml",
}
# mmsegmentation's test img_scale (long, short) of each family.
MMSEG_SCALES = {"cityscapes_769": (2049, 1025), "cityscapes_512": (2048, 1024), "ade20k": (2048, 512),
                "voc": (2048, 512)}
SIZES = [(512, 1024), (1024, 2048), (375, 500), (333, 500), (500, 281), (97, 131)]


def mmcv_imrescale(image, scale):
    """mmcv.imrescale(image, scale, interpolation="bilinear", backend="cv2"), from its definition."""
    h, w = image.shape[:2]
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    size = int(w * float(factor) + 0.5), int(h * float(factor) + 0.5)
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def _image(size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


@pytest.mark.parametrize("family", sorted(MMSEG_CONFIGS))
def test_the_mmseg_configs_resize_as_mmsegmentation(family):
    cfg = build_cfg(config_path(MMSEG_CONFIGS[family]))
    assert cfg.INPUT.TEST_RESIZE_BACKEND == "cv2"
    resize = build_test_resize(cfg)
    for size in SIZES:
        image = _image(size)
        np.testing.assert_array_equal(resize.get_transform(image).apply_image(image),
                                      mmcv_imrescale(image, MMSEG_SCALES[family]), err_msg=str(size))


def test_detectron2s_resize_differs_from_the_publishers():
    """Negative control: same sizes, other pixels (the reason for the key)."""
    cfg = build_cfg(config_path(MMSEG_CONFIGS["cityscapes_512"]), "INPUT.TEST_RESIZE_BACKEND", "pil")
    image = _image((512, 1024))
    ours = build_test_resize(cfg).get_transform(image).apply_image(image)
    theirs = mmcv_imrescale(image, MMSEG_SCALES["cityscapes_512"])
    assert ours.shape == theirs.shape and (ours != theirs).any(axis=2).mean() > 0.1


def _narrow_mmseg_cfg(*overrides):
    return build_cfg(config_path(MMSEG_CONFIGS["voc"]), "MODEL.DEVICE", "cpu", "MODEL.RESNETS.NORM", "BN",
                     "MODEL.SEM_SEG_HEAD.NORM", "BN", "MODEL.RESNETS.STEM_OUT_CHANNELS", "8",
                     "MODEL.RESNETS.RES2_OUT_CHANNELS", "32", "MODEL.RESNETS.WIDTH_PER_GROUP", "8",
                     "MODEL.SEM_SEG_HEAD.CONVS_DIM", "16", "MODEL.SEM_SEG_HEAD.AUX_CONVS_DIM", "8",
                     "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "256", *overrides)


def test_predictor_and_export_preprocessing_segment_the_publishers_resized_image():
    cfg = _narrow_mmseg_cfg()
    predictor = Predictor(cfg)
    image = _image((41, 57), seed=3)  # BGR; the config is RGB
    rgb_resized = mmcv_imrescale(image[:, :, ::-1], (256, 64))
    np.testing.assert_array_equal(preprocess(image, cfg), rgb_resized.transpose(2, 0, 1).astype(np.float32))
    with torch.no_grad():
        expected = predictor.model([{"image": torch.as_tensor(rgb_resized.transpose(2, 0, 1).copy()),
                                     "height": 41, "width": 57}])[0]["sem_seg"]
    torch.testing.assert_close(predictor(image)["sem_seg"], expected, rtol=0, atol=0)


def test_the_test_loader_resizes_with_the_configured_backend(tmp_path):
    from ccnet_d2.data.datasets.toy import toy_root
    from ccnet_d2.engine import Trainer

    cfg = build_cfg(config_path("Toy-SemanticSegmentation/ccnet_R_50_narrow_os8_r2_toy.yaml"), "MODEL.DEVICE", "cpu",
                    "INPUT.TEST_RESIZE_BACKEND", "cv2", "INPUT.MIN_SIZE_TEST", "150", "INPUT.MAX_SIZE_TEST", "400",
                    "DATALOADER.NUM_WORKERS", "0")
    toy_root()
    batch = next(iter(Trainer.build_test_loader(cfg, cfg.DATASETS.TEST[0])))[0]
    image = cv2.imread(batch["file_name"])
    if cfg.INPUT.FORMAT == "RGB":
        image = np.ascontiguousarray(image[:, :, ::-1])
    np.testing.assert_array_equal(batch["image"].numpy().transpose(1, 2, 0), mmcv_imrescale(image, (400, 150)))


def test_an_unknown_backend_names_the_key():
    with pytest.raises(ValueError, match="INPUT.TEST_RESIZE_BACKEND must be one of"):
        build_test_resize(_narrow_mmseg_cfg("INPUT.TEST_RESIZE_BACKEND", "torch"))
