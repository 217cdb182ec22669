#!/usr/bin/env python
"""Make Cityscapes' ``*_gtFine_labelTrainIds.png`` (19 train ids, 255 = ignore) from the polygon files.

Detectron2's ``cityscapes_fine_sem_seg_*`` datasets read these files. The conversion itself is the
``cityscapesscripts`` package's ``json2labelImg(..., "trainIds")``; this tool walks the tree, in parallel.

    python tools/prepare_cityscapes.py [CITYSCAPES_ROOT]   # default: $DETECTRON2_DATASETS/cityscapes
"""
import argparse
import glob
import os
import sys
from multiprocessing import Pool

from cityscapesscripts.preparation.json2labelImg import json2labelImg


def _convert(json_file):
    json2labelImg(json_file, json_file.replace("_polygons.json", "_labelTrainIds.png"), "trainIds")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?",
                        default=os.path.join(os.getenv("DETECTRON2_DATASETS", "datasets"), "cityscapes"),
                        help="the cityscapes folder (holding gtFine/ and leftImg8bit/)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="parallel processes")
    args = parser.parse_args(argv)

    json_files = sorted(glob.glob(os.path.join(args.root, "gtFine", "*", "*", "*_gtFine_polygons.json")))
    if not json_files:
        sys.exit(f"No gtFine/<split>/<city>/*_gtFine_polygons.json under {args.root!r}: expected the "
                 "unpacked gtFine_trainvaltest.zip there (see docs/DATASETS.md).")
    if args.workers > 1:
        with Pool(args.workers) as pool:
            pool.map(_convert, json_files, chunksize=16)
    else:
        for json_file in json_files:
            _convert(json_file)
    print(f"Wrote {len(json_files)} *_gtFine_labelTrainIds.png files under {os.path.join(args.root, 'gtFine')}")


if __name__ == "__main__":
    main()
