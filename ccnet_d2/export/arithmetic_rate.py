"""What a model computes and what the machine can compute, for the benchmark's GFLOP/s columns.

- :func:`count_gflops`: the multiply-accumulates of one inference (convolutions, linear layers, matrix
  products and einsums, the attention's included), counted by fvcore on the traced graph, times 2.
  Element-wise work (normalisation, activations, resizing, RoIAlign, NMS) is not counted: it is a few
  percent of the arithmetic and none of it runs on the matrix units.
- :func:`gemm_rate`: the machine's measured float32 matrix-multiply rate, the median of several runs of a
  large square GEMM in PyTorch and, on CPU, in ONNX Runtime; the faster of the two is the reference a
  benchmark row is compared with. Both count 2 floating-point operations per multiply-accumulate.
"""
import statistics
import time
from typing import Dict

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


def _median_seconds(run, repeats: int) -> float:
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


def gemm_rate(device: str, threads: int, size: int = 2048, repeats: int = 9) -> Dict[str, float]:
    """GFLOP/s of a float32 ``size`` x ``size`` GEMM (median of ``repeats``): {"torch": ..., "onnxruntime": ...}
    on CPU, {"torch": ...} on a GPU (TF32 off)."""
    flop = 2 * size ** 3 / 1e9
    a, b = (torch.randn(size, size, generator=torch.Generator().manual_seed(i)).to(device) for i in (0, 1))
    if device == "cuda":
        allow_tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            seconds = _median_seconds(lambda: (a @ b, torch.cuda.synchronize()), repeats)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = allow_tf32
        return {"torch": flop / seconds}
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rates = {"torch": flop / _median_seconds(lambda: a @ b, repeats)}
    finally:
        torch.set_num_threads(previous)
    rates["onnxruntime"] = flop / _median_seconds(_onnxruntime_matmul(size, threads), repeats)
    return rates
