#!/usr/bin/env python
"""Inference latency and peak memory of CCNet R-50/R-101 and Mask R-CNN + RCCA R-50 (the configs in
configs/, random weights) in PyTorch eager, torch.compile and ONNX Runtime, on CPU and, when a GPU is
present, on the GPU (docs/DEPLOYMENT.md).

    python tools/benchmark_inference.py                                  # everything, N=3 after 1 warm-up
    python tools/benchmark_inference.py --models "CCNet R-50" --runtimes eager onnxruntime --iters 5
    python tools/benchmark_inference.py --devices cpu --threads 2
"""
import argparse
import os

import torch

from ccnet_d2.export.benchmark import BENCHMARK_MODELS, RUNTIMES, environment_lines, format_table, run_benchmark

CONFIG_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(BENCHMARK_MODELS), default=list(BENCHMARK_MODELS))
    parser.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=list(RUNTIMES))
    parser.add_argument("--devices", nargs="+", choices=("cpu", "cuda"),
                        default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    parser.add_argument("--iters", type=int, default=3, help="timed runs (the median is reported)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed runs first (torch.compile compiles in the first)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="CPU threads of torch and ONNX Runtime")
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 1 or args.threads < 1:
        parser.error(f"--iters, --warmup and --threads must be >= 1, got {args.iters}, {args.warmup}, {args.threads}")
    if "cuda" in args.devices and not torch.cuda.is_available():
        parser.error("--devices cuda: no CUDA GPU is visible")
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print("\n".join(environment_lines(args.threads, args.warmup, args.iters)))
    rows = run_benchmark(CONFIG_ROOT, args.models, args.runtimes, args.devices, args.warmup, args.iters, args.threads)
    print("\n" + format_table(rows))
    print(f"load average (1, 5, 15 min) after the runs: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return rows


if __name__ == "__main__":
    main()
