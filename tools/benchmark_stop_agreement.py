#!/usr/bin/env python
"""What agreeing on a stop costs a multi-process training iteration: the time each process spends per
iteration in the stop check of ``SaveOnSignal``, for its asynchronous all-reduce
(``ccnet_d2.engine.interruption.StopAgreement``) and, for comparison, for a blocking ``all_gather`` of
the flag (Detectron2's ``comm.all_gather``), with a stand-in for the training step in between.

    python tools/benchmark_stop_agreement.py [--processes 2] [--iterations 200] [--step-ms 50]

Prints a table (median and 90th percentile in microseconds, over all processes' iterations).
"""
import argparse
import datetime
import os
import platform
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.engine import launch
from detectron2.utils import comm

from ccnet_d2.engine.interruption import StopAgreement


def _step(milliseconds: float) -> None:
    """A stand-in for a training iteration: this long of matrix products."""
    a = torch.randn(256, 256)
    end = time.perf_counter() + milliseconds / 1000
    while time.perf_counter() < end:
        a = torch.tanh(a @ a)


def _measure(check, iterations: int, step_ms: float):
    times = []
    for _ in range(iterations):
        _step(step_ms)
        start = time.perf_counter()
        check()
        times.append(time.perf_counter() - start)
    return times


def _worker(args, results):
    torch.set_num_threads(1)
    agreement = StopAgreement()
    rows = {
        "asynchronous all-reduce (StopAgreement)": _measure(lambda: agreement.exchange(0), args.iterations, args.step_ms),
        "blocking all_gather (comm.all_gather)": _measure(lambda: comm.all_gather(None), args.iterations, args.step_ms),
    }
    agreement.close()
    for name, times in rows.items():
        results.append((name, comm.get_rank(), times))
    dist.barrier()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--step-ms", type=float, default=50.0, help="the stand-in training step, milliseconds")
    args = parser.parse_args()
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # gloo between CPU processes
    results = mp.Manager().list()
    launch(_worker, args.processes, dist_url="auto", args=(args, results))
    print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores; "
          f"Python {platform.python_version()}, torch {torch.__version__}; {args.processes} processes over gloo; "
          f"{args.iterations} iterations with a {args.step_ms:g} ms step between checks")
    print("| stop check | median (us) | 90th percentile (us) |")
    print("|---|---|---|")
    for name in dict.fromkeys(name for name, _, _ in results):
        times = sorted(t * 1e6 for n, _, ts in results if n == name for t in ts)
        print(f"| {name} | {statistics.median(times):.0f} | {times[int(0.9 * (len(times) - 1))]:.0f} |")


if __name__ == "__main__":
    main()
