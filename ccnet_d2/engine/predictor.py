"""Predictor: Detectron2's DefaultPredictor with its input checked (``ccnet_d2.data.image_input``), and
predictions over a list of image files read ahead in the background."""
from typing import Iterator, NamedTuple, Optional, Sequence

import numpy as np
from detectron2.engine import DefaultPredictor

from ..data.image_files import read_images_ahead
from ..data.image_input import check_image_input
from ..data.test_resize import build_test_resize
from .trainer import check_device

__all__ = ["Predictor", "FilePrediction"]


class FilePrediction(NamedTuple):
    """One file of ``Predictor.predict_files``: the image and the predictor's outputs, or why the file could
    not be read (``image`` and ``outputs`` None)."""
    path: str
    image: Optional[np.ndarray]
    outputs: Optional[dict]
    error: Optional[str] = None


class Predictor(DefaultPredictor):
    """``DefaultPredictor`` (same construction from a config, same call, same outputs) for any model of the
    project, refusing or converting what DefaultPredictor would take silently or fail on deep inside: a
    missing image (None), a float image scaled to 0..1, channels first, 16-bit values, an empty array;
    grey and 4-channel images are converted. The image is ``HxWx3`` in BGR order, as ``cv2.imread`` gives."""

    def __init__(self, cfg):
        check_device(cfg)
        super().__init__(cfg)
        self.aug = build_test_resize(cfg)  # INPUT.TEST_RESIZE_BACKEND: Detectron2's resize or the publisher's

    def __call__(self, original_image: np.ndarray):
        return super().__call__(check_image_input(original_image))

    def predict_files(self, paths: Sequence[str], ahead: int = 2) -> Iterator[FilePrediction]:
        """The predictions for image files, in order; the next ``ahead`` files are read and decoded in a
        background thread while the model runs, so that decoding does not add to the time per image."""
        for path, image, error in read_images_ahead(paths, ahead):
            yield FilePrediction(path, image, None if image is None else self(image), error)
