"""docs/DEPLOYMENT.md's "Running the files", run as written: for each model family and for a BGR and an RGB
config, the toy model (random weights, attention on) is exported with tools/export_model.py, then the
doc's code blocks run on an image of another size (and aspect) than the traced one, and their result
equals ``ccnet_d2.Predictor``'s. A negative control feeds the unresized image, as the doc once did."""
import os
import re

import cv2
import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer

from ccnet_d2 import Predictor
from tests.common import REPO_ROOT, TOY_INSTANCE_CONFIG, TOY_PANOPTIC_CONFIG, TOY_SEMANTIC_CONFIG, build_cfg, load_tool
from tests.export.seeded import seeded_model

pytestmark = pytest.mark.slow

IMAGE_SIZE = (150, 110)  # the traced samples are 64x96 (semantic) and 96x64 (instance); the configs resize to 128 / 192


def _doc_blocks():
    with open(os.path.join(REPO_ROOT, "docs", "DEPLOYMENT.md")) as f:
        text = f.read()
    section = text.split("## Running the files", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def _config(tmp_path, base, input_format, extra=""):
    """A user's config: the toy config with INPUT.FORMAT set (the toy ones are BGR)."""
    path = tmp_path / f"config_{input_format}.yaml"
    path.write_text(f'_BASE_: "{base}"\nINPUT:\n  FORMAT: "{input_format}"\nMODEL:\n  DEVICE: "cpu"\n'
                    '  ROI_HEADS:\n    SCORE_THRESH_TEST: 0.05\n' + extra)
    return str(path)


def _export(tmp_path, config, model, formats, size):
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("seeded")
    for export_format in formats:
        load_tool("export_model").main(["--config-file", config, "--format", export_format, "--output",
                                        str(tmp_path / "export"), "--size", *map(str, size),
                                        "MODEL.WEIGHTS", str(tmp_path / "seeded.pth")])
    return str(tmp_path / "seeded.pth")


def _run_doc(tmp_path, config, image_file, blocks, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"config_file": config, "image_file": image_file}
    for block in blocks:
        exec(compile(block, "docs/DEPLOYMENT.md", "exec"), namespace)
    return namespace


@pytest.fixture
def image_file(tmp_path):
    image = np.random.RandomState(5).randint(0, 256, (*IMAGE_SIZE, 3), dtype=np.uint8)
    image[20:90, 10:70] = (40, 200, 90)  # something for the detector to find
    path = str(tmp_path / "photo.png")
    cv2.imwrite(path, image)
    return path


def test_the_doc_has_the_blocks_this_test_runs():
    blocks = _doc_blocks()
    assert len(blocks) == 5 and "preprocess(image_bgr, cfg)" in blocks[0]
    assert "semantic_postprocess" in blocks[1] and "instance_postprocess" in blocks[2]
    assert "panoptic_postprocess" in blocks[3] and "model.pt2" in blocks[4]


@pytest.mark.parametrize("input_format", ["BGR", "RGB"])
def test_semantic_recipe_equals_the_predictor(tmp_path, image_file, input_format, monkeypatch):
    config = _config(tmp_path, TOY_SEMANTIC_CONFIG, input_format)
    model = seeded_model(config)
    weights = _export(tmp_path, config, model, ["onnx", "torch-export"], (64, 96))
    setup, semantic, _, _, program = _doc_blocks()
    found = _run_doc(tmp_path, config, image_file, [setup, semantic, program], monkeypatch)

    predictor = Predictor(build_cfg(config, "MODEL.WEIGHTS", weights))
    expected = predictor(cv2.imread(image_file))["sem_seg"]
    assert found["result"]["sem_seg"].shape == expected.shape == (4, *IMAGE_SIZE)
    torch.testing.assert_close(found["result"]["sem_seg"], expected, rtol=0, atol=2e-4)  # float32, another graph
    assert (found["label_map"] == expected.argmax(0)).float().mean() >= 0.999
    # The torch.export program answers at the resized size, as the ONNX file.
    torch.testing.assert_close(found["logits"], torch.as_tensor(found["session"].run(None, {"image": found["inputs"][None]})[0]),
                               rtol=0, atol=2e-4)
    # Negative control: the image as it comes (unresized, BGR) gives other labels.
    raw = cv2.imread(image_file).transpose(2, 0, 1)[None].astype(np.float32)
    unresized = found["semantic_postprocess"](found["session"].run(None, {"image": raw})[0], IMAGE_SIZE, found["cfg"])
    assert (unresized["sem_seg"].argmax(0) == expected.argmax(0)).float().mean() < 0.99


@pytest.mark.parametrize("input_format", ["BGR", "RGB"])
def test_instance_recipe_equals_the_predictor(tmp_path, image_file, input_format, monkeypatch):
    config = _config(tmp_path, TOY_INSTANCE_CONFIG, input_format)
    model = seeded_model(config)
    weights = _export(tmp_path, config, model, ["onnx"], (96, 64))
    setup, _, instance, _, _ = _doc_blocks()
    found = _run_doc(tmp_path, config, image_file, [setup, instance], monkeypatch)

    expected = Predictor(build_cfg(config, "MODEL.WEIGHTS", weights))(cv2.imread(image_file))["instances"]
    got = found["result"]["instances"]
    assert len(expected) >= 3 and got.image_size == expected.image_size == IMAGE_SIZE
    assert torch.equal(got.pred_classes, expected.pred_classes)
    torch.testing.assert_close(got.pred_boxes.tensor, expected.pred_boxes.tensor, rtol=0, atol=0.05)
    torch.testing.assert_close(got.scores, expected.scores, rtol=0, atol=5e-4)
    assert got.pred_masks.shape == expected.pred_masks.shape == (len(expected), *IMAGE_SIZE)
    assert (got.pred_masks == expected.pred_masks).float().mean() >= 0.999


def test_panoptic_recipe_equals_the_predictor(tmp_path, image_file, monkeypatch):
    config = _config(tmp_path, TOY_PANOPTIC_CONFIG, "BGR",
                     "  PANOPTIC_FPN:\n    COMBINE:\n      INSTANCES_CONFIDENCE_THRESH: 0.05\n")
    model = seeded_model(config)
    weights = _export(tmp_path, config, model, ["onnx"], (96, 64))
    setup, _, _, panoptic, _ = _doc_blocks()
    found = _run_doc(tmp_path, config, image_file, [setup, panoptic], monkeypatch)

    expected = Predictor(build_cfg(config, "MODEL.WEIGHTS", weights))(cv2.imread(image_file))
    ids, expected_ids = found["segment_ids"], expected["panoptic_seg"][0]
    assert ids.shape == expected_ids.shape == IMAGE_SIZE
    assert any(s["isthing"] for s in expected["panoptic_seg"][1])  # things as well as stuff
    assert [(s["category_id"], s["isthing"]) for s in found["segments"]] == \
        [(s["category_id"], s["isthing"]) for s in expected["panoptic_seg"][1]]
    assert (ids == expected_ids).float().mean() >= 0.995
