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

import torch  # noqa: E402

from ccnet_d2.layers import fused_kernel_status  # noqa: E402

from .fused_kernel_checks import CASES  # noqa: E402


def main(names):
    torch.set_num_threads(1)
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
