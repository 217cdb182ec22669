"""Stopping on SIGTERM / SIGINT with nothing lost: a checkpoint at the current iteration, metrics on disk.

Schedulers (Slurm, Kubernetes, spot instances) preempt a job with SIGTERM and kill it a little later;
Ctrl-C sends SIGINT. Without this hook the job dies where it stands and ``--resume`` restarts from the
last periodic checkpoint, up to ``SOLVER.CHECKPOINT_PERIOD`` iterations back.
"""
import logging
import signal
import threading

from detectron2.engine import HookBase
from detectron2.utils import comm

__all__ = ["STOP_SIGNALS", "SaveOnSignal"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_logger = logging.getLogger(__name__)


class SaveOnSignal(HookBase):
    """On SIGTERM or SIGINT, finish the running iteration, save ``model_<iteration>.pth`` (the state that a
    periodic checkpoint at that iteration would hold: model, optimizer, scheduler, iteration), then exit
    with status 128 + the signal number. The metrics writers are flushed by Detectron2's ``after_train``,
    which runs on the way out. A second signal acts as usual (kills at once).

    In a multi-process run every process stops at the same iteration as soon as any of them got a signal.
    Also writes the metrics writers at every periodic checkpoint, so the loss history on disk is never
    behind the newest checkpoint.
    """

    def __init__(self, checkpointer, checkpoint_period: int, writers=(), writer_period: int = 20):
        self._checkpointer = checkpointer
        self._period = checkpoint_period
        self._writers = list(writers)
        self._writer_period = writer_period  # the iterations at which Detectron2's PeriodicWriter writes anyway
        self._received = None
        self._previous_handlers = {}

    def _on_signal(self, signum, frame):
        self._received = signum
        signal.signal(signum, self._previous_handlers[signum])  # a second signal is not deferred
        # The DataLoader's workers, in the same process group or job step, get the signal too and die;
        # PyTorch's SIGCHLD handler would then raise in the middle of this step or of the save. The
        # batches they already made finish this step; the run stops after it.
        if hasattr(signal, "SIGCHLD"):  # POSIX
            self._previous_handlers.setdefault(signal.SIGCHLD, signal.signal(signal.SIGCHLD, signal.SIG_DFL))

    def before_train(self):
        if threading.current_thread() is threading.main_thread():  # Python handles signals there only
            for signum in STOP_SIGNALS:
                self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def after_train(self):
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}

    def after_step(self):
        iteration = self.trainer.iter
        if (iteration + 1) % self._period == 0 and (iteration + 1) % self._writer_period:
            for writer in self._writers:
                writer.write()
        received = self._received_by_any_process()
        if received is None:
            return
        name = signal.Signals(received).name
        path = None
        if comm.is_main_process():
            basename = f"model_{iteration:07d}"
            if not self._checkpointer.get_checkpoint_file().endswith(basename + ".pth"):  # not saved just now
                self._checkpointer.save(basename, iteration=iteration)
            path = self._checkpointer.get_checkpoint_file()
        comm.synchronize()
        _logger.warning("Stopped by %s after iteration %d; checkpoint %s. Run the same command with --resume "
                        "to continue from iteration %d", name, iteration, path, iteration + 1)
        raise SystemExit(128 + received)

    def _received_by_any_process(self):
        """The signal received here or, in a multi-process run, by any process (None: none)."""
        if comm.get_world_size() == 1:
            return self._received
        return next((s for s in comm.all_gather(self._received) if s is not None), None)
