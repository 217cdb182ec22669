#!/usr/bin/env python
"""Convert a published CCNet checkpoint to a ccnet_d2 model checkpoint, checked against a config.

    python tools/convert_ccnet_checkpoint.py --format official --input ccnet_r2.pth \
        --config-file configs/Cityscapes-SemanticSegmentation/ccnet_R_101_official_r2_769x769_cityscapes.yaml \
        --output ccnet_R_101_official_r2.pth
    python tools/convert_ccnet_checkpoint.py --format mmseg \
        --input ccnet_r101-d8_769x769_80k_cityscapes_20200618_011502-ad3cd481.pth \
        --config-file configs/Cityscapes-SemanticSegmentation/ccnet_R_101_mmseg_769x769_cityscapes.yaml \
        --output ccnet_R_101_mmseg_769x769_80k.pth

The config's model is built (on CPU) and the converted tensors must set every one of its parameters
and buffers with the right shapes: any source key no rule covers, any model key left unset and any
shape mismatch is reported and stops the conversion. Prints a summary and the sha256 of the input and
the output; then evaluate with ``tools/train_net.py --eval-only --config-file <config> MODEL.WEIGHTS <output>``.
"""
import argparse
import sys

import torch

from detectron2.config import get_cfg
from detectron2.modeling import build_model

from ccnet_d2 import add_ccnet_config
from ccnet_d2.checkpoint import (CCNET_FORMATS, conversion_problems, convert_ccnet_state_dict, file_sha256,
                                 load_source_state_dict)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", required=True, choices=CCNET_FORMATS,
                        help="official: the authors' Cityscapes models (speedinghzl/CCNet); mmseg: "
                             "mmsegmentation's CCNet model zoo")
    parser.add_argument("--input", required=True, help="the published .pth")
    parser.add_argument("--config-file", required=True, help="the ccnet_d2 config the weights are for")
    parser.add_argument("--output", required=True, help="the ccnet_d2 checkpoint to write (.pth)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, KEY VALUE ...")
    args = parser.parse_args(argv)

    cfg = add_ccnet_config(get_cfg())
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list([*args.opts, "MODEL.DEVICE", "cpu"])
    model_state = build_model(cfg).state_dict()

    result = convert_ccnet_state_dict(load_source_state_dict(args.input), args.format)
    print(f"{args.input} ({args.format}): {len(result.renamed)} tensors converted, "
          f"{len(result.dropped)} folded into a norm ({', '.join(result.dropped) or 'none'})")
    problems = conversion_problems(result, model_state)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"error: {len(problems)} problems; is --config-file the config of this checkpoint (depth, classes)?",
              file=sys.stderr)
        return 1
    author = f"ccnet_d2 tools/convert_ccnet_checkpoint.py --format {args.format}"
    torch.save({"model": result.model, "__author__": author}, args.output)
    print(f"input  sha256 {file_sha256(args.input)}")
    print(f"wrote {args.output}  sha256 {file_sha256(args.output)}")
    print(f"evaluate: python tools/train_net.py --eval-only --config-file {args.config_file} "
          f"MODEL.WEIGHTS {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())  # pragma: no cover
