#!/usr/bin/env python
"""Write the neighbouring video frames of CamVid's labelled frames, for the video model's clips.

CamVid in SegNet's layout (train/, trainannot/, val/, ..., 480x360) is what the single-image models
need; clips also need ``CamVid/frames/<seq>/<index:06d>.png``, taken from the official release's 30 Hz
sequences: a folder holding, per sequence, a video file ``<seq>.<ext>`` or a folder ``<seq>/`` of
extracted frames (docs/DATASETS.md, CamVid).

    python tools/prepare_camvid.py SOURCE [CAMVID_ROOT] [--max-offset 6] [--first-number 0]
"""
import argparse
import os
import sys

from ccnet_d2.data.datasets.camvid_frames import prepare_camvid_frames


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="folder of the 30 Hz sequences: <seq>.<video ext> files or <seq>/ frame folders")
    parser.add_argument("root", nargs="?", default=os.path.join(os.getenv("DETECTRON2_DATASETS", "datasets"), "CamVid"),
                        help="the CamVid folder in SegNet's layout (default: $DETECTRON2_DATASETS/CamVid)")
    parser.add_argument("--max-offset", type=int, default=6,
                        help="frames kept on each side of a labelled frame (>= CLIP_FRAME_STEP * (CLIP_LENGTH-1)/2)")
    parser.add_argument("--first-number", type=int, default=0,
                        help="number of the first extracted frame file (ffmpeg's %%06d.png: 1)")
    args = parser.parse_args(argv)
    try:
        return prepare_camvid_frames(args.root, args.source, args.max_offset, args.first_number)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(str(e))


if __name__ == "__main__":
    main()
