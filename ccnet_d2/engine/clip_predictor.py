"""ClipPredictor: DefaultPredictor for the video model, predicting the centre frame of a clip."""
from typing import Sequence

import numpy as np
import torch

from detectron2.engine import DefaultPredictor

__all__ = ["ClipPredictor"]


class ClipPredictor(DefaultPredictor):
    """Built like DefaultPredictor (config, weights, test resize, input format); called with a clip,
    a list of T (odd) HxWx3 BGR frames of one size in time order, it returns the model's output for the
    centre frame: ``{"sem_seg": K x H x W logits}`` at the frames' size. Every frame gets the same
    resize. Use the clip length the model was trained with (``cfg.INPUT.CLIP_LENGTH``) and frames as
    far apart as in training (``INPUT.CLIP_FRAME_STEP``)."""

    def __call__(self, frames: Sequence[np.ndarray]):
        if len(frames) % 2 == 0:
            raise ValueError(f"ClipPredictor: a clip needs an odd number of frames (the predicted one in the centre), "
                             f"got {len(frames)}")
        shapes = {tuple(f.shape) for f in frames}
        if len(shapes) != 1 or len(next(iter(shapes))) != 3:
            raise ValueError(f"ClipPredictor: the frames must be HxWx3 images of one size, got shapes {sorted(shapes)}")
        with torch.no_grad():
            if self.input_format == "RGB":
                frames = [f[:, :, ::-1] for f in frames]
            height, width = frames[0].shape[:2]
            transform = self.aug.get_transform(frames[0])
            clip = torch.stack([torch.as_tensor(transform.apply_image(f).astype("float32").transpose(2, 0, 1))
                                for f in frames])
            return self.model([{"frames": clip, "height": height, "width": width}])[0]
