"""The neighbouring frames of CamVid's labelled frames, from the official release's 30 Hz sequences:
what ``tools/prepare_camvid.py`` runs.

A sequence's source (in one ``source`` folder) is either a video file ``<seq>.<ext>`` that OpenCV
reads (the release's videos) or a folder ``<seq>/`` of extracted frames named by their number
(``000001.png``, ``6690.jpg``, ...). Frame ``n`` of a labelled name ``<seq>_<n>.png`` is taken to be
the n-th frame of the sequence counting from 0 (``first_number`` says which number the first
extracted file has: ffmpeg's ``%06d.png`` starts at 1). Each kept frame is resized to its labelled
frame's size (SegNet's layout: 480x360) and written to ``CamVid/frames/<seq>/<index:06d>.png``; then
``frame_count.txt`` (the sequence's length), last, so that an interrupted run leaves the sequence
unprepared rather than half-prepared.
"""
import glob
import os
import re
from collections import defaultdict

import cv2
import numpy as np

from ..clip_mapper import frame_file
from .camvid import FRAME_COUNT_FILE, parse_frame_name

__all__ = ["prepare_camvid_frames", "labelled_frames"]

SPLITS = ("train", "val", "test")
_FRAME_NUMBER = re.compile(r"^(\d+)\.(png|jpg|jpeg|bmp)$", re.IGNORECASE)


def labelled_frames(camvid_root: str):
    """{sequence: {frame index: labelled image path}} over the train, val and test folders."""
    frames = defaultdict(dict)
    for split in SPLITS:
        for path in sorted(glob.glob(os.path.join(camvid_root, split, "*.png"))):
            sequence, index = parse_frame_name(path)
            frames[sequence][index] = path
    if not frames:
        raise FileNotFoundError(f"no labelled frames in {camvid_root!r}/{{{','.join(SPLITS)}}}/*.png: expected "
                                "CamVid in SegNet's layout there (docs/DATASETS.md)")
    return frames


def _extracted_frames(folder: str, first_number: int):
    """(frame count, iterator of (index, path)) of a folder of numbered frame files."""
    numbered = {}
    for name in os.listdir(folder):
        match = _FRAME_NUMBER.match(name)
        if match:
            numbered[int(match.group(1)) - first_number] = os.path.join(folder, name)
    count = len(numbered)
    if count == 0 or sorted(numbered) != list(range(count)):
        lowest = min(numbered, default=0) + first_number
        gaps = sorted(set(range(max(numbered, default=-1) + 1)) - set(numbered))[:5]
        raise ValueError(f"the frames in {folder!r} must be numbered {first_number}, {first_number + 1}, ... without "
                         f"gaps (--first-number {first_number}); found {count} numbered files, the lowest {lowest}, "
                         f"missing numbers {[g + first_number for g in gaps]}")
    return count, ((index, numbered[index]) for index in range(count))


def _video_frames(path: str):
    """Iterator of (index, BGR frame) over a video file, read to its end."""
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError(f"OpenCV cannot open the video {path!r} (for MXF files it needs its FFmpeg backend); "
                         "extract the frames instead (docs/DATASETS.md)")
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield index, frame
            index += 1
    finally:
        capture.release()


def _source_of(source: str, sequence: str):
    folder = os.path.join(source, sequence)
    if os.path.isdir(folder):
        return folder
    videos = [p for p in glob.glob(os.path.join(source, sequence + ".*")) if os.path.isfile(p)]
    if len(videos) != 1:
        raise FileNotFoundError(f"sequence {sequence}: expected one video file {sequence}.<ext> or a folder {sequence}/ "
                                f"of extracted frames in {source!r}, found {videos or 'neither'}")
    return videos[0]


def prepare_camvid_frames(camvid_root: str, source: str, max_offset: int = 6, first_number: int = 0, log=print):
    """Write the frames within ``max_offset`` of every labelled frame; returns {sequence: (frames written,
    mean absolute difference between each labelled image and its frame in the source)}. A large
    difference means the labelled frames and the source do not line up (a wrong ``first_number``)."""
    if max_offset < 0:
        raise ValueError(f"max_offset must be >= 0, got {max_offset}")
    report = {}
    for sequence, labelled in sorted(labelled_frames(camvid_root).items()):
        wanted = {i + o for i in labelled for o in range(-max_offset, max_offset + 1)}
        height, width = cv2.imread(next(iter(labelled.values()))).shape[:2]
        out_dir = os.path.join(camvid_root, "frames", sequence)
        os.makedirs(out_dir, exist_ok=True)
        stale = os.path.join(out_dir, FRAME_COUNT_FILE)
        if os.path.exists(stale):
            os.remove(stale)
        src = _source_of(source, sequence)
        if os.path.isdir(src):
            count, paths = _extracted_frames(src, first_number)
            frames = ((i, cv2.imread(p)) for i, p in paths if i in wanted)
        else:
            count, frames = None, _video_frames(src)  # the length is known once the video is read
        written, differences, seen = 0, [], 0
        for index, frame in frames:
            seen = index + 1
            if index not in wanted:
                continue
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
            cv2.imwrite(frame_file(out_dir, index), frame)
            written += 1
            if index in labelled:
                differences.append(np.abs(frame.astype(np.float32) - cv2.imread(labelled[index])).mean())
        count = seen if count is None else count
        missing = sorted(i for i in labelled if i >= count)
        if missing:
            raise ValueError(f"sequence {sequence}: {src!r} has {count} frames, but frames {missing[:5]} are labelled")
        with open(stale, "w") as f:
            f.write(f"{count}\n")
        report[sequence] = (written, float(np.mean(differences)))
        log(f"{sequence}: {count} frames in {src}, {written} written to {out_dir}, mean |labelled - source| "
            f"{report[sequence][1]:.1f} (0-255)")
    return report
