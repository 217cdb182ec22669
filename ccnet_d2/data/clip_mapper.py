"""The clip mapper of the video model: a labelled frame and its neighbours in the video, all with the
same augmentation.

A clip record is a semantic-segmentation record (``file_name``: the labelled frame, ``sem_seg_file_name``)
plus where its video's frames are: ``frames_dir`` (``<frames_dir>/<index:06d>.png``, one file per frame
of the 30 Hz sequence), ``frame_index`` (the labelled frame's index) and ``sequence_frames`` (how many
frames the sequence has, from ``<frames_dir>/frame_count.txt``; None when they are not prepared). CamVid and the toy video dataset register such records.
"""
import os
from typing import Dict, List

import numpy as np
import torch

from PIL import Image

from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.modeling import META_ARCH_REGISTRY

from .augmentations import build_semantic_train_augmentations
from .mappers import CheckedSemSegDatasetMapper

__all__ = ["ClipDatasetMapper", "build_clip_mapper", "clip_frame_files", "frame_file", "check_clip_config"]


def frame_file(frames_dir: str, index: int) -> str:
    """The file of frame ``index`` of a sequence whose frames are in ``frames_dir``."""
    return os.path.join(frames_dir, f"{index:06d}.png")


def check_clip_config(clip_length: int, frame_step: int) -> None:
    """INPUT.CLIP_LENGTH must be odd (the labelled frame in the centre), INPUT.CLIP_FRAME_STEP >= 1."""
    if clip_length < 1 or clip_length % 2 == 0:
        raise ValueError(f"INPUT.CLIP_LENGTH must be an odd number >= 1 (the labelled frame in the centre), "
                         f"got {clip_length}")
    if frame_step < 1:
        raise ValueError(f"INPUT.CLIP_FRAME_STEP must be >= 1, got {frame_step}")


def clip_frame_files(record: Dict, clip_length: int, frame_step: int) -> List[str]:
    """The image files of the clip centred on ``record``'s labelled frame, in time order.

    Frame indices are ``frame_index + k * frame_step`` for k in -(T-1)/2..(T-1)/2, clamped to the
    sequence (near its start or end a clip repeats the first or last frame); the centre is the labelled
    image ``file_name`` itself.
    """
    check_clip_config(clip_length, frame_step)
    half = clip_length // 2
    if half and "frames_dir" not in record:
        raise ValueError(f"INPUT.CLIP_LENGTH is {clip_length}, but the record of {record['file_name']!r} has no "
                         "neighbouring frames ('frames_dir'); its dataset holds single images: use CLIP_LENGTH 1")
    if half and record.get("sequence_frames") is None:
        raise FileNotFoundError(f"INPUT.CLIP_LENGTH is {clip_length}, but the frames of {record['file_name']!r} are not "
                                f"prepared: {os.path.join(record['frames_dir'], 'frame_count.txt')!r} is missing "
                                "(the dataset's frame preparation writes it with the frames; docs/DATASETS.md)")
    files = []
    for k in range(-half, half + 1):
        if k == 0:
            files.append(record["file_name"])
            continue
        index = min(max(record["frame_index"] + k * frame_step, 0), record["sequence_frames"] - 1)
        files.append(record["file_name"] if index == record["frame_index"] else frame_file(record["frames_dir"], index))
    return files


class _RecordingAugmentationList(T.AugmentationList):
    """AugmentationList that keeps the transforms of its last call, to apply them to the other frames."""

    def __call__(self, aug_input):
        self.last_transforms = super().__call__(aug_input)
        return self.last_transforms


class ClipDatasetMapper(CheckedSemSegDatasetMapper):
    """CheckedSemSegDatasetMapper for clips: the labelled frame and its label go through Detectron2's
    DatasetMapper (and the label checks) as usual; the neighbouring frames (``clip_frame_files``) then
    get exactly the transforms drawn for it. Adds ``"frames"``: uint8 [T, 3, H, W] in time order, the
    mapped ``"image"`` in the centre."""

    def __init__(self, cfg, is_train: bool = True, **kwargs):
        super().__init__(cfg, is_train, **kwargs)
        self.clip_length, self.frame_step = cfg.INPUT.CLIP_LENGTH, cfg.INPUT.CLIP_FRAME_STEP
        check_clip_config(self.clip_length, self.frame_step)
        self.augmentations = _RecordingAugmentationList(self.augmentations.augs)

    def __call__(self, dataset_dict):
        files = clip_frame_files(dataset_dict, self.clip_length, self.frame_step)
        mapped = super().__call__(dataset_dict)
        transforms = self.augmentations.last_transforms
        with Image.open(dataset_dict["file_name"]) as image:  # the header only
            width, height = image.size
        frames = []
        for path in files:
            if path == dataset_dict["file_name"]:
                frames.append(mapped["image"])
                continue
            if not os.path.isfile(path):
                raise FileNotFoundError(f"frame {path!r} of the clip around {dataset_dict['file_name']!r} is missing "
                                        f"(INPUT.CLIP_LENGTH {self.clip_length}, CLIP_FRAME_STEP {self.frame_step}); "
                                        "prepare more frames around each labelled one (docs/DATASETS.md)")
            frame = utils.read_image(path, format=self.image_format)
            if frame.shape[:2] != (height, width):
                raise ValueError(f"frame {path!r} is {frame.shape[1]}x{frame.shape[0]} (WxH) but its labelled frame "
                                 f"{dataset_dict['file_name']!r} is {width}x{height}")
            frame = transforms.apply_image(frame)
            frames.append(torch.as_tensor(np.ascontiguousarray(frame.transpose(2, 0, 1))))
        mapped["frames"] = torch.stack(frames)
        return mapped


def build_clip_mapper(cfg, is_train: bool):
    """ClipDatasetMapper for a meta-architecture that takes clips (its class has ``takes_clips = True``,
    as CCNetVideoSegmentor), with the semantic training augmentations when ``is_train``; None for any
    other, which then must keep INPUT.CLIP_LENGTH at 1."""
    name = cfg.MODEL.META_ARCHITECTURE
    if not getattr(META_ARCH_REGISTRY.get(name), "takes_clips", False):
        if cfg.INPUT.CLIP_LENGTH != 1:
            raise ValueError(f"INPUT.CLIP_LENGTH is {cfg.INPUT.CLIP_LENGTH}, but MODEL.META_ARCHITECTURE {name!r} "
                             "takes single images: use CCNetVideoSegmentor or CLIP_LENGTH 1")
        return None
    if is_train:
        return ClipDatasetMapper(cfg, True, augmentations=build_semantic_train_augmentations(cfg))
    return ClipDatasetMapper(cfg, False)
