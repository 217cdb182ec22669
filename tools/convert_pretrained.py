#!/usr/bin/env python
"""Convert an ImageNet ResNet checkpoint (torchvision or MIT CSAIL layout) to a Detectron2 ``.pkl``.

    python tools/convert_pretrained.py --format torchvision --input resnet101-63fe2227.pth --output R-101-tv.pkl
    python tools/convert_pretrained.py --format mit --input resnet101-imagenet.pth --output R-101-mit.pkl

Prints what was renamed, dropped (``fc``, BN ``num_batches_tracked``) and left unmapped, the config
keys a model must set to use the weights, and the output's sha256. Unmapped keys are an error unless
``--allow-unmapped`` is given. Then train with ``MODEL.WEIGHTS <output>``.
"""
import argparse
import sys

from ccnet_d2.checkpoint import (
    REQUIRED_CONFIG,
    SOURCE_FORMATS,
    convert_resnet_state_dict,
    infer_resnet_depth,
    load_source_state_dict,
    save_detectron2_checkpoint,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", required=True, choices=SOURCE_FORMATS,
                        help="torchvision: 7x7 stem (torchvision.models.resnet*); mit: deep 3x3 stem "
                             "(CSAILVision resnet{50,101}-imagenet.pth, used by the official CCNet)")
    parser.add_argument("--input", required=True, help="the source .pth state dict")
    parser.add_argument("--output", required=True, help="the Detectron2 checkpoint to write (.pkl)")
    parser.add_argument("--allow-unmapped", action="store_true",
                        help="write the output even when some source keys match no rule (they are left out)")
    args = parser.parse_args(argv)

    state_dict = load_source_state_dict(args.input)
    result = convert_resnet_state_dict(state_dict, args.format)
    print(f"{args.input} ({args.format} layout, ResNet-{infer_resnet_depth(state_dict)}):")
    print(result.summary())
    if result.unmapped and not args.allow_unmapped:
        print(f"error: {len(result.unmapped)} source keys match no {args.format} rule; check --format, or pass "
              "--allow-unmapped to leave them out", file=sys.stderr)
        return 1
    author = f"ccnet_d2 tools/convert_pretrained.py --format {args.format}"
    digest = save_detectron2_checkpoint(result.model, args.output, author)
    print(f"wrote {args.output}  sha256 {digest}")
    print("config for these weights:")
    print(f"  MODEL.WEIGHTS {args.output}")
    print(f"  MODEL.RESNETS.DEPTH {infer_resnet_depth(state_dict)}")
    for key, value in REQUIRED_CONFIG[args.format].items():
        print(f"  {key} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())  # pragma: no cover
