"""The fused Triton kernel without a GPU: every case of ``fused_kernel_checks.CASES`` on CPU tensors
through triton's interpreter (one subprocess, ``fused_interpreter_run.py``), every program compiled
ahead of time for sm_80, sm_89 and sm_90 against those architectures' limits, and the backend policy.
The same cases run natively on a GPU in ``test_fused_kernel_cuda.py``.
"""
import json
import subprocess
import sys

import pytest
import torch

from ccnet_d2.layers import criss_cross_attention, criss_cross_attention_torch
from ccnet_d2.layers import fused_kernel_available, fused_kernel_interpreted, fused_kernel_status
from ccnet_d2.layers import criss_cross as criss_cross_module

from ..common import REPO_ROOT, tool_env
from .fused_kernel_checks import CASES

needs_triton = pytest.mark.skipif(not fused_kernel_available(), reason=f"the fused kernel is {fused_kernel_status()}")
needs_compiled_programs = pytest.mark.skipif(fused_kernel_interpreted(),
                                             reason="TRITON_INTERPRET=1 is set for this process: no compiled programs")


@pytest.fixture(scope="module")
def interpreter_results(request):
    """Results of the selected cases, from one interpreter subprocess."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_interpreted_on_cpu"]
    env = tool_env(TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "tests.layers.fused_interpreter_run", *selected]
    run = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    if run.returncode != 0 or not lines:
        pytest.fail(f"the interpreter run exited with {run.returncode}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    status = lines[0].get("status", "")
    assert status.startswith("Triton interpreter"), f"the subprocess did not interpret the programs: {status}"
    return {line["case"]: line for line in lines[1:]}


@needs_triton
@pytest.mark.parametrize("case", sorted(CASES))
def test_interpreted_on_cpu(case, interpreter_results):
    if case not in interpreter_results:
        pytest.fail(f"{case}: no result from the interpreter run (it stopped early)")
    error = interpreter_results[case]["error"]
    if error is not None:
        pytest.fail(f"{case} under the Triton interpreter:\n{error}")


@needs_triton
@needs_compiled_programs
@pytest.mark.parametrize("arch", [80, 89, 90])
def test_programs_compile_within_the_limits_of(arch):
    """Every program, pass, dtype and float32 precision the launchers can run compiles for sm_<arch>
    without register spills and within the architecture's shared memory."""
    from ccnet_d2.layers.fused_resources import compile_resources, over_limits

    compiled = list(compile_resources(arch))
    # per dtype: 4 attention programs x 2 passes (x 2 precisions for float32), and the D program
    assert len(compiled) == 4 * 2 * 2 + 1 + 2 * (4 * 2 + 1)
    problems = [f"{r.program} {r.dtype} {r.flags}: {', '.join(over_limits(r))}" for r in compiled if over_limits(r)]
    assert not problems, "\n".join(problems)


def test_limit_check_flags_spills_and_shared_memory():
    """Negative control of the compile check: a variant that spills or needs too much shared memory is named."""
    from ccnet_d2.layers.fused_resources import ProgramResources, over_limits

    fits = ProgramResources("forward", "float32", "", 89, 255, 0, 0, 99 * 1024)
    assert over_limits(fits) == []
    spills = over_limits(fits._replace(stack_bytes=8))
    too_big = over_limits(fits._replace(shared_bytes=99 * 1024 + 1))
    assert spills == ["register spills: stack 8 B, local 0 B"]
    assert too_big == [f"shared memory {99 * 1024 + 1} B > {99 * 1024} B"]


@pytest.mark.parametrize("verified", [{}, {"fused": ("a GPU", "a date", 3.0)}])
def test_auto_uses_the_torch_backend_on_cpu(verified, monkeypatch):
    """Verified GPU kernels are for CUDA tensors only: CPU tensors always take the torch backend."""
    monkeypatch.setattr(criss_cross_module, "GPU_VERIFIED_KERNELS", verified)
    q = torch.randn(1, 2, 3, 4)
    assert criss_cross_module._resolve_backend("auto", q) == "torch"
    torch.testing.assert_close(criss_cross_attention(q, q, q, backend="auto"), criss_cross_attention_torch(q, q, q),
                               rtol=0, atol=0)


@needs_triton
@needs_compiled_programs
def test_fused_backend_refuses_cpu_tensors_outside_the_interpreter():
    q = torch.randn(1, 2, 3, 4)
    with pytest.raises(ValueError, match="needs CUDA tensors, got cpu .*use backend='torch'"):
        criss_cross_attention(q, q, q, backend="fused")
    with pytest.raises(TypeError, match="float32, float16 or bfloat16, got torch.float64"):
        criss_cross_attention(q.double(), q.double(), q.double(), backend="fused")
