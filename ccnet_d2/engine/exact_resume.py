"""Exact resume: a run interrupted at any iteration and resumed computes what the uninterrupted run of the
same seed computes, bit for bit on CPU, and its ``metrics.json`` holds the same rows.

What a checkpoint holds already (model, optimizer, scheduler, iteration) is Detectron2's. The rest:

- the batches: :class:`~ccnet_d2.data.resumable_loader.ResumableTrainStream`, a function of (seed,
  iteration);
- the randomness of the training step (dropout, proposal sampling, OHEM ties, ...): the global generators
  are seeded before every iteration from (seed, rank, iteration) by :class:`ExactResume`, so there is no
  generator state to save;
- the seed itself, when ``SEED`` is negative (drawn at the start): in the checkpoint;
- the writers' smoothing windows (Detectron2 writes the median of the last 20 values of each loss): the
  tail of every metric history, in the checkpoint, put back before the first resumed iteration;
- ``metrics.json``: rows that the interrupted run wrote after its checkpoint (a SIGKILL between
  checkpoints), or wrote only because it stopped (the flush on SIGTERM), are cut off when resuming.
"""
import json
import logging
import os

from detectron2.engine import HookBase
from detectron2.utils import comm
from fvcore.common.history_buffer import HistoryBuffer

from ..utils.seeding import derived_seed, seed_global_rngs

__all__ = ["ExactResume", "HISTORY_KEPT", "truncate_metrics"]

HISTORY_KEPT = 200  # values kept per metric in a checkpoint: more than any window Detectron2's writers use (20)
_STEP = 4  # purpose tag of derived_seed (the data stream uses 1-3)
_logger = logging.getLogger(__name__)


def truncate_metrics(path: str, last_iteration: int, drop_last: bool = False) -> int:
    """Cut ``metrics.json`` (one JSON object per line) after the rows of ``last_iteration`` (or before
    them with ``drop_last``), and after a line that is not a complete row (a write cut short); in place,
    so that a writer holding the file open for appending goes on at the new end. Returns the rows cut."""
    if not os.path.exists(path):
        return 0
    keep_bytes, cut = 0, 0
    with open(path, "rb") as f:
        lines = f.readlines()
    for index, line in enumerate(lines):
        try:
            iteration = json.loads(line)["iteration"]
        except (ValueError, KeyError, TypeError):
            iteration = None
        if iteration is None or iteration > last_iteration or (drop_last and iteration == last_iteration):
            cut = len(lines) - index
            break
        keep_bytes += len(line)
    if cut:
        os.truncate(path, keep_bytes)
    return cut


class ExactResume(HookBase):
    """Seeds the global generators before every iteration from (seed, rank, iteration); checkpoints the
    seed and the tails of the metric histories, and puts the histories back when a run resumes.

    ``seed`` is the run's (the stream's, when there is one); ``stream`` is the training loader's
    :class:`ResumableTrainStream`, which a resumed run gives the checkpoint's seed too, or None with
    another loader (the steps are still seeded; the data order after a resume is then the loader's own)."""

    def __init__(self, seed: int, stream=None):
        self.seed = seed
        self._stream = stream
        self._histories = None  # loaded from a checkpoint, put back in before_train

    def before_train(self):
        if self._histories:
            histories = self.trainer.storage.histories()
            for name, saved in self._histories.items():
                buffer = HistoryBuffer(max_length=saved["max_length"])
                buffer._data, buffer._count, buffer._global_avg = list(saved["data"]), saved["count"], saved["global_avg"]
                histories[name] = buffer
            self._histories = None

    def before_step(self):
        seed_global_rngs(derived_seed(self.seed, _STEP, comm.get_rank(), self.trainer.iter))

    def state_dict(self):
        storage = getattr(self.trainer, "storage", None)
        histories = {} if storage is None else {
            name: {"data": buffer._data[-HISTORY_KEPT:], "count": buffer._count, "global_avg": buffer._global_avg,
                   "max_length": buffer._max_length}
            for name, buffer in storage.histories().items()}
        return {"seed": self.seed, "histories": histories}

    def load_state_dict(self, state):
        if state["seed"] != self.seed:
            _logger.warning("Resuming with the checkpoint's seed %d (this run's SEED gives %d)", state["seed"], self.seed)
        self.seed = state["seed"]
        if self._stream is not None:
            self._stream.seed = self.seed
        self._histories = state["histories"]
