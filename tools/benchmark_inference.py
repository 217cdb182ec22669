#!/usr/bin/env python
"""Inference latency, arithmetic rate (GFLOP/s and its share of the machine's measured GEMM rate) and peak
memory of CCNet R-50/R-101 and Mask R-CNN + RCCA R-50 (the configs in configs/, random weights) in PyTorch
eager, torch.compile, ONNX Runtime and ONNX Runtime INT8, on CPU and, when a GPU is present, on the GPU;
then images per second over a folder of images; optionally ONNX Runtime's operator times (--profile) and
the accuracy of INT8 on trained models (docs/DEPLOYMENT.md).

    python tools/benchmark_inference.py                                  # everything, N=3 after 1 warm-up
    python tools/benchmark_inference.py --models "CCNet R-50" --runtimes eager onnxruntime --iters 5
    python tools/benchmark_inference.py --devices cpu --threads 2 --throughput-images 0 --profile
    python tools/benchmark_inference.py --int8-accuracy CONFIG WEIGHTS   # adds the INT8 accuracy table (repeatable)
"""
import argparse
import os

import torch

from ccnet_d2.export.arithmetic_rate import gemm_rate
from ccnet_d2.export.benchmark import (BENCHMARK_MODELS, RUNTIMES, compare_with_gemm, environment_lines,
                                       format_int8_accuracy,
                                       format_profiles, format_table, format_throughput_table, gemm_lines,
                                       int8_accuracy_row, run_benchmark, run_throughput)

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
    parser.add_argument("--throughput-images", type=int, default=4, metavar="N",
                        help="images in the folder of the throughput rows (eager and onnxruntime); 0: no such rows")
    parser.add_argument("--profile", action="store_true",
                        help="the ONNX Runtime rows also list their most expensive operator types (one profiled run)")
    parser.add_argument("--int8-accuracy", nargs=2, metavar=("CONFIG", "WEIGHTS"), action="append", default=[],
                        help="a trained model: its float and INT8 ONNX files on DATASETS.TEST[0] (repeatable)")
    parser.add_argument("--calibration-images", type=int, default=16, metavar="N",
                        help="--int8-accuracy: images of DATASETS.TRAIN to calibrate on (default 16)")
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 1 or args.threads < 1:
        parser.error(f"--iters, --warmup and --threads must be >= 1, got {args.iters}, {args.warmup}, {args.threads}")
    if args.throughput_images < 0 or args.calibration_images < 1:
        parser.error(f"--throughput-images must be >= 0 and --calibration-images >= 1, got "
                     f"{args.throughput_images}, {args.calibration_images}")
    if "cuda" in args.devices and not torch.cuda.is_available():
        parser.error("--devices cuda: no CUDA GPU is visible")
    for path in (p for pair in args.int8_accuracy for p in pair):
        if not os.path.isfile(path):
            parser.error(f"--int8-accuracy: no such file {path!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print("\n".join(environment_lines(args.threads, args.warmup, args.iters)))
    before = {device: gemm_rate(device, args.threads) for device in args.devices}
    print("\n".join(gemm_lines(before, "before the runs")))
    rows = run_benchmark(CONFIG_ROOT, args.models, args.runtimes, args.devices, args.warmup, args.iters,
                         args.threads, profile=args.profile)
    throughput = run_throughput(CONFIG_ROOT, args.models, args.runtimes, args.devices, args.throughput_images,
                                args.threads) if args.throughput_images else []
    accuracy = [int8_accuracy_row(config, weights, args.calibration_images) for config, weights in args.int8_accuracy]
    after = {device: gemm_rate(device, args.threads) for device in args.devices}
    peak = {device: max(*before[device].values(), *after[device].values()) for device in args.devices}
    compare_with_gemm(rows, peak)
    print("\n" + "\n".join(gemm_lines(before, "before the runs") + gemm_lines(after, "after the runs")))
    print("rows compared with the fastest: " + ", ".join(f"{d} {rate:.0f} GFLOP/s" for d, rate in peak.items()))
    print("\n" + format_table(rows))
    if args.profile:
        print("\nONNX Runtime, operator types taking the most time (profiler, one run):\n" + format_profiles(rows))
    if throughput:
        print("\n" + format_throughput_table(throughput))
    if accuracy:
        print("\n" + format_int8_accuracy(accuracy))
    print(f"load average (1, 5, 15 min) after the runs: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return rows, throughput, accuracy


if __name__ == "__main__":
    main()
