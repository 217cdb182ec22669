"""CCNetVideoSegmentor: CCNet for video (the TPAMI paper's CamVid model) as a CCNetSegmentor subclass."""
from typing import Dict

import torch

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY

from ..heads import CCNetVideoHead
from .ccnet_segmentor import CCNetSegmentor

__all__ = ["CCNetVideoSegmentor"]


@META_ARCH_REGISTRY.register()
class CCNetVideoSegmentor(CCNetSegmentor):
    """Per-frame dilated ResNet features, RCCA3d over a clip of T frames, the CCNet head on the centre
    frame: it predicts the centre frame of each clip (the labelled one when training).

    Each batched input holds ``"frames"``: a [T, 3, H, W] clip (T odd, values 0..255, the predicted
    frame in the centre), as ``ClipDatasetMapper`` and ``ClipPredictor`` give, or only ``"image"``
    [3, H, W], which is a clip of one frame (T = 1): DefaultPredictor works unchanged. Results, the
    inference modes and ``pad_to_stride`` are those of CCNetSegmentor; the frames of a clip go through
    them stacked along the channels, so every frame is resized, cropped and flipped alike.
    """

    takes_clips = True  # the data loaders give it ClipDatasetMapper's clips

    @configurable
    def __init__(self, **kwargs):
        """kwargs: CCNetSegmentor's; the head must be a CCNetVideoHead."""
        super().__init__(**kwargs)
        if not isinstance(self.sem_seg_head, CCNetVideoHead):
            raise ValueError(f"CCNetVideoSegmentor needs MODEL.SEM_SEG_HEAD.NAME 'CCNetVideoHead', got a "
                             f"{type(self.sem_seg_head).__name__}")

    def normalized_input(self, inputs: Dict, index: int) -> torch.Tensor:
        """The normalised clip [T * 3, H, W] (frames stacked along the channels)."""
        if "frames" not in inputs:
            return super().normalized_input(inputs, index)
        frames = inputs["frames"]
        if frames.dim() != 4 or frames.shape[0] % 2 == 0:
            raise ValueError(f"CCNetVideoSegmentor: input {index} has 'frames' of shape {tuple(frames.shape)}; "
                             "expected [T, 3, H, W] with an odd T, the predicted frame in the centre")
        for frame in frames:
            self.check_image(frame, index)
        return ((frames.to(self.device) - self.pixel_mean) / self.pixel_std).flatten(0, 1)

    def features(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Backbone features of every frame of [N, T * 3, H, W] clips: the head's input feature as
        [N, C, T, h, w] clips, every other feature as the centre frame's [N, C, h, w]."""
        n, stacked, height, width = images.shape
        channels = self.pixel_mean.shape[0]
        length = stacked // channels
        features = self.backbone(images.reshape(n * length, channels, height, width))
        clips = {name: f.view(n, length, *f.shape[1:]).transpose(1, 2) for name, f in features.items()}
        return {name: clip if name == self.sem_seg_head.in_feature else clip[:, :, length // 2]
                for name, clip in clips.items()}
