"""What a model computes and what the machine can compute, for the benchmark's GFLOP/s columns.

- :func:`count_gflops`: the multiply-accumulates of one inference (convolutions, linear layers, matrix
  products and einsums, the attention's included), counted by fvcore on the traced graph, times 2.
  Element-wise work (normalisation, activations, resizing, RoIAlign, NMS) is not counted: it is a few
  percent of the arithmetic and none of it runs on the matrix units.
- :func:`gemm_rate`: the machine's measured float32 matrix-multiply rate, the median of several runs of
  large square GEMMs (1024 and 2048, after a second of warm-up) in PyTorch and, on CPU, in ONNX Runtime.
  The benchmark measures it before and after its rows and compares each row with the fastest of these
  measurements (on this project's CPU machine the 1024 GEMM was the fastest, larger ones slower; a
  convolution can run faster than all of them, so a share above 100 % is possible). All count 2
  floating-point operations per multiply-accumulate.
"""
import statistics
import time
from typing import Dict, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["count_gflops", "gemm_rate"]


def count_gflops(graph: nn.Module, inputs: tuple) -> float:
    """Billions of floating-point operations (2 per multiply-accumulate) of ``graph(*inputs)``."""
    from fvcore.nn import jit_handles
    from fvcore.nn.jit_analysis import JitModelAnalysis

    analysis = JitModelAnalysis(graph, inputs).set_op_handle(**{
        "aten::_convolution": jit_handles.conv_flop_jit,
        "aten::addmm": jit_handles.addmm_flop_jit,
        "aten::bmm": jit_handles.bmm_flop_jit,
        "aten::einsum": jit_handles.einsum_flop_jit,
        "aten::matmul": jit_handles.matmul_flop_jit,
        "aten::mm": jit_handles.matmul_flop_jit,
        "aten::linear": jit_handles.linear_flop_jit,
    })
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with torch.no_grad():
        return 2 * analysis.total() / 1e9


def _median_seconds(run, repeats: int, warm_up_seconds: float = 1.0) -> float:
    """Median time of ``repeats`` runs after running for ``warm_up_seconds`` (the cores reach their clock and
    the library its buffers: measured on this project's CPU machine, the first runs of an idle process were
    up to 2x slower)."""
    start = time.perf_counter()
    while time.perf_counter() - start < warm_up_seconds:
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _onnxruntime_matmul(size: int, threads: int):
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    spec = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [size, size]) for name in "ABC"]
    graph = helper.make_graph([helper.make_node("MatMul", ["A", "B"], ["C"])], "gemm", spec[:2], spec[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {name: rng.standard_normal((size, size), dtype=np.float32) for name in "AB"}
    return lambda: session.run(None, feed)


def gemm_rate(device: str, threads: int, sizes: Sequence[int] = (1024, 2048), repeats: int = 9) -> Dict[str, float]:
    """GFLOP/s of float32 ``n`` x ``n`` GEMMs (median of ``repeats`` each) per library and size:
    {"torch 1024": ..., "onnxruntime 1024": ..., ...}; on a GPU torch's only (TF32 off)."""
    rates = {}
    for size in sizes:
        flop = 2 * size ** 3 / 1e9
        a, b = (torch.randn(size, size, generator=torch.Generator().manual_seed(i)).to(device) for i in (0, 1))
        if device == "cuda":
            allow_tf32 = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = False
            try:
                rates[f"torch {size}"] = flop / _median_seconds(lambda: (a @ b, torch.cuda.synchronize()), repeats)
            finally:
                torch.backends.cuda.matmul.allow_tf32 = allow_tf32
            continue
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            rates[f"torch {size}"] = flop / _median_seconds(lambda: a @ b, repeats)
        finally:
            torch.set_num_threads(previous)
        rates[f"onnxruntime {size}"] = flop / _median_seconds(_onnxruntime_matmul(size, threads), repeats)
    return rates
