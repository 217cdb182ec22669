#!/usr/bin/env python
"""Export a ccnet_d2 model to ONNX or to a torch.export program (docs/DEPLOYMENT.md).

    python tools/export_model.py --config-file configs/Toy-SemanticSegmentation/ccnet_R_50_narrow_os8_r2_toy.yaml \
        --format onnx --output export/ --size 128 128 MODEL.WEIGHTS output/model_final.pth
    python tools/export_model.py --config-file configs/Toy-InstanceSegmentation/mask_rcnn_rcca_R_50_w16_FPN_toy.yaml \
        --format onnx --output export/ --sample-image photo.jpg MODEL.WEIGHTS output/model_final.pth

The sample image (resized as DefaultPredictor does) or a random image of --size is what the model is
traced with; the exported graphs take other sizes too.
"""
import argparse

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.modeling import build_model

import ccnet_d2  # noqa: F401  (registers the project's models)
from ccnet_d2 import add_ccnet_config
from ccnet_d2.checkpoint import explain_checkpoint_errors
from ccnet_d2.data.image_files import read_image_bgr
from ccnet_d2.export import EXPORT_FORMATS, export_model, preprocess


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="onnx")
    parser.add_argument("--output", required=True, help="folder for model.onnx or model.pt2")
    sample = parser.add_mutually_exclusive_group(required=True)
    sample.add_argument("--sample-image", metavar="FILE", help="an image to trace the model with")
    sample.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="trace with a random image of this size")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, KEY VALUE ...")
    args = parser.parse_args(argv)
    if args.size and min(args.size) < 1:
        parser.error(f"--size H W must be positive, got {args.size}")
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
    model = build_model(cfg)
    if cfg.MODEL.WEIGHTS:
        with explain_checkpoint_errors(cfg.MODEL.WEIGHTS):
            DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    path = export_model(model, sample_image(cfg, args).to(model.device), args.output, args.format)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
