#!/usr/bin/env python
"""Run any ccnet_d2 model through DefaultPredictor on an image, a folder of images or a video, and
write Detectron2 Visualizer drawings.

    python tools/demo.py --config-file configs/Toy-InstanceSegmentation/mask_rcnn_rcca_R_50_w16_FPN_toy.yaml \
        --input photo.jpg [folder/ | clip.mp4] --output demo_out/ --opts MODEL.WEIGHTS output/model_final.pth
"""
import argparse
import os
import sys

import cv2
import tqdm
from detectron2.config import get_cfg
from detectron2.engine import DefaultPredictor

import ccnet_d2  # noqa: F401  (registers the project's models and datasets)
from ccnet_d2 import add_ccnet_config
from ccnet_d2.data.image_files import IMAGE_EXTENSIONS, list_images, read_image_bgr
from ccnet_d2.drawing import draw_predictions


def setup_cfg(args):
    cfg = get_cfg()
    add_ccnet_config(cfg)  # before the merge: the yaml may use ccnet_d2's keys
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = args.confidence_threshold
    cfg.freeze()
    return cfg


def metadata_name(cfg):
    """Class names for drawing come from the first test (else train) dataset of the config."""
    names = list(cfg.DATASETS.TEST) or list(cfg.DATASETS.TRAIN)
    return names[0] if names else "__unused"


def run_video(predictor, cfg, path, output):
    video = cv2.VideoCapture(path)
    if not video.isOpened():
        raise ValueError(f"cannot open {path!r} as a video (OpenCV could not decode it)")
    fps = video.get(cv2.CAP_PROP_FPS) or 25.0
    size = (int(video.get(cv2.CAP_PROP_FRAME_WIDTH)), int(video.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    os.makedirs(output, exist_ok=True)
    out_path = os.path.join(output, os.path.splitext(os.path.basename(path))[0] + "_pred.mp4")
    writer = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    frames = int(video.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    for _ in tqdm.tqdm(range(frames) if frames else iter(int, 1), desc="frames"):
        ok, frame = video.read()
        if not ok:
            break
        writer.write(draw_predictions(frame, predictor(frame), metadata_name(cfg)))
    video.release()
    writer.release()
    return [out_path]


def run_images(predictor, cfg, paths, output):
    """Draw the predictions of every readable image; returns (written files, {unreadable path: why})."""
    os.makedirs(output, exist_ok=True)
    written, unreadable = [], {}
    for path in tqdm.tqdm(paths, desc="images"):
        try:
            image = read_image_bgr(path)
        except (FileNotFoundError, ValueError) as e:
            unreadable[path] = str(e)
            continue
        out_path = os.path.join(output, os.path.splitext(os.path.basename(path))[0] + "_pred.png")
        cv2.imwrite(out_path, draw_predictions(image, predictor(image), metadata_name(cfg)))
        written.append(out_path)
    return written, unreadable


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--input", required=True, help="an image file, a folder of images, or a video file")
    parser.add_argument("--output", default="demo_output", help="folder for the drawings (default: demo_output)")
    parser.add_argument("--confidence-threshold", type=float, default=0.5)
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="config overrides, KEY VALUE ...")
    args = parser.parse_args(argv)
    cfg = setup_cfg(args)
    if not os.path.exists(args.input):
        raise FileNotFoundError(f"--input {args.input!r} does not exist")
    predictor = DefaultPredictor(cfg)
    unreadable = {}
    if os.path.isdir(args.input):
        written, unreadable = run_images(predictor, cfg, list_images(args.input), args.output)
    elif args.input.lower().endswith(IMAGE_EXTENSIONS):
        read_image_bgr(args.input)  # one file: an unreadable one is the error itself
        written, _ = run_images(predictor, cfg, [args.input], args.output)
    else:
        written = run_video(predictor, cfg, args.input, args.output)
    print(f"wrote {len(written)} file(s) to {os.path.abspath(args.output)}")
    if unreadable:
        for why in unreadable.values():
            print(f"unreadable: {why}", file=sys.stderr)
        raise SystemExit(f"{len(unreadable)} of {len(written) + len(unreadable)} images could not be read "
                         "(listed above); the others were drawn")
    return written


if __name__ == "__main__":
    main()  # pragma: no cover
