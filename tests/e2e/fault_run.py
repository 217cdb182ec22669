"""``tools/train_net.py`` with one fault injected, for the exact-resume test.

    python -m tests.e2e.fault_run <step|save|sigterm> ITERATION <train_net arguments>

- ``step``: SIGKILL right after iteration ITERATION (no hook of the run sees it coming);
- ``save``: SIGKILL in the middle of writing the checkpoint of iteration ITERATION (half of its bytes on disk);
- ``sigterm``: SIGTERM to itself after iteration ITERATION, as a scheduler's preemption.
"""
import io
import os
import signal
import sys

import torch
from detectron2.engine import HookBase

from tests.common import load_tool

train_net = load_tool("train_net")
_torch_save = torch.save


class _Fault(HookBase):
    def __init__(self, mode, iteration):
        self.mode, self.iteration = mode, iteration

    def before_step(self):
        if self.mode == "save" and self.trainer.iter == self.iteration:
            torch.save = _half_save_then_die  # the checkpointer's next save is this iteration's

    def after_step(self):
        if self.trainer.iter == self.iteration and self.mode != "save":
            os.kill(os.getpid(), signal.SIGKILL if self.mode == "step" else signal.SIGTERM)


def _half_save_then_die(obj, f):
    """What a kill half-way through ``AtomicCheckpointer``'s ``torch.save`` leaves."""
    buffer = io.BytesIO()
    _torch_save(obj, buffer)
    f.write(buffer.getvalue()[: buffer.tell() // 2])
    f.flush()
    os.fsync(f.fileno())
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    mode, iteration = sys.argv[1], int(sys.argv[2])
    build_hooks = train_net.Trainer.build_hooks
    train_net.Trainer.build_hooks = lambda self: build_hooks(self) + [_Fault(mode, iteration)]
    sys.argv = [sys.argv[0]] + sys.argv[3:]
    train_net.invoke_main()
