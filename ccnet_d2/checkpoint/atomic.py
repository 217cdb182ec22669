"""Checkpoints that survive interruption: written atomically, and resumed from the newest intact one.

Detectron2 writes ``model_*.pth`` and the ``last_checkpoint`` pointer in place, so a job killed while
saving (preemption, out of memory, a full disk) leaves a truncated newest checkpoint that the pointer
names, and ``--resume`` then stops with ``EOFError`` or "failed finding central directory". Here every
file is written to ``<name>.partial`` in the same folder, flushed to disk, then renamed over the old
one (a rename within one file system is atomic), and resuming skips unreadable files with a warning.
"""
import logging
import os
from typing import Callable, List

import torch
from detectron2.checkpoint import DetectionCheckpointer

__all__ = ["PARTIAL_SUFFIX", "AtomicCheckpointer", "write_atomically"]

PARTIAL_SUFFIX = ".partial"  # a file being written; left behind only by a process killed mid-save
_logger = logging.getLogger(__name__)


def write_atomically(path: str, write: Callable, mode: str = "wb") -> None:
    """Call ``write(file)`` on ``path + PARTIAL_SUFFIX``, fsync it, then rename it to ``path``.

    Readers see the old file or the complete new one, never a part; on an error the partial file is removed
    and ``path`` is untouched.
    """
    partial = path + PARTIAL_SUFFIX
    try:
        with open(partial, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
    folder = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:  # the rename itself is on disk once the folder is synced
        os.fsync(folder)
    finally:
        os.close(folder)


class AtomicCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` (local ``save_dir``) whose files are written with :func:`write_atomically`,
    and whose ``resume_or_load(resume=True)`` falls back to the newest readable training checkpoint (one
    with an ``iteration``), logging every file it skips and why."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._read_ahead = None  # (path, data) of the checkpoint just checked by reading it whole

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        basename = f"{name}.pth"
        path = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {path}")
        write_atomically(path, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        write_atomically(os.path.join(self.save_dir, "last_checkpoint"),
                         lambda f: f.write(last_filename_basename), mode="w")

    def resume_candidates(self) -> List[str]:
        """The file ``last_checkpoint`` names, then every other ``*.pth`` of ``save_dir``, newest first."""
        named = self.get_checkpoint_file()
        others = sorted((p for p in self.get_all_checkpoint_files() if p != named), key=os.path.getmtime,
                        reverse=True)
        return ([named] if named else []) + others

    def resume_or_load(self, path: str, *, resume: bool = True):
        if not (resume and self.has_checkpoint()):
            return super().resume_or_load(path, resume=resume)
        for partial in sorted(f for f in os.listdir(self.save_dir) if f.endswith(PARTIAL_SUFFIX)):
            _logger.warning("Ignoring %s: a save that was interrupted", os.path.join(self.save_dir, partial))
        skipped = []
        for candidate in self.resume_candidates():
            try:
                data = self._torch_load(candidate)
                if not isinstance(data, dict) or "iteration" not in data:
                    raise ValueError("not a training checkpoint (no 'iteration'; weights only?)")
            except Exception as e:  # truncated, empty, missing, not a checkpoint: any of them
                reason = f"{type(e).__name__}: {e}".strip()
                _logger.warning("Cannot resume from %s (%s); trying the previous checkpoint", candidate, reason)
                skipped.append(f"{candidate} ({reason})")
                continue
            self._read_ahead = (candidate, data)
            if skipped:
                _logger.warning("Resuming from %s, the newest intact checkpoint", candidate)
            return self.load(candidate)
        raise RuntimeError(f"--resume: no readable checkpoint in {self.save_dir!r}; tried: " + "; ".join(skipped)
                           + ". Remove the folder's last_checkpoint file to start from MODEL.WEIGHTS instead")

    def _torch_load(self, f):
        if self._read_ahead is not None and self._read_ahead[0] == f:
            data, self._read_ahead = self._read_ahead[1], None
            return data
        return super()._torch_load(f)
