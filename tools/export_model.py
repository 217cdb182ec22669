#!/usr/bin/env python
"""Export a ccnet_d2 model to ONNX or to a torch.export program (docs/DEPLOYMENT.md).

    python tools/export_model.py --config-file configs/Toy-SemanticSegmentation/ccnet_R_50_narrow_os8_r2_toy.yaml \
        --format onnx --output export/ --size 128 128 MODEL.WEIGHTS output/model_final.pth
    python tools/export_model.py --config-file configs/Toy-InstanceSegmentation/mask_rcnn_rcca_R_50_w16_FPN_toy.yaml \
        --format onnx --output export/ --sample-image photo.jpg MODEL.WEIGHTS output/model_final.pth

The sample image (resized as DefaultPredictor does) or a random image of --size is what the model is
traced with; the exported graphs take other sizes too. With --int8, model_int8.onnx is written beside
model.onnx, calibrated on --calibration-images images of DATASETS.TRAIN; --int8-accuracy then compares the
two files on DATASETS.TEST[0] (the segmentor: mIoU of each and pixel agreement; Mask R-CNN: box and mask AP).

    python tools/export_model.py --config-file configs/Toy-SemanticSegmentation/ccnet_R_50_narrow_os8_r2_toy.yaml \
        --format onnx --output export/ --size 128 128 --int8 --int8-accuracy MODEL.WEIGHTS output/model_final.pth
"""
import os
import argparse

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.modeling import build_model

import ccnet_d2  # noqa: F401  (registers the project's models)
from ccnet_d2 import add_ccnet_config
from ccnet_d2.checkpoint import explain_checkpoint_errors
from ccnet_d2.data.image_files import read_image_bgr
from ccnet_d2.export import (EXPORT_FORMATS, INT8_FILE_NAME, calibration_inputs, describe_int8_accuracy,
                             export_model, int8_accuracy, preprocess, quantize_int8)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="onnx")
    parser.add_argument("--output", required=True, help="folder for model.onnx or model.pt2")
    sample = parser.add_mutually_exclusive_group(required=True)
    sample.add_argument("--sample-image", metavar="FILE", help="an image to trace the model with")
    sample.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="trace with a random image of this size")
    parser.add_argument("--int8", action="store_true",
                        help="also write model_int8.onnx, ONNX Runtime's static INT8 quantization")
    parser.add_argument("--calibration-images", type=int, default=16, metavar="N",
                        help="--int8: images of DATASETS.TRAIN to calibrate the activation ranges on (default 16)")
    parser.add_argument("--int8-accuracy", action="store_true",
                        help="--int8: compare model_int8.onnx with model.onnx on DATASETS.TEST[0]")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, KEY VALUE ...")
    args = parser.parse_args(argv)
    if args.size and min(args.size) < 1:
        parser.error(f"--size H W must be positive, got {args.size}")
    if (args.int8 or args.int8_accuracy) and args.format != "onnx":
        parser.error("--int8 and --int8-accuracy need --format onnx (ONNX Runtime quantizes ONNX files)")
    if args.int8_accuracy and not args.int8:
        parser.error("--int8-accuracy compares the INT8 file with the float one: add --int8")
    if args.calibration_images < 1:
        parser.error(f"--calibration-images must be >= 1, got {args.calibration_images}")
    return args


def sample_image(cfg, args) -> torch.Tensor:
    """[3, H, W] float32 0..255 in INPUT.FORMAT, resized like DefaultPredictor when read from a file."""
    if args.size:
        return torch.rand(3, *args.size, generator=torch.Generator().manual_seed(0)) * 255
    return torch.from_numpy(preprocess(read_image_bgr(args.sample_image), cfg))


def main(argv=None) -> str:
    args = parse_args(argv)
    cfg = add_ccnet_config(get_cfg())
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    if args.int8 and cfg.MODEL.META_ARCHITECTURE == "PanopticFPN":
        raise ValueError("--int8: INT8 export is for the CCNet segmentor and Mask R-CNN; Panoptic FPN is exported "
                         "in float32 only (drop --int8)")
    calibration = calibration_inputs(cfg, args.calibration_images) if args.int8 else None  # fails before the export
    model = build_model(cfg)
    if cfg.MODEL.WEIGHTS:
        with explain_checkpoint_errors(cfg.MODEL.WEIGHTS):
            DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    path = export_model(model, sample_image(cfg, args).to(model.device), args.output, args.format)
    print(f"wrote {path}")
    if args.int8:
        int8_path = quantize_int8(path, calibration, os.path.join(args.output, INT8_FILE_NAME))
        print(f"wrote {int8_path} (calibrated on {len(calibration)} images of {', '.join(cfg.DATASETS.TRAIN)})")
        if args.int8_accuracy:
            result = int8_accuracy(cfg, path, int8_path)
            print(f"on {cfg.DATASETS.TEST[0]} ({result['images']} images): {describe_int8_accuracy(result)}")
    return path


if __name__ == "__main__":
    main()
