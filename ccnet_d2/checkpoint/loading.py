"""Loading ``MODEL.WEIGHTS`` with an error that names the file when it is not a checkpoint.

torch and Detectron2 report a file of another kind with messages that name neither the file nor the
remedy (``KeyError: 101``, advice to set ``weights_only=False``, "failed finding central directory").
"""
import contextlib

__all__ = ["ACCEPTED_CHECKPOINTS", "explain_checkpoint_errors", "explain_weights_errors"]

ACCEPTED_CHECKPOINTS = (
    "a Detectron2 / ccnet_d2 checkpoint (.pth written by training or by tools/convert_ccnet_checkpoint.py), "
    "a Detectron2 model-zoo .pkl (e.g. from tools/convert_pretrained.py), or a detectron2:// or https:// "
    "URL of one, or a published CCNet checkpoint by name (ccnet://<source>/<model>, docs/MODEL_ZOO.md); other "
    "published CCNet and ImageNet files must be converted first (docs/MODEL_ZOO.md)")


@contextlib.contextmanager
def explain_checkpoint_errors(path: str):
    """Re-raise any error of loading ``path`` as a ValueError naming the file and the accepted formats.

    Unpickling arbitrary bytes can fail with almost any exception type (UnpicklingError, EOFError,
    KeyError, UnicodeDecodeError, RuntimeError, ...), so none is singled out; the original error stays
    attached as the cause and is printed above this one.
    """
    from ..model_zoo.weights import PublishedWeightsError

    try:
        yield
    except PublishedWeightsError:
        raise  # a ccnet:// name that could not be fetched: its message already names the URL and the cache
    except Exception as e:
        raise ValueError(f"cannot load {path!r} as a checkpoint ({type(e).__name__}, shown above). Expected "
                         f"{ACCEPTED_CHECKPOINTS}") from e


@contextlib.contextmanager
def explain_weights_errors(checkpointer, weights: str, resume: bool):
    """``explain_checkpoint_errors(weights)`` around a ``resume_or_load`` that loads ``weights``; nothing when
    it resumes from the checkpointer's own files instead (``AtomicCheckpointer`` names each file it skips)."""
    if resume and checkpointer.has_checkpoint():
        yield
    else:
        with explain_checkpoint_errors(weights):
            yield
