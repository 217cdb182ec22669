"""Ahead-of-time compilation of the fused programs for GPU architectures, without a GPU.

Every variant the launchers can run (``fused_op.program_variants()``) is compiled by
``triton.compile`` for a ``GPUTarget``; registers, spill stack and local memory per thread come from
the cubin (``cuobjdump --dump-resource-usage``, shipped with triton), shared memory from the kernel
metadata. ``tools/fused_kernel_resources.py`` prints the table; the tests check it against the limits.
"""
import os
import re
import subprocess
import tempfile
from typing import NamedTuple

from . import fused_op

__all__ = ["ARCH_LIMITS", "ProgramResources", "compile_resources", "over_limits"]

# (shared memory per block in bytes, registers per thread) that a kernel may use, per compute capability
ARCH_LIMITS = {80: (163 * 1024, 255), 89: (99 * 1024, 255), 90: (227 * 1024, 255)}


class ProgramResources(NamedTuple):
    program: str
    dtype: str
    flags: str
    arch: int
    registers: int
    stack_bytes: int
    local_bytes: int
    shared_bytes: int


def _cubin_usage(cubin: bytes, name: str):
    """(registers, stack bytes, local bytes) of function `name` in a cubin."""
    import triton
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "program.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        report = subprocess.run([tool, "--dump-resource-usage", path], capture_output=True, text=True,
                                check=True).stdout
    match = re.search(rf"Function {re.escape(name)}:\s*REG:(\d+) STACK:(\d+) SHARED:\d+ LOCAL:(\d+)", report)
    if match is None:
        raise RuntimeError(f"cuobjdump reported no resource usage for {name}:\n{report}")
    return tuple(int(x) for x in match.groups())


def compile_resources(arch: int):
    """ProgramResources of every launchable variant compiled for sm_<arch> (CUDA, 32-thread warps)."""
    import triton
    from triton.backends.compiler import GPUTarget

    target = GPUTarget("cuda", arch, 32)
    for name, dtype, kernel, signature, constexprs, options in fused_op.program_variants():
        compiled = triton.compile(triton.compiler.ASTSource(fn=kernel, signature=signature, constexprs=constexprs),
                                  target=target, options=options)
        registers, stack, local = _cubin_usage(compiled.asm["cubin"], compiled.metadata.name)
        flags = ",".join(f"{k}={v}" for k, v in constexprs.items() if not k.startswith("BLOCK"))
        yield ProgramResources(name, str(dtype).replace("torch.", ""), flags, arch, registers, stack, local,
                               compiled.metadata.shared)


def over_limits(resources: ProgramResources):
    """What a compiled variant exceeds on its architecture (register spills count), as sentences."""
    shared_limit, register_limit = ARCH_LIMITS[resources.arch]
    problems = []
    if resources.shared_bytes > shared_limit:
        problems.append(f"shared memory {resources.shared_bytes} B > {shared_limit} B")
    if resources.registers > register_limit:
        problems.append(f"{resources.registers} registers > {register_limit}")
    if resources.stack_bytes or resources.local_bytes:
        problems.append(f"register spills: stack {resources.stack_bytes} B, local {resources.local_bytes} B")
    return problems
