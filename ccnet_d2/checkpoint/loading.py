"""Loading ``MODEL.WEIGHTS`` with an error that names the file when it is not a checkpoint.

torch and Detectron2 report a file of another kind with messages that name neither the file nor the
remedy (``KeyError: 101``, advice to set ``weights_only=False``, "failed finding central directory").
"""
import contextlib
import pickle
import zipfile

__all__ = ["ACCEPTED_CHECKPOINTS", "explain_checkpoint_errors"]

ACCEPTED_CHECKPOINTS = (
    "a Detectron2 / ccnet_d2 checkpoint (.pth written by training or by tools/convert_ccnet_checkpoint.py), "
    "a Detectron2 model-zoo .pkl (e.g. from tools/convert_pretrained.py), or a detectron2:// or https:// "
    "URL of one; published CCNet and ImageNet files must be converted first (docs/MODEL_ZOO.md)")


@contextlib.contextmanager
def explain_checkpoint_errors(path: str):
    """Re-raise the errors torch and pickle give for a file that is not a checkpoint as a ValueError
    naming ``path`` and the accepted formats (the original error stays attached as the cause)."""
    try:
        yield
    except (pickle.UnpicklingError, EOFError, KeyError, zipfile.BadZipFile, RuntimeError) as e:
        raise ValueError(f"cannot load {path!r} as a checkpoint (torch/pickle raised {type(e).__name__}, shown "
                         f"above). Expected {ACCEPTED_CHECKPOINTS}") from e
