"""Draw a model's predictions with Detectron2's Visualizer, for ``tools/demo.py`` and the main job.

Works for any config of the project: instance models (``"instances"``) and semantic-segmentation
models (``"sem_seg"``, drawn as its per-pixel argmax).
"""
import os

import cv2
import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.utils.visualizer import ColorMode, Visualizer

__all__ = ["IMAGE_EXTENSIONS", "read_image_bgr", "draw_predictions", "list_images"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_image_bgr(path: str) -> np.ndarray:
    """Read an image as HxWx3 uint8 BGR (DefaultPredictor's input); a clear error when it can't be read."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such image file: {path!r}")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read {path!r} as an image (OpenCV decodes {', '.join(IMAGE_EXTENSIONS)}; "
                         "is the file corrupt or of another type?)")
    return image


def list_images(folder: str):
    """The image files of ``folder`` (by extension, sorted); an error when there are none."""
    paths = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {folder!r}")
    return paths


def draw_predictions(image_bgr: np.ndarray, predictions: dict, metadata_name: str, scale: float = 1.0) -> np.ndarray:
    """Return ``image_bgr`` with the predictions of one image drawn on it (BGR, ``scale`` times its size;
    scale > 1 keeps labels readable on small images)."""
    metadata = MetadataCatalog.get(metadata_name)
    visualizer = Visualizer(image_bgr[:, :, ::-1], metadata, scale=scale, instance_mode=ColorMode.IMAGE)
    if "instances" in predictions:
        drawn = visualizer.draw_instance_predictions(predictions["instances"].to("cpu"))
    elif "sem_seg" in predictions:
        drawn = visualizer.draw_sem_seg(predictions["sem_seg"].argmax(dim=0).to("cpu"))
    else:
        raise ValueError(f"cannot draw predictions with keys {sorted(predictions)}: expected 'instances' "
                         "or 'sem_seg'")
    return drawn.get_image()[:, :, ::-1]
