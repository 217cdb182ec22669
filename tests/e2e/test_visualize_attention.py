"""``tools/visualize_attention.py`` on the toy CCNet config (random weights): it writes the three-panel
PNG and grid maps that are one pixel's R=1 cross and its R=2 full-image reach."""
import logging

import cv2
import numpy as np
import pytest
import torch

from tests.common import TOY_SEMANTIC_CONFIG as TOY_CONFIG, load_tool

pytestmark = pytest.mark.slow

HEIGHT, WIDTH = 100, 140  # resized by the toy test resize (shortest edge 128, longest 128) to 91x128


@pytest.fixture(scope="module")
def tool():
    return load_tool("visualize_attention")


def _image(path):
    image = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
    cv2.rectangle(image, (10, 10), (60, 50), (0, 0, 255), -1)
    cv2.circle(image, (100, 70), 20, (255, 0, 0), -1)
    cv2.imwrite(str(path), image)


def test_writes_the_figure_and_the_r1_r2_maps(tmp_path, tool, caplog):
    _image(tmp_path / "in.png")
    output, maps = tmp_path / "attention.png", tmp_path / "maps.npz"
    torch.manual_seed(0)  # the random initialisation of the model the tool builds
    with caplog.at_level(logging.WARNING):
        assert tool.main(["--config-file", TOY_CONFIG, "--input", str(tmp_path / "in.png"), "--pixel", "30", "35",
                          "--output", str(output), "--save-maps", str(maps), "--opts", "MODEL.DEVICE", "cpu"]) == 0
    assert "RANDOMLY INITIALISED" in caplog.text

    figure = cv2.imread(str(output))
    assert figure.shape == (HEIGHT + 24, 3 * WIDTH, 3)  # title banner; image | R=1 | R=2
    result = np.load(maps)
    # grid: 91x128 resized image at stride 8 -> 12x16 cells; pixel (30, 35) -> resized (27, 32) -> cell (3, 4)
    assert result["loop1"].shape == result["loop2"].shape == (12, 16)
    assert tuple(result["cell"]) == (3, 4) and int(result["stride"]) == 8 and int(result["loops"]) == 2
    cy, cx = result["cell"]
    off_cross = np.ones((12, 16), bool)
    off_cross[cy, :] = off_cross[:, cx] = False
    assert np.isclose(result["loop1"].sum(), 1.0, atol=1e-5) and np.isclose(result["loop2"].sum(), 1.0, atol=1e-5)
    # Loop 1 lives on the pixel's cross only; loop 2 reaches beyond it. (Untrained projections give
    # peaked softmaxes, so single weights may underflow to 0 in float32: the test asks for the structure,
    # and tests/layers/test_attention_maps.py checks the values against reference loops.)
    assert (result["loop1"][off_cross] == 0).all() and np.isclose(result["loop1"][~off_cross].sum(), 1.0, atol=1e-5)
    assert result["loop2"][off_cross].sum() > 1e-3


def test_rejects_a_pixel_outside_the_image(tmp_path, tool):
    _image(tmp_path / "in.png")
    with pytest.raises(ValueError, match="outside the 100x140 image"):
        tool.main(["--config-file", TOY_CONFIG, "--input", str(tmp_path / "in.png"), "--pixel", "100", "5",
                   "--output", str(tmp_path / "out.png"), "--opts", "MODEL.DEVICE", "cpu"])
