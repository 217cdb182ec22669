#!/usr/bin/env python
"""Registers and shared memory of every fused Triton program, compiled ahead of time (no GPU needed).

    python tools/fused_kernel_resources.py                 # sm_80, sm_89, sm_90: one row per program and dtype
    python tools/fused_kernel_resources.py --arch 90 --all # every variant (pass, precision) separately

Per program and dtype the summary gives the largest value over its variants (row/column pass, float32
product precision): registers per thread, spill stack bytes, shared memory KB. Limits per architecture
are in ``ccnet_d2.layers.fused_resources.ARCH_LIMITS``.
"""
import argparse
import datetime

import triton

from ccnet_d2.layers.fused_resources import ARCH_LIMITS, compile_resources, over_limits


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, nargs="+", default=sorted(ARCH_LIMITS), choices=sorted(ARCH_LIMITS))
    parser.add_argument("--all", action="store_true", help="one row per variant instead of the per-program maximum")
    args = parser.parse_args()
    now = datetime.datetime.now().isoformat(timespec="minutes")
    print(f"# fused kernel resources, {now}, triton {triton.__version__}")
    results = {arch: list(compile_resources(arch)) for arch in args.arch}
    problems = [f"sm_{r.arch} {r.program} {r.dtype} {r.flags}: {', '.join(over_limits(r))}"
                for rows in results.values() for r in rows if over_limits(r)]
    if args.all:
        print("| arch | program | dtype | flags | registers | spill stack B | shared KB |")
        print("|---|---|---|---|---:|---:|---:|")
        for arch, rows in results.items():
            for r in rows:
                print(f"| sm_{arch} | {r.program} | {r.dtype} | {r.flags} | {r.registers} | {r.stack_bytes} | "
                      f"{r.shared_bytes / 1024:g} |")
    else:
        print("| program | dtype | " + " | ".join(f"sm_{a} regs / spill B / smem KB" for a in results) + " |")
        print("|---|---|" + "---:|" * len(results))
        keys = dict.fromkeys((r.program, r.dtype) for rows in results.values() for r in rows)
        for program, dtype in keys:
            cells = []
            for rows in results.values():
                mine = [r for r in rows if (r.program, r.dtype) == (program, dtype)]
                cells.append(f"{max(r.registers for r in mine)} / {max(r.stack_bytes + r.local_bytes for r in mine)}"
                             f" / {max(r.shared_bytes for r in mine) / 1024:g}")
            print(f"| {program} | {dtype} | " + " | ".join(cells) + " |")
    print("limits (smem KB per block, registers per thread): "
          + ", ".join(f"sm_{a}: {ARCH_LIMITS[a][0] // 1024} KB, {ARCH_LIMITS[a][1]}" for a in results))
    print("\n".join(problems) if problems else "every variant fits its architecture without register spills")


if __name__ == "__main__":
    main()
