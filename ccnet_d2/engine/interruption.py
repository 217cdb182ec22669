"""Stopping on SIGTERM / SIGINT with nothing lost: a checkpoint at the current iteration, metrics on disk.

Schedulers (Slurm, Kubernetes, spot instances) preempt a job with SIGTERM and kill it a little later;
Ctrl-C sends SIGINT. Without this hook the job dies where it stands and ``--resume`` restarts from the
last periodic checkpoint, up to ``SOLVER.CHECKPOINT_PERIOD`` iterations back.

In a multi-process run the processes must stop at the same iteration, whichever of them got the signal
(a terminal signals a whole process group, a scheduler may signal one process per machine). They agree
without a blocking collective: after every iteration each process posts "signal received?" in an
asynchronous all-reduce on a gloo group of its own and reads the result of the previous iteration's,
finished long before. All processes read the same results in the same iteration, so they stop together,
one iteration after the first signal. ``tools/benchmark_stop_agreement.py`` measures what the posting costs.
"""
import logging
import os
import signal
import threading

import torch
import torch.distributed as dist
from detectron2.engine import HookBase
from detectron2.utils import comm

__all__ = ["STOP_SIGNALS", "SaveOnSignal", "StopAgreement"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_logger = logging.getLogger(__name__)


def _ignore_child_exit(signum, frame):
    """SIGCHLD while stopping: a DataLoader worker died of the same signal (those of Detectron2's loader do;
    those of the resumable loader outlive a first signal); nothing to do."""


def shut_down_loader_workers(trainer) -> None:
    """End the training loader's worker processes now, as PyTorch does when its iterator is released (they
    may have outlived the stop signal, and a process exiting would otherwise wait for them)."""
    iterator = getattr(getattr(trainer, "_trainer", trainer), "_data_loader_iter_obj", None)
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


class StopAgreement:
    """The stop decision of all processes, one round per iteration: :meth:`exchange` posts this process's
    signal number (0: none) and returns the largest one posted by any process in the previous round."""

    def __init__(self):
        self._group = dist.new_group(backend="gloo")  # CPU tensors whatever the training backend
        self._pending = None
        self._posted = torch.zeros(1, dtype=torch.int32)

    def exchange(self, received: int) -> int:
        decided = 0
        if self._pending is not None:
            self._pending.wait()
            decided = int(self._posted)
        self._posted = torch.tensor([received], dtype=torch.int32)
        self._pending = dist.all_reduce(self._posted, op=dist.ReduceOp.MAX, group=self._group, async_op=True)
        return decided

    def close(self) -> None:
        """Finish the last posted round (every process posts the same number of rounds)."""
        if self._pending is not None:
            self._pending.wait()
            self._pending = None


class SaveOnSignal(HookBase):
    """On SIGTERM or SIGINT, finish the running iteration, save ``model_<iteration>.pth`` (the state that a
    periodic checkpoint at that iteration would hold: model, optimizer, scheduler, iteration), then exit
    with status 128 + the signal number. The metrics writers are flushed by Detectron2's ``after_train``,
    which runs on the way out. In a single process, a second signal acts as usual (kills at once); in a
    multi-process run the processes take further signals calmly (the same signal may reach a process
    directly and through its launcher) and the launcher kills them on a second signal
    (:func:`~ccnet_d2.engine.launch`).

    Also writes the metrics writers at every periodic checkpoint, so the loss history on disk is never
    behind the newest checkpoint.
    """

    def __init__(self, checkpointer, checkpoint_period: int, writers=(), writer_period: int = 20):
        self._checkpointer = checkpointer
        self._period = checkpoint_period
        self._writers = list(writers)
        self._writer_period = writer_period  # the iterations at which Detectron2's PeriodicWriter writes anyway
        self._received = 0
        self._previous_handlers = {}
        self._agreement = None

    def _on_signal(self, signum, frame):
        if not self._received:
            self._received = signum
        if comm.get_world_size() == 1:
            signal.signal(signum, self._previous_handlers[signum])  # a second signal is not deferred
        # The DataLoader's workers, in the same process group or job step, get the signal too, and those of
        # Detectron2's loader die; PyTorch's SIGCHLD handler would then raise in the middle of this step or
        # of the save. The
        # batches they already made finish this step; the run stops after it. (A Python function, not
        # SIG_DFL: a SIGCHLD already pending would otherwise be reported as "ignored due to race condition".)
        if hasattr(signal, "SIGCHLD"):  # POSIX
            self._previous_handlers.setdefault(signal.SIGCHLD, signal.signal(signal.SIGCHLD, _ignore_child_exit))

    def before_train(self):
        if threading.current_thread() is threading.main_thread():  # Python handles signals there only
            for signum in STOP_SIGNALS:
                self._previous_handlers[signum] = signal.signal(signum, self._on_signal)
        if comm.get_world_size() > 1:
            self._agreement = StopAgreement()

    def after_train(self):
        if self._agreement is not None:
            self._agreement.close()
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}

    def _regular_write(self, iteration: int) -> bool:
        """Whether the writers write at this iteration anyway (their period, or a periodic checkpoint)."""
        return (iteration + 1) % self._writer_period == 0 or (iteration + 1) % self._period == 0

    def after_step(self):
        iteration = self.trainer.iter
        if (iteration + 1) % self._period == 0 and (iteration + 1) % self._writer_period:
            for writer in self._writers:
                writer.write()
        received = self._received if self._agreement is None else self._agreement.exchange(self._received)
        if not received:
            return
        name = signal.Signals(received).name
        basename = f"model_{iteration:07d}"
        path = os.path.join(self._checkpointer.save_dir, basename + ".pth")
        if comm.is_main_process() and self._checkpointer.get_checkpoint_file() != path:  # not saved just now
            # The writers flush on the way out; a row they write only because of the stop is not the
            # uninterrupted run's, and is cut off when resuming (ccnet_d2.engine.exact_resume).
            self._checkpointer.save(basename, iteration=iteration, extra_metrics_row=not self._regular_write(iteration))
        comm.synchronize()
        shut_down_loader_workers(self.trainer)
        _logger.warning("Stopped by %s after iteration %d; checkpoint %s. Run the same command with --resume "
                        "to continue from iteration %d", name, iteration, path, iteration + 1)
        raise SystemExit(128 + received)
