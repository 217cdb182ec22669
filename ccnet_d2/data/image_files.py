"""Reading images for inference tools: one file as DefaultPredictor's input, or every image of a folder."""
import os

import cv2
import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "read_image_bgr", "list_images"]

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
