"""The test-time resize, Detectron2's or the publisher's (``INPUT.TEST_RESIZE_BACKEND``).

``"pil"`` (default): Detectron2's ``ResizeShortestEdge(INPUT.MIN_SIZE_TEST, INPUT.MAX_SIZE_TEST)``,
which resizes with PIL. ``"cv2"``: mmsegmentation's test resize (``Resize(keep_ratio=True)``, i.e.
mmcv's ``imrescale``): the factor ``min(MAX_SIZE_TEST / long side, MIN_SIZE_TEST / short side)``, each
side ``int(side * factor + 0.5)``, OpenCV's bilinear ``cv2.resize``. The two libraries round their
bilinear weights differently (PIL also smooths when it shrinks), so an upscaled image differs by a
grey level on many pixels, enough to move predictions; a checkpoint published by mmsegmentation is
evaluated as its publisher evaluates it with ``"cv2"``, which the ``*_mmseg_*`` configs set.
"""
import cv2
import numpy as np
from detectron2.data import transforms as T

__all__ = ["TEST_RESIZE_BACKENDS", "OpenCVRescale", "OpenCVResizeTransform", "build_test_resize"]

TEST_RESIZE_BACKENDS = ("pil", "cv2")


class OpenCVResizeTransform(T.Transform):
    """Resize ``h x w`` to ``new_h x new_w`` with OpenCV: bilinear images, nearest-neighbour labels."""

    def __init__(self, h: int, w: int, new_h: int, new_w: int):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        if (self.new_h, self.new_w) == img.shape[:2]:
            return img
        return cv2.resize(np.ascontiguousarray(img), (self.new_w, self.new_h), interpolation=cv2.INTER_LINEAR)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return cv2.resize(np.ascontiguousarray(segmentation), (self.new_w, self.new_h), interpolation=cv2.INTER_NEAREST)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords[:, 0] = coords[:, 0] * (self.new_w / self.w)
        coords[:, 1] = coords[:, 1] * (self.new_h / self.h)
        return coords

    def inverse(self) -> T.Transform:
        return OpenCVResizeTransform(self.new_h, self.new_w, self.h, self.w)


class OpenCVRescale(T.Augmentation):
    """mmcv's keep-ratio rescale: the largest size with the short side at most ``short_edge`` and the long
    side at most ``long_edge``, resized by :class:`OpenCVResizeTransform`."""

    def __init__(self, short_edge: int, long_edge: int):
        super().__init__()
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> T.Transform:
        h, w = image.shape[:2]
        factor = min(self.long_edge / max(h, w), self.short_edge / min(h, w))
        return OpenCVResizeTransform(h, w, int(h * factor + 0.5), int(w * factor + 0.5))


def build_test_resize(cfg) -> T.Augmentation:
    """The test-time resize of ``cfg`` (``INPUT.TEST_RESIZE_BACKEND``, ``INPUT.MIN_SIZE_TEST``, ``MAX_SIZE_TEST``)."""
    backend = cfg.INPUT.TEST_RESIZE_BACKEND
    if backend == "pil":
        return T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
    if backend == "cv2":
        return OpenCVRescale(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)
    raise ValueError(f"INPUT.TEST_RESIZE_BACKEND must be one of {TEST_RESIZE_BACKENDS}, got {backend!r}")
