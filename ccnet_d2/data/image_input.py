"""``check_image_input``: the one check of an image handed to a model for inference (``Predictor``,
``ClipPredictor``, ``tools/demo.py``, the deployment pre-processing and the export tool's sample).

Detectron2's ``DefaultPredictor`` takes an ``HxWx3`` array of 0..255 values and checks nothing: a float
image scaled to 0..1 gives no detections and no word, and other inputs (a grey 2-D array, a ``[3, H, W]``
array, ``None`` from ``cv2.imread`` of a missing file) fail deep inside NumPy or torch. Here every input is
either converted without loss of meaning (grey to three channels, an alpha channel dropped, integers within
0..255 to ``uint8``), with a warning the first time, or refused with what was passed and what is expected.
The value-range checks never look at a ``uint8`` image, however dark it is.
"""
import logging

import numpy as np

__all__ = ["check_image_input"]

_logger = logging.getLogger(__name__)
_warned = set()
_EXPECTED = "expected an HxWx3 numpy array of 0..255 values (uint8, as cv2.imread gives, or float)"


def _warn_once(kind: str, message: str) -> None:
    if kind not in _warned:
        _warned.add(kind)
        _logger.warning(message)


def _refuse(what: str, passed: str, advice: str = "") -> ValueError:
    return ValueError(f"{what} is {passed}; {_EXPECTED}{'. ' + advice if advice else ''}")


def _as_three_channels(image: np.ndarray, what: str) -> np.ndarray:
    if image.ndim == 2:
        _warn_once("grey", f"{what} is a single-channel (grey) image: its channel is repeated three times")
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3:
        raise _refuse(what, f"an array of shape {image.shape}")
    channels = image.shape[2]
    if channels == 3:
        return image
    if channels == 1:
        _warn_once("grey", f"{what} is a single-channel (grey) image: its channel is repeated three times")
        return np.repeat(image, 3, axis=2)
    if channels == 4:
        _warn_once("alpha", f"{what} has 4 channels: the 4th (alpha) is dropped")
        return image[:, :, :3]
    if image.shape[0] in (1, 3, 4):
        raise _refuse(what, f"an array of shape {image.shape}, channels first",
                      "Move the channels last: image.transpose(1, 2, 0)")
    raise _refuse(what, f"an array of shape {image.shape} ({channels} channels)")


def _check_values(image: np.ndarray, what: str) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.bool_ or not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise _refuse(what, f"an array of dtype {image.dtype}")
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise _refuse(what, f"a {image.dtype} array holding NaN or infinite values")
    low, high = image.min(), image.max()
    if low < 0 or high > 255:
        advice = ("A 16-bit image must be brought to 8 bits first, e.g. (image // 257).astype(np.uint8) for the "
                  "full 16-bit range" if np.issubdtype(image.dtype, np.integer) else
                  "Rescale it to 0..255 (for values normalised by a mean and std, undo the normalisation: the "
                  "model normalises with MODEL.PIXEL_MEAN and PIXEL_STD itself)")
        raise _refuse(what, f"a {image.dtype} array with values from {low:g} to {high:g}", advice)
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.uint8)
    if high <= 1 and (image != np.round(image)).any():
        raise _refuse(what, f"a {image.dtype} array with values from {low:g} to {high:g}, scaled to 0..1",
                      "Multiply it by 255")
    return image.astype(np.float32, copy=False)


def check_image_input(image, what: str = "the image") -> np.ndarray:
    """``image`` as an ``HxWx3`` ``uint8`` or ``float32`` array of 0..255 values, in its own channel order;
    ``ValueError`` naming ``what`` and what it is when it cannot be one. Converted, with a warning the
    first time: grey (``HxW``, ``HxWx1``) to three channels, ``HxWx4`` without its alpha channel, integer
    arrays within 0..255 to ``uint8``, float64 to float32."""
    if image is None:
        raise _refuse(what, "None", "cv2.imread returns None for a file it cannot read: check the path")
    if not isinstance(image, np.ndarray):
        advice = ("For a [3, H, W] tensor: tensor.permute(1, 2, 0).cpu().numpy()" if type(image).__name__ == "Tensor"
                  else "For a PIL image: np.asarray(image)[:, :, ::-1] gives BGR")
        raise _refuse(what, f"a {type(image).__module__}.{type(image).__name__}", advice)
    image = _as_three_channels(image, what)
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise _refuse(what, f"an empty array of shape {image.shape}")
    return np.ascontiguousarray(_check_values(image, what))
