#!/usr/bin/env python
"""Make ADE20K's ``annotations_detectron2`` folder, read by Detectron2's ``ade20k_sem_seg_*`` datasets.

SceneParsing (ADEChallengeData2016) labels are 0 = "other" and 1..150 = classes; Detectron2 wants
0..149 for the classes and 255 (ignored) for "other", i.e. ``label - 1`` with 0 mapped to 255.

    python tools/prepare_ade20k.py [ADE_ROOT]   # default: $DETECTRON2_DATASETS/ADEChallengeData2016
"""
import argparse
import glob
import os
import sys

import numpy as np
from PIL import Image


def convert_ade20k_label(label: np.ndarray) -> np.ndarray:
    """0 ("other") -> 255, k -> k - 1."""
    label = label.astype(np.int64)
    return np.where(label == 0, 255, label - 1).astype(np.uint8)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?",
                        default=os.path.join(os.getenv("DETECTRON2_DATASETS", "datasets"), "ADEChallengeData2016"),
                        help="the ADEChallengeData2016 folder (holding images/ and annotations/)")
    args = parser.parse_args(argv)

    count = 0
    for split in ("training", "validation"):
        source_dir = os.path.join(args.root, "annotations", split)
        if not os.path.isdir(source_dir):
            sys.exit(f"Missing {source_dir!r}: expected the unpacked ADEChallengeData2016.zip "
                     "(images/ and annotations/, each with training/ and validation/; see docs/DATASETS.md).")
        output_dir = os.path.join(args.root, "annotations_detectron2", split)
        os.makedirs(output_dir, exist_ok=True)
        for path in sorted(glob.glob(os.path.join(source_dir, "*.png"))):
            label = np.asarray(Image.open(path))
            Image.fromarray(convert_ade20k_label(label)).save(os.path.join(output_dir, os.path.basename(path)))
            count += 1
    print(f"Wrote {count} labels under {os.path.join(args.root, 'annotations_detectron2')}")


if __name__ == "__main__":
    main()
