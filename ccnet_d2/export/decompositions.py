"""The project's custom operators and their reference decompositions into standard PyTorch ops.

Exported graphs must not contain ``ccnet_d2::*`` operators: ONNX has no such nodes, and an exported
program holding them only runs where the compiled extension is loaded. ``CUSTOM_OP_DECOMPOSITIONS``
is the one table that maps each custom operator to a function computing the same result from
standard ops; both export paths read it:

- ``torch.export`` programs (the ONNX exporter of ``dynamo=True`` included): ``decompose_custom_ops``
  rewrites every listed operator of an ``ExportedProgram`` with ``run_decompositions``;
- ``torch.jit.trace`` (Detectron2's ``TracingAdapter`` path): under ``custom_ops_as_reference()``,
  calls of the listed operators run their decomposition, so the tracer records standard ops.

A new operator is covered by adding one entry: its qualified name and its reference function.
"""
import contextlib
from typing import Callable, Dict

import torch
from torch.overrides import TorchFunctionMode

from ..layers.criss_cross import criss_cross_attention_torch, criss_cross_log_sum_exp

__all__ = ["CUSTOM_OP_DECOMPOSITIONS", "registered_custom_ops", "decompose_custom_ops", "custom_ops_as_reference",
           "fused_criss_cross_attention_reference"]


def fused_criss_cross_attention_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor):
    """What ``ccnet_d2::fused_criss_cross_attention`` returns, from standard ops: the output and the
    per-pixel log-sum-exp of the energies (float32)."""
    return criss_cross_attention_torch(query, key, value), criss_cross_log_sum_exp(query, key)


CUSTOM_OP_DECOMPOSITIONS: Dict[str, Callable] = {
    "ccnet_d2::criss_cross_attention": criss_cross_attention_torch,
    "ccnet_d2::fused_criss_cross_attention": fused_criss_cross_attention_reference,
}


def _overload(qualified_name: str):
    """The default overload of a registered operator, or None when it is not registered (the
    extension that defines it is not built)."""
    namespace, name = qualified_name.split("::")
    try:
        return getattr(getattr(torch.ops, namespace), name).default
    except AttributeError:
        return None


def registered_custom_ops() -> Dict[torch._ops.OpOverload, Callable]:
    """The table's operators that exist in this process, as {OpOverload: decomposition}."""
    found = {}
    for name, decomposition in CUSTOM_OP_DECOMPOSITIONS.items():
        overload = _overload(name)
        if overload is not None:
            found[overload] = decomposition
    return found


def decompose_custom_ops(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """``program`` with every custom operator of the table replaced by its decomposition; other
    operators are left as they are. Raises when a ``ccnet_d2`` operator outside the table remains."""
    program = program.run_decompositions(registered_custom_ops())
    left = sorted({str(node.target) for node in program.graph.nodes
                   if node.op == "call_function" and str(node.target).startswith("ccnet_d2.")})
    if left:
        raise RuntimeError(f"the exported graph still contains the custom operators {left}: add each with its "
                           "reference decomposition to CUSTOM_OP_DECOMPOSITIONS in ccnet_d2/export/decompositions.py")
    return program


class _ReferenceMode(TorchFunctionMode):
    def __init__(self, table):
        super().__init__()
        self.table = table
        self.packets = {overload.overloadpacket: fn for overload, fn in table.items()}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        decomposition = self.table.get(func) or self.packets.get(func)
        if decomposition is not None:
            return decomposition(*args, **kwargs)
        return func(*args, **kwargs)


@contextlib.contextmanager
def custom_ops_as_reference():
    """Within the block, calls of the table's operators run their decompositions (for tracing)."""
    with _ReferenceMode(registered_custom_ops()):
        yield
