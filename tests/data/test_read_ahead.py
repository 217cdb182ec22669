"""Images read ahead in the background (``read_images_ahead``) and ``Predictor.predict_files`` on them: the
same images and predictions as one call per file, in order, unreadable files reported in their place."""
import threading

import cv2
import numpy as np
import pytest
import torch

from ccnet_d2 import Predictor
from ccnet_d2.data import image_files
from tests.common import TOY_SEMANTIC_CONFIG, build_cfg


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a.png", "c.jpg", "d.png"):
        cv2.imwrite(str(tmp_path / name), rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8))
    (tmp_path / "b.png").write_bytes(b"not a png")
    return tmp_path


def test_images_come_in_order_from_a_background_thread(folder, monkeypatch):
    paths = image_files.list_images(str(folder))
    readers = []
    read = image_files.read_image_bgr

    def recording_read(path):
        readers.append(threading.current_thread().name)
        return read(path)

    monkeypatch.setattr(image_files, "read_image_bgr", recording_read)
    results = list(image_files.read_images_ahead(paths, ahead=2))
    assert [r[0] for r in results] == paths
    for path, image, error in results:
        if path.endswith("b.png"):
            assert image is None and "b.png" in error and "cannot be decoded" in error
        else:
            assert error is None and np.array_equal(image, read(path))
    assert len(readers) == 4 and all(name.startswith("image-reader") for name in readers), readers
    with pytest.raises(ValueError, match="ahead must be >= 1"):
        next(image_files.read_images_ahead(paths, ahead=0))


def test_predict_files_equals_one_call_per_image(folder):
    torch.manual_seed(0)
    predictor = Predictor(build_cfg(TOY_SEMANTIC_CONFIG, "MODEL.WEIGHTS", ""))
    paths = image_files.list_images(str(folder))
    results = list(predictor.predict_files(paths))
    assert [r.path for r in results] == paths
    for result in results:
        if result.path.endswith("b.png"):
            assert result.image is None and result.outputs is None and "b.png" in result.error
            continue
        expected = predictor(image_files.read_image_bgr(result.path))["sem_seg"]
        assert result.error is None and torch.equal(result.outputs["sem_seg"], expected)
