"""Runs every case of ``fused_kernel_checks.CASES`` on CPU tensors through triton's interpreter.

Started as ``python -m tests.layers.fused_interpreter_run`` in a subprocess by
``test_fused_kernel.py``: triton reads TRITON_INTERPRET when a program is decorated, i.e. when
``ccnet_d2`` is imported, so the interpreter needs a process of its own. Prints one JSON line per case:
``{"case": name, "error": null or the traceback, "seconds": ...}``, after one line with the kernel status.
"""
import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported (through ccnet_d2)

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import triton.language as tl  # noqa: E402
from triton.runtime import interpreter  # noqa: E402

from ccnet_d2.layers import fused_kernel_status  # noqa: E402

from .fused_kernel_checks import CASES  # noqa: E402


def _widen_bfloat16_dot_operands():
    """triton's interpreter multiplies bfloat16 tiles as their uint16 storage; widen them to float32
    (exact: bfloat16 is the upper half of a float32) before the product, as the GPU's MMA does."""
    product = interpreter.InterpreterBuilder.create_dot

    def widen(handle):
        if handle.dtype.scalar != tl.bfloat16:
            return handle
        return interpreter.TensorHandle((handle.data.astype(np.uint32) << 16).view(np.float32), tl.float32)

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        return product(self, widen(a), widen(b), d, input_precision, max_num_imprecise_acc)

    interpreter.InterpreterBuilder.create_dot = create_dot


def main(names):
    torch.set_num_threads(1)
    _widen_bfloat16_dot_operands()
    print(json.dumps({"status": fused_kernel_status()}), flush=True)
    for name in names or CASES:
        start = time.perf_counter()
        try:
            CASES[name]("cpu")
            error = None
        except Exception:  # reported to the parent test, which fails with it
            error = traceback.format_exc()
        print(json.dumps({"case": name, "error": error, "seconds": round(time.perf_counter() - start, 2)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
