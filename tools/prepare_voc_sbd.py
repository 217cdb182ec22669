#!/usr/bin/env python
"""Make Pascal VOC 2012's augmented training set with SBD (``voc_2012_sem_seg_train_aug``).

Inputs: VOC 2012 (``VOCdevkit/VOC2012``) and SBD (``benchmark_RELEASE/dataset`` from benchmark.tgz:
``cls/<id>.mat`` with ``GTcls.Segmentation``, ``train.txt``, ``val.txt``). Outputs in VOC2012/:

- ``SegmentationClassAug/<id>.png``: single-channel labels (0-20, 255 = void) for every image of
  train_aug and val. Images VOC annotates itself take VOC's label (finer, with void borders); the
  others take SBD's.
- ``ImageSets/Segmentation/train_aug.txt``: (SBD train + SBD val + VOC train) minus VOC val
  (10582 ids with the official releases).

    python tools/prepare_voc_sbd.py [--voc VOC2012_DIR] [--sbd SBD_DATASET_DIR]
"""
import argparse
import os
import sys

import numpy as np
import scipy.io
from PIL import Image


def _read_ids(path):
    if not os.path.isfile(path):
        sys.exit(f"Missing {path!r} (see docs/DATASETS.md for the expected VOC and SBD trees).")
    with open(path) as f:
        return {line.strip() for line in f if line.strip()}


def read_voc_label(path: str) -> np.ndarray:
    """Class indices of a VOC ``SegmentationClass`` PNG (palette image: the pixel values are the indices)."""
    image = Image.open(path)
    if image.mode not in ("P", "L"):
        raise ValueError(f"{path}: expected a palette (P) or grey (L) PNG of class indices, got mode {image.mode}")
    return np.asarray(image, dtype=np.uint8)


def read_sbd_label(path: str) -> np.ndarray:
    """Class indices (0-20) of an SBD ``cls/<id>.mat`` file (``GTcls.Segmentation``)."""
    gt = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)["GTcls"]
    return np.asarray(gt.Segmentation, dtype=np.uint8)


def main(argv=None):
    root = os.getenv("DETECTRON2_DATASETS", "datasets")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voc", default=os.path.join(root, "VOCdevkit", "VOC2012"), help="the VOC2012 folder")
    parser.add_argument("--sbd", default=os.path.join(root, "benchmark_RELEASE", "dataset"),
                        help="SBD's dataset folder (holding cls/, train.txt, val.txt)")
    args = parser.parse_args(argv)

    split_dir = os.path.join(args.voc, "ImageSets", "Segmentation")
    voc_train, voc_val = (_read_ids(os.path.join(split_dir, f"{s}.txt")) for s in ("train", "val"))
    sbd_ids = _read_ids(os.path.join(args.sbd, "train.txt")) | _read_ids(os.path.join(args.sbd, "val.txt"))
    train_aug = sorted((sbd_ids | voc_train) - voc_val)

    missing_images = [i for i in train_aug + sorted(voc_val)
                      if not os.path.isfile(os.path.join(args.voc, "JPEGImages", i + ".jpg"))]
    if missing_images:
        sys.exit(f"{len(missing_images)} images missing from {os.path.join(args.voc, 'JPEGImages')}, "
                 f"e.g. {missing_images[:3]}")

    output_dir = os.path.join(args.voc, "SegmentationClassAug")
    os.makedirs(output_dir, exist_ok=True)
    voc_labelled = voc_train | voc_val
    for image_id in sorted(set(train_aug) | voc_val):
        if image_id in voc_labelled:
            label = read_voc_label(os.path.join(args.voc, "SegmentationClass", image_id + ".png"))
        else:
            label = read_sbd_label(os.path.join(args.sbd, "cls", image_id + ".mat"))
        Image.fromarray(label).save(os.path.join(output_dir, image_id + ".png"))

    with open(os.path.join(split_dir, "train_aug.txt"), "w") as f:
        f.write("".join(i + "\n" for i in train_aug))
    print(f"train_aug: {len(train_aug)} images, val: {len(voc_val)}; labels in {output_dir}")


if __name__ == "__main__":
    main()
