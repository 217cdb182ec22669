"""Access to the compiled CUDA criss-cross op (`ccnet_d2._C`).

The extension is optional: it is absent on machines built without a CUDA toolkit. Only a missing
module counts as absent; an extension that exists but fails to load raises, so a broken build is
never hidden behind the PyTorch fallback.
"""
import importlib

_extension = None
_status = None


def _load():
    global _extension, _status
    if _status is not None:
        return _extension
    try:
        _extension = importlib.import_module("ccnet_d2._C")
        _status = "built"
    except ModuleNotFoundError as e:
        if e.name != "ccnet_d2._C":
            raise
        _status = "not built (ccnet_d2._C is absent)"
    return _extension


def extension_available() -> bool:
    """True when the compiled op is importable."""
    return _load() is not None


def extension_status() -> str:
    """A one-line description of the compiled op, for logs and the installer."""
    _load()
    return _status


def criss_cross_attention_cuda(query, key, value):
    """Forward/backward through the compiled kernel (CUDA tensors)."""
    raise NotImplementedError("the CUDA kernel is being written (issue 3)")
