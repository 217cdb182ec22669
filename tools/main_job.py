#!/usr/bin/env python
"""The main job: train Mask R-CNN + RCCA from scratch on the built-in toy dataset with
``tools/train_net.py``, evaluate box and mask AP on its val split (COCO metrics), draw predictions of
``ccnet_d2.Predictor`` on val images, and print the APs and where the pictures are.

    python tools/main_job.py [--output-dir DIR] [--num-images N] [KEY VALUE ...]   # config overrides

Re-running continues from the last checkpoint (``--resume``), so an interrupted job does not start over.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import cv2
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "Toy-InstanceSegmentation", "mask_rcnn_rcca_R_50_w16_FPN_toy.yaml")
# Lines of the training log shown live: progress (iteration, losses, ETA) and the evaluation tables.
SHOWN = ("eta:", "Starting training", "Loading", "Evaluation results", "Inference done", "Total inference",
         "| ", "|:", "Per-category", "copypaste", "Overall training speed", "Traceback")


def log(message: str, start: float) -> None:
    print(f"[main-job {time.time() - start:6.1f}s] {message}", flush=True)


def train_and_evaluate(output_dir: str, opts, start: float) -> None:
    command = [sys.executable, os.path.join(REPO, "tools", "train_net.py"), "--config-file", CONFIG, "--resume",
               "OUTPUT_DIR", output_dir, *opts]
    log("training + evaluation: " + " ".join(command[1:]), start)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    tail = []
    for line in process.stdout:
        tail = (tail + [line])[-80:]
        if any(key in line for key in SHOWN):
            print("  " + line.rstrip()[:220], flush=True)
    if process.wait() != 0:
        sys.stdout.write("".join(tail))
        raise SystemExit(f"tools/train_net.py failed (exit {process.returncode}); full log: {output_dir}/log.txt")


def final_metrics(output_dir: str) -> dict:
    """The last evaluation Detectron2 wrote to metrics.json (its EvalHook runs after the last iteration)."""
    with open(os.path.join(output_dir, "metrics.json")) as f:
        entries = [json.loads(line) for line in f if line.strip()]
    evaluated = [e for e in entries if "segm/AP" in e]
    if not evaluated:
        raise SystemExit(f"no evaluation found in {output_dir}/metrics.json")
    return evaluated[-1]


def draw_predictions(output_dir: str, num_images: int, opts, start: float) -> str:
    from detectron2.config import get_cfg
    from detectron2.data import DatasetCatalog

    from ccnet_d2 import Predictor, add_ccnet_config
    from ccnet_d2.data.image_files import read_image_bgr
    from ccnet_d2.drawing import draw_predictions as draw

    cfg = get_cfg()
    add_ccnet_config(cfg)
    cfg.merge_from_file(CONFIG)
    cfg.merge_from_list([*opts, "OUTPUT_DIR", output_dir, "MODEL.WEIGHTS", os.path.join(output_dir, "model_final.pth")])
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.5
    predictor = Predictor(cfg)
    picture_dir = os.path.join(output_dir, "predictions")
    os.makedirs(picture_dir, exist_ok=True)
    dataset = cfg.DATASETS.TEST[0]
    drawn = []
    for record in DatasetCatalog.get(dataset)[:num_images]:
        image = read_image_bgr(record["file_name"])
        picture = draw(image, predictor(image), dataset, scale=256 / max(image.shape[:2]))
        cv2.imwrite(os.path.join(picture_dir, os.path.basename(record["file_name"])), picture)
        drawn.append(cv2.resize(picture, (256, 256)))
    columns = 4
    drawn += [np.zeros_like(drawn[0])] * (-len(drawn) % columns)
    rows = [np.hstack(drawn[i:i + columns]) for i in range(0, len(drawn), columns)]
    cv2.imwrite(os.path.join(picture_dir, "grid.png"), np.vstack(rows))
    log(f"drew {num_images} val images with the predictor", start)
    return picture_dir


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default=os.path.join(REPO, "output", "main_job"))
    parser.add_argument("--num-images", type=int, default=12, help="val images to draw predictions on")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for train_net, KEY VALUE ...")
    args = parser.parse_args()
    start = time.time()
    from ccnet_d2.data.datasets.toy import ensure_toy_dataset

    log(f"toy dataset at {ensure_toy_dataset()}", start)
    train_and_evaluate(args.output_dir, args.opts, start)
    metrics = final_metrics(args.output_dir)
    picture_dir = draw_predictions(args.output_dir, args.num_images, args.opts, start)
    print("\n" + "=" * 72)
    print(f"Mask R-CNN + RCCA on the toy val split ({metrics['iteration']} iterations, from scratch)")
    print(f"  box  AP {metrics['bbox/AP']:5.1f}   AP50 {metrics['bbox/AP50']:5.1f}   AP75 {metrics['bbox/AP75']:5.1f}")
    print(f"  mask AP {metrics['segm/AP']:5.1f}   AP50 {metrics['segm/AP50']:5.1f}   AP75 {metrics['segm/AP75']:5.1f}")
    print(f"  prediction pictures: {picture_dir}/ (overview: {picture_dir}/grid.png)")
    print(f"  model, metrics and logs: {args.output_dir}/")
    print(f"  total time: {time.time() - start:.0f} s")
    print("=" * 72)


if __name__ == "__main__":
    main()
