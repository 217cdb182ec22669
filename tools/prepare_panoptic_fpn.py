#!/usr/bin/env python
"""Write the "separated" panoptic annotations that the Panoptic FPN configs train on, from each dataset's
panoptic PNGs and json (docs/DATASETS.md):

- coco: the stuff-only label maps ``coco/panoptic_stuff_{train,val}2017/*.png`` (0 = any thing, 1-53 = the
  stuff classes, 255 = void) that Detectron2's ``coco_2017_{train,val}_panoptic_separated`` read;
- cityscapes: ``cityscapes/gtFine/cityscapes_panoptic_{train,val}_stuff/*.png`` (0 = any thing, 1-11 = the
  stuff classes) and ``cityscapes_panoptic_{train,val}_instances.json`` (the things), which
  ``cityscapes_fine_panoptic_{train,val}_separated`` read.

    python tools/prepare_panoptic_fpn.py coco         # under $DETECTRON2_DATASETS (default ./datasets)
    python tools/prepare_panoptic_fpn.py cityscapes --root /path/to/datasets
"""
import argparse
import os
import sys

from detectron2.data import MetadataCatalog

import ccnet_d2  # noqa: F401  (Detectron2's and the project's dataset registrations)
from ccnet_d2.data.datasets.cityscapes_panoptic import CITYSCAPES_PANOPTIC_SPLITS, prepare_cityscapes_panoptic
from ccnet_d2.data.datasets.panoptic_separated import write_stuff_labels


def prepare_coco(root: str, workers: int) -> int:
    coco = os.path.join(root, "coco")
    meta = MetadataCatalog.get("coco_2017_train_panoptic_separated")  # Detectron2's id mappings
    done = 0
    for split in ("train2017", "val2017"):
        panoptic_json = os.path.join(coco, "annotations", f"panoptic_{split}.json")
        if not os.path.isfile(panoptic_json):
            print(f"skipped {split}: no {panoptic_json}")
            continue
        stuff_root = os.path.join(coco, f"panoptic_stuff_{split}")
        count = write_stuff_labels(panoptic_json, os.path.join(coco, f"panoptic_{split}"), stuff_root,
                                   meta.stuff_dataset_id_to_contiguous_id, meta.thing_dataset_id_to_contiguous_id,
                                   workers=workers)
        print(f"Wrote {count} stuff label maps to {stuff_root}")
        done += 1
    if not done:
        sys.exit(f"No annotations/panoptic_{{train,val}}2017.json under {coco!r}: expected COCO's "
                 "panoptic_annotations_trainval2017.zip unpacked there, with its panoptic_{train,val}2017.zip "
                 "(see docs/DATASETS.md).")
    return done


def prepare_cityscapes(root: str, workers: int) -> int:
    for split in CITYSCAPES_PANOPTIC_SPLITS:
        try:
            maps, instances = prepare_cityscapes_panoptic(root, split, workers)
        except FileNotFoundError as e:
            sys.exit(str(e))
        print(f"Wrote {maps} stuff label maps and {instances} thing instances for cityscapes {split}")
    return len(CITYSCAPES_PANOPTIC_SPLITS)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=("coco", "cityscapes"))
    parser.add_argument("--root", default=os.getenv("DETECTRON2_DATASETS", "datasets"),
                        help="the dataset root holding coco/ or cityscapes/ (default: $DETECTRON2_DATASETS)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="parallel processes")
    args = parser.parse_args(argv)
    return (prepare_coco if args.dataset == "coco" else prepare_cityscapes)(args.root, args.workers)


if __name__ == "__main__":
    main()
