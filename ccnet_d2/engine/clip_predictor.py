"""ClipPredictor: the Predictor of the video model, predicting the centre frame of a clip."""
from typing import Sequence

import numpy as np
import torch

from ..data.image_input import check_image_input
from .predictor import Predictor

__all__ = ["ClipPredictor"]


class ClipPredictor(Predictor):
    """Built like DefaultPredictor (config, weights, test resize, input format); called with a clip,
    a list of ``INPUT.CLIP_LENGTH`` HxWx3 BGR frames of one size in time order (each checked as
    :class:`Predictor` checks an image), it returns the model's output for the centre frame:
    ``{"sem_seg": K x H x W logits}`` at the frames' size. Every frame gets the same resize. Give frames
    as far apart as in training (``INPUT.CLIP_FRAME_STEP``)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.clip_length = cfg.INPUT.CLIP_LENGTH

    def __call__(self, frames: Sequence[np.ndarray]):
        if isinstance(frames, np.ndarray) and frames.ndim != 4:
            raise ValueError(f"ClipPredictor: got one array of shape {frames.shape}; expected a clip, a list of "
                             f"{self.clip_length} HxWx3 frames (INPUT.CLIP_LENGTH), or a [T, H, W, 3] array")
        if len(frames) != self.clip_length:
            raise ValueError(f"ClipPredictor: got a clip of {len(frames)} frames; this model takes clips of "
                             f"INPUT.CLIP_LENGTH = {self.clip_length} (the predicted frame in the centre)")
        frames = [check_image_input(f, f"frame {i} of the clip") for i, f in enumerate(frames)]
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise ValueError(f"ClipPredictor: the frames of a clip must have one size, got shapes {sorted(shapes)}")
        with torch.no_grad():
            if self.input_format == "RGB":
                frames = [f[:, :, ::-1] for f in frames]
            height, width = frames[0].shape[:2]
            transform = self.aug.get_transform(frames[0])
            clip = torch.stack([torch.as_tensor(transform.apply_image(f).astype("float32").transpose(2, 0, 1))
                                for f in frames])
            return self.model([{"frames": clip, "height": height, "width": width}])[0]
