#!/usr/bin/env python
"""Run any ccnet_d2 model through its predictor on an image, a folder of images or a video, and write
Detectron2 Visualizer drawings.

    python tools/demo.py --config-file configs/Toy-InstanceSegmentation/mask_rcnn_rcca_R_50_w16_FPN_toy.yaml \
        --input photo.jpg [folder/ | clip.mp4] --output demo_out/ --opts MODEL.WEIGHTS output/model_final.pth

Images go through ``ccnet_d2.Predictor``; a folder through ``Predictor.predict_files``, which reads and
decodes the next images in a background thread while the model runs (the images per second are printed at
the end). A video model (``INPUT.CLIP_LENGTH`` > 1) takes videos only: each frame is predicted by
``ClipPredictor`` from the clip centred on it (``INPUT.CLIP_FRAME_STEP`` frames apart, the first and last
frames repeated at the ends). Files that cannot be decoded (truncated ones
included) are listed at the end and make the exit status non-zero.
"""
import argparse
import os
import sys
import time

import cv2
import tqdm
from detectron2.config import get_cfg

import ccnet_d2  # noqa: F401  (registers the project's models and datasets)
from ccnet_d2 import ClipPredictor, Predictor, add_ccnet_config
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


def centred_clips(frames, length: int, step: int):
    """For each frame of ``frames`` in order: (the frame, the ``length`` frames ``step`` apart centred on
    it), with the first and last frames standing in for those before and after the video. Holds the
    frames a clip reaches, no more."""
    half = length // 2
    reach = half * step
    window, last = {}, -1

    def clip_at(centre):
        return window[centre], [window[min(max(centre + k * step, 0), last)] for k in range(-half, half + 1)]

    for last, frame in enumerate(frames):
        window[last] = frame
        if last >= reach:
            yield clip_at(last - reach)
            window.pop(last - 2 * reach, None)  # the next clip starts one frame later
    for centre in range(max(last - reach + 1, 0), last + 1):
        yield clip_at(centre)


def _video_frames(video):
    while True:
        ok, frame = video.read()
        if not ok:
            return
        yield frame


def run_video(predictor, cfg, path, output):
    video = cv2.VideoCapture(path)
    if not video.isOpened():
        raise ValueError(f"cannot open {path!r} as a video (OpenCV could not decode it)")
    fps = video.get(cv2.CAP_PROP_FPS) or 25.0
    size = (int(video.get(cv2.CAP_PROP_FRAME_WIDTH)), int(video.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    os.makedirs(output, exist_ok=True)
    out_path = os.path.join(output, os.path.splitext(os.path.basename(path))[0] + "_pred.mp4")
    writer = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    frames = tqdm.tqdm(_video_frames(video), total=int(video.get(cv2.CAP_PROP_FRAME_COUNT)) or None, desc="frames")
    if isinstance(predictor, ClipPredictor):
        for frame, clip in centred_clips(frames, predictor.clip_length, cfg.INPUT.CLIP_FRAME_STEP):
            writer.write(draw_predictions(frame, predictor(clip), metadata_name(cfg)))
    else:
        for frame in frames:
            writer.write(draw_predictions(frame, predictor(frame), metadata_name(cfg)))
    video.release()
    writer.release()
    return [out_path]


def run_images(predictor, cfg, paths, output):
    """Draw the predictions of every readable image (read ahead in the background while the model runs);
    returns (written files, {unreadable path: why}, images per second of the whole loop)."""
    os.makedirs(output, exist_ok=True)
    written, unreadable = [], {}
    start = time.perf_counter()
    for path, image, outputs, error in tqdm.tqdm(predictor.predict_files(paths), total=len(paths), desc="images"):
        if error is not None:
            unreadable[path] = error
            continue
        out_path = os.path.join(output, os.path.splitext(os.path.basename(path))[0] + "_pred.png")
        cv2.imwrite(out_path, draw_predictions(image, outputs, metadata_name(cfg)))
        written.append(out_path)
    return written, unreadable, len(written) / (time.perf_counter() - start)


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
    is_video = not os.path.isdir(args.input) and not args.input.lower().endswith(IMAGE_EXTENSIONS)
    if cfg.INPUT.CLIP_LENGTH > 1 and not is_video:
        raise SystemExit(f"{args.config_file} is a video model (INPUT.CLIP_LENGTH {cfg.INPUT.CLIP_LENGTH}): it "
                         "predicts a frame from the frames around it, which single images do not have. Give a "
                         "video file as --input, or use the config's image counterpart (INPUT.CLIP_LENGTH 1)")
    predictor = ClipPredictor(cfg) if cfg.INPUT.CLIP_LENGTH > 1 else Predictor(cfg)
    unreadable = {}
    if os.path.isdir(args.input):
        written, unreadable, rate = run_images(predictor, cfg, list_images(args.input), args.output)
        print(f"{len(written)} image(s) at {rate:.2f} images/s (reading ahead, model and drawing)")
    elif args.input.lower().endswith(IMAGE_EXTENSIONS):
        read_image_bgr(args.input)  # one file: an unreadable one is the error itself
        written, _, _ = run_images(predictor, cfg, [args.input], args.output)
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
