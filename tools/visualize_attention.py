#!/usr/bin/env python
"""Draw where one pixel's criss-cross attention goes after one and two loops (the paper's Figure 6).

    python tools/visualize_attention.py --config-file configs/Cityscapes-SemanticSegmentation/ccnet_R_101_os8_r2_769x769_60k_bs8_cityscapes.yaml \
        --input frankfurt_000000_000294_leftImg8bit.png --pixel 600 1100 --output attention.png \
        --opts MODEL.WEIGHTS output/ccnet_R_101_os8_r2_769x769_60k_bs8_cityscapes/model_final.pth

The image goes through ccnet_d2.Predictor (the config's test resize and input format) in one
whole-image pass. The loop-1 and loop-2 attention maps of a CrissCrossAttention module (by default
the first one of the model: the RCCA of the CCNet head, or the RCCA block of an RCCA-FPN backbone)
are recorded; the PNG shows the image with the chosen pixel, its R=1 map (its row and column) and
its R=2 map (loop 2 composed over loop 1: the whole image). Maps are computed on the module's
feature grid (1/8 of the resized image for CCNet), drawn per grid cell and scaled to each panel's
maximum. Without MODEL.WEIGHTS the model is randomly initialised and the maps mean nothing.
"""
import argparse
import logging
import math
import sys

import cv2
import numpy as np
import torch
from detectron2.config import get_cfg

import ccnet_d2  # noqa: F401  (registers the project's models and datasets)
from ccnet_d2 import Predictor, add_ccnet_config
from ccnet_d2.data.image_files import read_image_bgr
from ccnet_d2.layers import AttentionRecorder, CrissCrossAttention, compose_pixel_attention, pixel_attention_map

logger = logging.getLogger("ccnet_d2.visualize_attention")
MARKER_BGR = (0, 255, 0)  # the paper marks the chosen point with a green cross


def setup_cfg(args):
    cfg = get_cfg()
    add_ccnet_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    # One whole-image pass at scale 1, so the module runs exactly R times on one feature grid.
    cfg.TEST.SEM_SEG.MODE, cfg.TEST.SEM_SEG.SCALES, cfg.TEST.AUG.ENABLED = "whole", [1.0], False
    cfg.freeze()
    return cfg


def find_attention_module(model: torch.nn.Module, name: str = "") -> CrissCrossAttention:
    """The CrissCrossAttention module called ``name``, or the model's first one when ``name`` is empty."""
    modules = {n: m for n, m in model.named_modules() if isinstance(m, CrissCrossAttention)}
    if not modules:
        raise ValueError(f"{type(model).__name__} has no CrissCrossAttention module: use a CCNet or RCCA config")
    if not name:
        return next(iter(modules.values()))
    if name not in modules:
        raise ValueError(f"no CrissCrossAttention module named {name!r}; the model has {sorted(modules)}")
    return modules[name]


def pixel_attention(predictor: Predictor, image: np.ndarray, y: int, x: int, module_name: str = ""):
    """Run ``predictor`` on a BGR image and return the attention of image pixel (y, x).

    Returns a dict: ``loop1`` and ``loop2`` ([h, w] float arrays on the feature grid, cropped to the
    image; ``loop2`` is None when the module ran once), ``cell`` (the pixel's grid cell), ``stride``
    (image pixels per grid cell, after the test resize) and ``loops`` (how often the module ran).
    """
    height, width = image.shape[:2]
    if not (0 <= y < height and 0 <= x < width):
        raise ValueError(f"--pixel {y} {x} is outside the {height}x{width} image (give row then column)")
    module = find_attention_module(predictor.model, module_name)
    network_inputs = []
    hook = predictor.model.backbone.register_forward_pre_hook(lambda m, inputs: network_inputs.append(inputs[0].shape))
    try:
        with AttentionRecorder(module) as recorder:
            predictor(image)
    finally:
        hook.remove()
    if len(network_inputs) != 1 or not recorder.maps:
        raise RuntimeError(f"expected one backbone pass running the attention module, got {len(network_inputs)} "
                           f"passes and {len(recorder.maps)} attention calls")
    grid_h, grid_w = recorder.maps[0].shape[-2:]
    padded_h, padded_w = network_inputs[0][-2:]
    stride = padded_h // grid_h
    if stride * grid_h != padded_h or stride * grid_w != padded_w:
        raise RuntimeError(f"the {grid_h}x{grid_w} attention grid does not divide the {padded_h}x{padded_w} input")
    resized_h, resized_w = predictor.aug.get_transform(image).apply_image(image).shape[:2]
    cell = (min(int(y * resized_h / height) // stride, grid_h - 1), min(int(x * resized_w / width) // stride, grid_w - 1))
    valid = (slice(0, math.ceil(resized_h / stride)), slice(0, math.ceil(resized_w / stride)))
    loop1 = pixel_attention_map(recorder.maps[0], *cell)[0]
    loop2 = compose_pixel_attention(recorder.maps[0], recorder.maps[1], *cell)[0] if len(recorder.maps) > 1 else None
    return {"loop1": loop1[valid].cpu().numpy(), "loop2": None if loop2 is None else loop2[valid].cpu().numpy(),
            "cell": cell, "stride": stride, "loops": len(recorder.maps), "resized": (resized_h, resized_w)}


def _grid_to_image(grid: np.ndarray, stride: int, resized, size) -> np.ndarray:
    """A feature-grid map drawn per cell on the resized image, then scaled to the original size."""
    cells = np.kron(grid, np.ones((stride, stride), dtype=grid.dtype))[: resized[0], : resized[1]]
    return cv2.resize(cells, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def _panel(image: np.ndarray, y: int, x: int, title: str, heat=None) -> np.ndarray:
    panel = image.copy()
    if heat is not None:
        scaled = np.uint8(255 * heat / max(float(heat.max()), 1e-12))
        panel = cv2.addWeighted(image, 0.45, cv2.applyColorMap(scaled, cv2.COLORMAP_JET), 0.55, 0)
    size = max(6, min(image.shape[:2]) // 25)
    cv2.drawMarker(panel, (x, y), MARKER_BGR, cv2.MARKER_CROSS, size, max(1, size // 4))
    banner = np.full((24, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(banner, title, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([banner, panel])


def render(image: np.ndarray, y: int, x: int, result) -> np.ndarray:
    """Image | R=1 map | R=2 map, side by side (BGR)."""
    def to_image(grid):
        return _grid_to_image(grid, result["stride"], result["resized"], image.shape[:2])

    panels = [_panel(image, y, x, f"pixel ({y}, {x})"), _panel(image, y, x, "R=1", to_image(result["loop1"]))]
    if result["loop2"] is not None:
        panels.append(_panel(image, y, x, "R=2", to_image(result["loop2"])))
    return np.hstack(panels)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--input", required=True, help="an image file")
    parser.add_argument("--pixel", required=True, nargs=2, type=int, metavar=("Y", "X"),
                        help="the pixel whose attention is drawn: row and column in the input image")
    parser.add_argument("--output", required=True, help="the PNG to write")
    parser.add_argument("--module", default="", help="name of the CrissCrossAttention module (default: the first)")
    parser.add_argument("--save-maps", default="", help="also write the grid maps to this .npz")
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="config overrides, KEY VALUE ...")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    cfg = setup_cfg(args)
    if not cfg.MODEL.WEIGHTS:
        logger.warning("MODEL.WEIGHTS is empty: the model is RANDOMLY INITIALISED, so these maps show untrained "
                       "query/key projections, not learned context. Pass --opts MODEL.WEIGHTS <checkpoint>.")
    image = read_image_bgr(args.input)
    y, x = args.pixel
    result = pixel_attention(Predictor(cfg), image, y, x, args.module)
    if result["loop2"] is None:
        logger.warning("the module ran once (MODEL.CCNET.RECURRENCE 1): only the R=1 map is drawn")
    elif result["loops"] > 2:
        logger.info("the module ran %d times; the R=2 panel composes the first two loops", result["loops"])
    if not cv2.imwrite(args.output, render(image, y, x, result)):
        raise OSError(f"could not write {args.output!r} (a .png path in an existing folder?)")
    if args.save_maps:
        np.savez(args.save_maps, **{k: v for k, v in result.items() if v is not None})
    logger.info("pixel (%d, %d) -> grid cell %s (stride %d): wrote %s", y, x, result["cell"], result["stride"],
                args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())  # pragma: no cover
