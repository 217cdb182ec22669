#!/usr/bin/env python
"""Speed and memory of criss-cross attention backends, and RCCA (R=2) versus a non-local block.

Table 1: forward and forward+backward time (CUDA events, after warm-up; median of the timed runs) and
peak extra GPU memory of forward+backward, for backend "cuda" (the compiled op), backend "fused" (the
Triton kernel), backend "torch" (the dense PyTorch formulation) and a non-local block's attention
(full HW x HW, the same channels), per shape and dtype. Table 2: the comparison the paper reports (Huang et al., TPAMI; 108 vs 16.5 GFLOPs,
1411 MB vs 127 MB) for two criss-cross modules with shared weights versus one non-local block at
[1, 512, 97, 97], C' = 64: GFLOPs counted from the layer sizes (2 FLOPs per multiply-add; 1x1
projections, energies and aggregation) and measured peak extra memory of forward+backward.

    python tools/benchmark_attention.py                       # GPU: the CCNet shapes below, fp32 and bf16
    python tools/benchmark_attention.py --device cpu          # CPU smoke run on small shapes
    python tools/benchmark_attention.py --shapes 2,512,97,97 --dtypes bfloat16 --iters 20

Timings need a GPU; on CPU the tool runs small shapes only to show it works, and its numbers mean
nothing for the GPU. On CPU the "cuda" rows run the compiled op's CPU kernel, and the "fused" rows run
only under TRITON_INTERPRET=1 (triton's interpreter).
"""
import argparse
import datetime
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from ccnet_d2.layers import (
    CrissCrossAttention,
    compiled_op_built,
    compiled_op_has_cuda_kernels,
    compiled_op_status,
    criss_cross_attention,
    fused_kernel_available,
    fused_kernel_interpreted,
    fused_kernel_status,
)

GPU_SHAPES = ["2,512,97,97", "8,512,97,97", "2,512,128,256", "2,256,200,304"]
CPU_SHAPES = ["2,64,17,17", "1,32,25,33"]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BACKENDS = ("cuda", "fused", "torch", "non-local")
PAPER = {"RCCA (R=2)": (16.5, 127), "non-local": (108, 1411)}  # (GFLOPs, MB) as reported in the paper's comparison with the non-local block


def nonlocal_attention(query, key, value):
    """Full HW x HW attention with the criss-cross operator's conventions: plain dot products,
    softmax in float32, the weighted sum of the values. [B, C', H, W] x2, [B, C, H, W] -> [B, C, H, W]."""
    b, c, h, w = value.shape
    q = query.flatten(2).transpose(1, 2)  # [B, N, C']
    energy = torch.bmm(q, key.flatten(2))  # [B, N, N]
    weights = F.softmax(energy, dim=-1, dtype=torch.float32).to(value.dtype)
    return torch.bmm(value.flatten(2), weights.transpose(1, 2)).view(b, c, h, w)


class NonLocalBlock(nn.Module):
    """A non-local block shaped like CrissCrossAttention (1x1 query/key/value convs, gamma residual)
    but attending to all HW positions."""

    def __init__(self, channels, reduction=8):
        super().__init__()
        self.query_conv = nn.Conv2d(channels, channels // reduction, 1)
        self.key_conv = nn.Conv2d(channels, channels // reduction, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.gamma * nonlocal_attention(self.query_conv(x), self.key_conv(x), self.value_conv(x)) + x


def attention_fn(backend, device):
    if backend == "non-local":
        return nonlocal_attention
    if backend == "cuda" and device.type == "cpu":
        return torch.ops.ccnet_d2.criss_cross_attention  # the compiled op's CPU kernel
    return lambda q, k, v: criss_cross_attention(q, k, v, backend=backend)


class Timer:
    """Milliseconds of fn(): CUDA events on a GPU, perf_counter on CPU."""

    def __init__(self, device):
        self.device = device

    def __call__(self, fn, warmup, iters):
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(iters):
            if self.device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                times.append(1000 * (time.perf_counter() - t0))
        return statistics.median(times)


def peak_extra_mb(fn, device):
    """Peak memory allocated by fn() above what was allocated before it (MB), or None on CPU."""
    if device.type != "cuda":
        fn()
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def measure(backend, shape, dtype, device, args, timer):
    """(forward ms, forward+backward ms, peak extra MB of forward+backward) for one configuration."""
    b, c, h, w = shape
    cq = max(1, c // 8)
    q = torch.randn(b, cq, h, w, device=device, dtype=dtype, requires_grad=True)
    k = torch.randn(b, cq, h, w, device=device, dtype=dtype, requires_grad=True)
    v = torch.randn(b, c, h, w, device=device, dtype=dtype, requires_grad=True)
    grad = torch.randn(b, c, h, w, device=device, dtype=dtype)
    fn = attention_fn(backend, device)

    def forward():
        with torch.no_grad():
            fn(q, k, v)

    def forward_backward():
        torch.autograd.backward(fn(q, k, v), grad)
        q.grad = k.grad = v.grad = None

    peak = peak_extra_mb(forward_backward, device)
    return timer(forward, args.warmup, args.iters), timer(forward_backward, args.warmup, args.iters), peak


def fmt(value, spec):
    return "n/a" if value is None else format(value, spec)


def run_table(args, device, shapes, backends):
    timer = Timer(device)
    print("| shape [B,C,H,W] | dtype | backend | forward ms | fwd+bwd ms | fwd+bwd peak extra MB | fwd+bwd vs torch |")
    print("|---|---|---|---:|---:|---:|---:|")
    for shape in shapes:
        for dtype_name in args.dtypes:
            results = {}
            for backend in backends:
                try:
                    results[backend] = measure(backend, shape, DTYPES[dtype_name], device, args, timer)
                except torch.OutOfMemoryError:
                    results[backend] = None
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            reference = results.get("torch")
            for backend, r in results.items():
                label = "x".join(map(str, shape))
                if r is None:
                    print(f"| {label} | {dtype_name} | {backend} | OOM | OOM | OOM | |")
                    continue
                speedup = f"{reference[1] / r[1]:.2f}x" if reference else ""
                print(f"| {label} | {dtype_name} | {backend} | {r[0]:.3f} | {r[1]:.3f} | {fmt(r[2], '.1f')} | {speedup} |",
                      flush=True)


def attention_gflops(h, w, c, cq, positions):
    """GFLOPs of one attention module: 1x1 query/key/value projections, energies over `positions`
    keys per pixel and aggregation of C channels over them (2 FLOPs per multiply-add)."""
    pixels = h * w
    macs = pixels * (2 * c * cq + c * c) + pixels * positions * cq + pixels * positions * c
    return 2 * macs / 1e9


def run_module_comparison(args, device):
    """RCCA (R=2: one CrissCrossAttention applied twice) vs one non-local block at [1, 512, 97, 97]."""
    b, c, h, w = 1, 512, 97, 97
    cq = c // 8
    rcca = CrissCrossAttention(c, reduction=8, backend=args.module_backend).to(device)
    nn.init.constant_(rcca.gamma, 1.0)
    modules = {"RCCA (R=2)": (lambda x: rcca(rcca(x)), 2 * attention_gflops(h, w, c, cq, h + w - 1)),
               "non-local": (NonLocalBlock(c).to(device), attention_gflops(h, w, c, cq, h * w))}
    print(f"\nRCCA vs non-local at [{b}, {c}, {h}, {w}], C'={cq}, float32, CrissCrossAttention backend "
          f"{args.module_backend!r}")
    print("| module | GFLOPs (counted) | paper GFLOPs | fwd+bwd peak extra MB | paper MB |")
    print("|---|---:|---:|---:|---:|")
    for name, (module, gflops) in modules.items():
        x = torch.randn(b, c, h, w, device=device, requires_grad=True)

        def step():
            module(x).sum().backward()
            x.grad = None

        peak = None
        if device.type == "cuda":  # memory is a GPU figure; the non-local block is also too slow for a CPU
            try:
                peak = peak_extra_mb(step, device)
            except torch.OutOfMemoryError:
                print(f"{name}: out of GPU memory")
        paper_gflops, paper_mb = PAPER[name]
        print(f"| {name} | {gflops:.1f} | {paper_gflops} | {fmt(peak, '.0f')} | {paper_mb} |")
    ratio = modules["non-local"][1] / modules["RCCA (R=2)"][1]
    print(f"counted FLOPs: RCCA (R=2) needs {100 * (1 - 1 / ratio):.1f}% fewer than non-local (paper: about 85%)")


def header(device):
    print(f"# criss-cross attention benchmark, {datetime.datetime.now().isoformat(timespec='minutes')}")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    print(f"device: {device} ({name}); torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"python {platform.python_version()}; compiled op: {compiled_op_status()}; "
          f"fused kernel: {fused_kernel_status()}")
    if device.type == "cuda":
        print(f"TF32 matmul allowed: {torch.backends.cuda.matmul.allow_tf32}")
    else:
        print("NOTE: CPU run -- timings need a GPU; this run only shows that the tool works. "
              "'cuda' rows run the compiled op's CPU kernel, 'fused' rows triton's interpreter; "
              "memory is not measured on CPU.")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shapes", nargs="+", help=f"B,C,H,W (default on GPU: {' '.join(GPU_SHAPES)})")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=sorted(DTYPES))
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--module-backend", default="auto", help="CrissCrossAttention backend in the RCCA comparison")
    parser.add_argument("--skip-modules", action="store_true", help="leave out the RCCA vs non-local comparison")
    return parser.parse_args()


def main():
    args = parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU here; run with --device cpu for a smoke run")
    backends = list(args.backends)
    if "cuda" in backends and not (compiled_op_has_cuda_kernels() if device.type == "cuda"
                                   else compiled_op_built()):
        print(f"backend 'cuda' left out: the compiled op is {compiled_op_status()}")
        backends.remove("cuda")
    if "fused" in backends and not (fused_kernel_available() if device.type == "cuda" else fused_kernel_interpreted()):
        print(f"backend 'fused' left out: the fused kernel is {fused_kernel_status()}"
              + ("" if device.type == "cuda" else "; on CPU it runs under TRITON_INTERPRET=1"))
        backends.remove("fused")
    shapes = [tuple(int(s) for s in text.split(",")) for text in
              (args.shapes or (GPU_SHAPES if device.type == "cuda" else CPU_SHAPES))]
    header(device)
    print(f"warm-up {args.warmup}, timed runs {args.iters} (median)\n")
    run_table(args, device, shapes, backends)
    if not args.skip_modules:
        run_module_comparison(args, device)


if __name__ == "__main__":
    main()
