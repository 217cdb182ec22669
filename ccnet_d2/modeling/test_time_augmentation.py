"""Test-time inference for semantic segmentation (sliding window, multi-scale, flip), as pure
functions of a ``logits_fn``.

``logits_fn(images [N, C, h, w]) -> logits [N, K, h, w]`` is any function returning class logits at
its input's resolution (CCNetSegmentor passes its backbone + head). On top of it:

- ``sliding_window_logits``: overlapping crops (the official CCNet evaluation: 769x769 crops, stride
  513), logits averaged where crops overlap;
- ``flip_logits``: logits of the horizontally flipped image, flipped back, with the (left, right)
  class channels swapped back (human parsing: left/right arm, leg, shoe);
- ``multi_scale_logits``: the image resized by each scale (and flipped), logits resized back to the
  input and averaged, as the official ``predict_multiscale`` does.
"""
from typing import Callable, Sequence, Tuple

import torch
from torch.nn import functional as F

__all__ = ["sliding_window_logits", "flip_logits", "multi_scale_logits", "swap_channels", "window_starts"]

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def window_starts(size: int, crop: int, stride: int) -> list:
    """Start offsets of crops of length ``crop`` every ``stride`` along ``size``; the last crop is
    shifted to end at the border, and a size smaller than the crop gives one crop at 0."""
    if crop <= 0 or stride <= 0:
        raise ValueError(f"sliding window: crop and stride must be positive, got {crop} and {stride}")
    if size <= crop:
        return [0]
    count = -(-(size - crop) // stride) + 1  # ceil division
    return [min(i * stride, size - crop) for i in range(count)]


def sliding_window_logits(images: torch.Tensor, logits_fn: LogitsFn, crop_size: Tuple[int, int],
                          stride: Tuple[int, int]) -> torch.Tensor:
    """Logits [N, K, H, W] averaged over overlapping crops of ``crop_size`` every ``stride``.

    Crops are clipped to the image (an image smaller than the crop is run whole), so every pixel is
    covered and no padding enters the network beyond what ``logits_fn`` itself adds.
    """
    _, _, height, width = images.shape
    total = counts = None
    for top in window_starts(height, crop_size[0], stride[0]):
        for left in window_starts(width, crop_size[1], stride[1]):
            bottom, right = min(top + crop_size[0], height), min(left + crop_size[1], width)
            logits = logits_fn(images[:, :, top:bottom, left:right])
            if total is None:
                total = logits.new_zeros(logits.shape[:2] + (height, width))
                counts = logits.new_zeros(1, 1, height, width)
            total[:, :, top:bottom, left:right] += logits
            counts[:, :, top:bottom, left:right] += 1
    return total / counts


def swap_channels(logits: torch.Tensor, flip_pairs: Sequence[Tuple[int, int]]) -> torch.Tensor:
    """Exchange the class channels of each (left, right) pair."""
    if not flip_pairs:
        return logits
    permutation = list(range(logits.shape[1]))
    for left, right in flip_pairs:
        if not (0 <= left < len(permutation) and 0 <= right < len(permutation)):
            raise ValueError(f"flip pair ({left}, {right}) is outside the {len(permutation)} classes")
        permutation[left], permutation[right] = right, left
    return logits[:, permutation]


def flip_logits(images: torch.Tensor, logits_fn: LogitsFn, flip_pairs: Sequence[Tuple[int, int]] = ()) -> torch.Tensor:
    """Logits of the mirrored image mapped back onto the original: flipped along W, and the left/right
    class channels swapped (a left arm seen in the mirror is predicted as a right arm)."""
    return swap_channels(logits_fn(images.flip(-1)).flip(-1), flip_pairs)


def multi_scale_logits(images: torch.Tensor, logits_fn: LogitsFn, scales: Sequence[float] = (1.0,),
                       flip: bool = False, flip_pairs: Sequence[Tuple[int, int]] = ()) -> torch.Tensor:
    """Average of the logits at every scale (and of the flipped image when ``flip``), each resized
    bilinearly back to the input size."""
    if not scales:
        raise ValueError("multi_scale_logits: at least one scale is needed")
    size = images.shape[-2:]
    total, runs = 0.0, 0
    for scale in scales:
        scaled = images if scale == 1.0 else F.interpolate(images, scale_factor=scale, mode="bilinear",
                                                           align_corners=False)
        outputs = [logits_fn(scaled)]
        if flip:
            outputs.append(flip_logits(scaled, logits_fn, flip_pairs))
        for logits in outputs:
            if logits.shape[-2:] != size:
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            total = total + logits
            runs += 1
    return total / runs
