"""Reading images for inference tools: one file as DefaultPredictor's input, or every image of a folder; the
full decode that finds truncated files (shared with the dataset scan); a background reader that decodes the
next images of a list while the model runs on the current one."""
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

__all__ = ["IMAGE_EXTENSIONS", "decoded_size", "read_image_bgr", "list_images", "read_images_ahead"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def decoded_size(path: str):
    """The (width, height) of a fully decoded image; a ValueError naming the file when it cannot be decoded.
    (OpenCV decodes a truncated JPEG without an error, filling the missing part with grey.)"""
    try:
        with Image.open(path) as image:
            image.load()  # the header alone would pass a truncated file
            return image.size
    except Exception as e:
        raise ValueError(f"image {path!r} cannot be decoded ({type(e).__name__}: {e})") from e


def read_image_bgr(path: str) -> np.ndarray:
    """Read an image as HxWx3 uint8 BGR (DefaultPredictor's input); a clear error when it can't be read,
    a truncated file included."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such image file: {path!r}")
    decoded_size(path)
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


def read_images_ahead(paths: Sequence[str], ahead: int = 2) -> Iterator[Tuple[str, Optional[np.ndarray], Optional[str]]]:
    """``(path, image, None)`` for each readable file of ``paths`` in order, ``(path, None, why)`` for one that
    cannot be read; up to ``ahead`` files are read and decoded in a background thread while the caller works
    on the current one (OpenCV and PIL release the GIL while decoding)."""
    if ahead < 1:
        raise ValueError(f"read_images_ahead: ahead must be >= 1, got {ahead}")

    def read(path):
        try:
            return path, read_image_bgr(path), None
        except (FileNotFoundError, ValueError) as e:
            return path, None, str(e)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-reader") as pool:
        pending = [pool.submit(read, p) for p in paths[:ahead]]
        for index in range(len(paths)):
            result = pending.pop(0).result()
            if index + ahead < len(paths):
                pending.append(pool.submit(read, paths[index + ahead]))
            yield result
