"""CamVid, the 11-class road-scene benchmark in SegNet's layout, with the neighbouring video frames of
each labelled frame for the video model: ``camvid_sem_seg_{train,val,test}`` (367 / 101 / 233 images).

Labels are single-channel PNGs with class ids 0-10 and 11 = void (ignored). A labelled frame's name
gives its sequence and its index in the 30 Hz video: ``0001TP_006690.png`` is frame 6690 of sequence
0001TP (``0006R0_f00930.png``: frame 930 of 0006R0). Neighbouring frames are read from
``CamVid/frames/<sequence>/<index:06d>.png`` with the sequence's length in ``frame_count.txt`` there,
both made by ``tools/prepare_camvid.py``; single-image models (INPUT.CLIP_LENGTH 1) need no frames.
The tree: docs/DATASETS.md, and ``EXPECTED_TREES`` in ``ccnet_d2.data.checks``.
"""
import os
import re

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..checks import check_dataset_available, raise_if_files_missing

__all__ = ["CAMVID_CLASSES", "CAMVID_IGNORE_LABEL", "FRAME_COUNT_FILE", "parse_frame_name", "load_clip_records",
           "register_clip_dataset", "register_all_camvid"]

CAMVID_CLASSES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
                  "Pedestrian", "Bicyclist"]
CAMVID_IGNORE_LABEL = 11  # "Unlabelled" (void) in SegNet's layout
FRAME_COUNT_FILE = "frame_count.txt"
_LABELLED_NAME = re.compile(r"^(?P<sequence>.+)_f?(?P<frame>\d+)$")


def parse_frame_name(path: str):
    """(sequence, frame index) of a labelled frame's file name: ``0001TP_006690.png`` -> ("0001TP", 6690)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    match = _LABELLED_NAME.match(stem)
    if match is None:
        raise ValueError(f"cannot read a sequence and frame index from {path!r}: expected <sequence>_<frame>.png "
                         "or <sequence>_f<frame>.png, as 0001TP_006690.png or 0006R0_f00930.png")
    return match.group("sequence"), int(match.group("frame"))


def _sequence_frames(frames_dir: str):
    """The frame count written by the preparation, or None when the sequence's frames are not there."""
    path = os.path.join(frames_dir, FRAME_COUNT_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        text = f.read().strip()
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{path!r} must hold the sequence's number of frames (a positive integer), got {text!r}")
    return int(text)


def load_clip_records(dataset_name: str, image_root: str, sem_seg_root: str, frames_root: str):
    """Records of the labelled frames in ``image_root`` (labels of the same name in ``sem_seg_root``), with
    the clip fields of ``ccnet_d2.data.clip_mapper``: ``frames_dir``, ``frame_index``, ``sequence_frames``
    (None when the sequence's frames are not prepared)."""
    check_dataset_available(dataset_name)
    names = sorted(n for n in os.listdir(image_root) if n.lower().endswith(".png"))
    if not names:
        raise FileNotFoundError(f"Dataset '{dataset_name}': no .png images in {image_root!r}")
    records, frame_counts = [], {}
    for name in names:
        sequence, frame_index = parse_frame_name(name)
        frames_dir = os.path.join(frames_root, sequence)
        if sequence not in frame_counts:
            frame_counts[sequence] = _sequence_frames(frames_dir)
        label = os.path.join(sem_seg_root, name)
        records.append({"file_name": os.path.join(image_root, name), "sem_seg_file_name": label,
                        "image_id": os.path.splitext(name)[0], "frames_dir": frames_dir, "frame_index": frame_index,
                        "sequence_frames": frame_counts[sequence]})
    raise_if_files_missing(dataset_name, records, fields=("sem_seg_file_name",))
    return records


def register_clip_dataset(name: str, image_root: str, sem_seg_root: str, frames_root: str, **metadata):
    """Register ``name`` with :func:`load_clip_records`; the image and label folders go into its metadata,
    where ``check_dataset_available`` looks for them (frames are checked when a clip needs them)."""
    DatasetCatalog.register(name, lambda: load_clip_records(name, image_root, sem_seg_root, frames_root))
    MetadataCatalog.get(name).set(image_root=image_root, sem_seg_root=sem_seg_root, frames_root=frames_root,
                                  evaluator_type="sem_seg", **metadata)


def register_all_camvid(root: str) -> None:
    """Register ``camvid_sem_seg_{train,val,test}`` with their files under ``root``/CamVid."""
    camvid = os.path.join(root, "CamVid")
    for split in ("train", "val", "test"):
        register_clip_dataset(f"camvid_sem_seg_{split}", os.path.join(camvid, split), os.path.join(camvid, split + "annot"),
                              os.path.join(camvid, "frames"), stuff_classes=list(CAMVID_CLASSES),
                              ignore_label=CAMVID_IGNORE_LABEL)
