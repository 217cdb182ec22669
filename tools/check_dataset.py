#!/usr/bin/env python
"""Scan registered datasets in full and list every missing or unreadable image or label, image/label size
mismatch, label that is not single-channel class ids within the dataset's classes and panoptic PNG that
disagrees with its image or its segments_info, each with its path, then how many there are.

    DETECTRON2_DATASETS=/path/to/datasets python tools/check_dataset.py lip_sem_seg_train lip_sem_seg_val

Exit status: 0 when every sample is sound, 1 when any problem was found (missing files included), 2 when
a dataset's folders are missing or it is not registered. The checks are those of training and evaluation (``ccnet_d2.data.scan``).
"""
import argparse
import sys

import ccnet_d2  # noqa: F401  (registers the project's datasets)
from ccnet_d2.data import scan_dataset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", help="registered dataset names, e.g. cityscapes_fine_sem_seg_val")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    status = 0
    for name in args.datasets:
        try:
            problems = scan_dataset(name, progress=not args.no_progress)
        except (KeyError, FileNotFoundError) as e:
            print(f"{name}: {e.args[0] if isinstance(e, KeyError) else e}")
            status = 2
            continue
        for problem in problems:
            print(f"{name}: {problem}")
        missing = sum(p.startswith("missing file") for p in problems)
        print(f"{name}: {len(problems)} problem(s), {missing} of them missing files")
        status = max(status, 1 if problems else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
