"""``launch``: Detectron2's launcher, with the launching process taking part in a clean stop.

Detectron2's ``launch`` starts one process per device and waits for them. On SIGTERM or SIGINT (a
scheduler's preemption, Ctrl-C) the waiting process died at once, before its workers had saved the
interruption checkpoint, leaving them to run on orphaned while a scheduler may already start the next
``--resume``; when a worker then exited with its stop status, PyTorch's waiting code printed a traceback.

Here, while the workers run, the launching process:

- on a first SIGTERM / SIGINT, passes the signal on to its workers (which may have had it already: they
  take repeats calmly, :class:`~ccnet_d2.engine.SaveOnSignal`) and goes on waiting, so that it returns
  only after they saved and exited;
- on a second one, kills the workers and exits;
- when the workers stopped on a signal (exit status 128 + signal number, also when another machine got
  the signal), exits with that status and one line, no traceback.
"""
import logging
import multiprocessing
import os
import signal
import sys

from detectron2.engine import launch as detectron2_launch
from torch.multiprocessing import ProcessExitedException

from .interruption import STOP_SIGNALS

__all__ = ["launch"]

_logger = logging.getLogger(__name__)


class _ForwardStopSignals:
    """While active in the launching process: the first stop signal goes on to the worker processes, the
    second kills them."""

    def __init__(self):
        self.received = 0
        self._previous = {}

    def _handle(self, signum, frame):
        workers = multiprocessing.active_children()
        if self.received:
            print(f"Second {signal.Signals(signum).name}: killing {len(workers)} worker processes", file=sys.stderr)
            for worker in workers:
                worker.kill()
            os._exit(128 + signum)
        self.received = signum
        print(f"{signal.Signals(signum).name}: the workers finish their iteration and save a checkpoint "
              "(a second signal kills them)", file=sys.stderr)
        for worker in workers:
            os.kill(worker.pid, signum)

    def __enter__(self):
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def launch(main_func, num_gpus_per_machine: int, num_machines: int = 1, machine_rank: int = 0, dist_url=None,
           args=()):
    """Detectron2's ``launch`` (same arguments), returning only after every worker has exited; a run whose
    workers stopped on a signal exits with their status (128 + the signal number)."""
    if num_gpus_per_machine * num_machines == 1:
        return detectron2_launch(main_func, 1, args=args)
    stop_statuses = {128 + s for s in STOP_SIGNALS}
    try:
        with _ForwardStopSignals():
            return detectron2_launch(main_func, num_gpus_per_machine, num_machines=num_machines,
                                     machine_rank=machine_rank, dist_url=dist_url, args=args)
    except ProcessExitedException as e:
        if e.exit_code not in stop_statuses:
            raise
        print(f"Training stopped by {signal.Signals(e.exit_code - 128).name}; every worker saved and exited. "
              "Run the same command with --resume to continue.", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
