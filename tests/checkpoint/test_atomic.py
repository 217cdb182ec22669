"""AtomicCheckpointer: a save that fails half way leaves the previous files as they were; resuming skips
unreadable checkpoints, newest first, and names them all when none is readable."""
import logging
import multiprocessing
import os
import signal
import time

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from torch import nn

from ccnet_d2.checkpoint import PARTIAL_SUFFIX, AtomicCheckpointer, write_atomically
from ccnet_d2.checkpoint import atomic


def _checkpointer(folder, value=0.0):
    model = nn.Linear(2, 1)
    nn.init.constant_(model.weight, value)
    return AtomicCheckpointer(model, str(folder))


def _half_writing_save(data, f):
    """torch.save that dies half way, as a process killed during a save does."""
    f.write(b"PK\x03\x04 half a checkpoint")
    raise KeyboardInterrupt


def test_write_atomically_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = str(tmp_path / "file.txt")
    write_atomically(path, lambda f: f.write("old"), mode="w")

    def fail(f):
        f.write("new, incomplete")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, fail, mode="w")
    assert open(path).read() == "old" and os.listdir(tmp_path) == ["file.txt"]


def test_a_save_interrupted_half_way_leaves_the_previous_checkpoint_and_pointer(tmp_path, monkeypatch):
    checkpointer = _checkpointer(tmp_path, 1.0)
    checkpointer.save("model_0000009", iteration=9)
    monkeypatch.setattr(atomic.torch, "save", _half_writing_save)
    with pytest.raises(KeyboardInterrupt):
        checkpointer.save("model_0000019", iteration=19)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000009.pth"]
    assert checkpointer.get_checkpoint_file() == str(tmp_path / "model_0000009.pth")
    monkeypatch.undo()
    assert _checkpointer(tmp_path).resume_or_load("", resume=True)["iteration"] == 9


def _save_slowly(folder):
    """A save that writes the start of its file, then takes a minute (killed before it ends)."""
    def slow_save(data, f):
        f.write(b"PK\x03\x04 the first bytes")
        f.flush()
        time.sleep(60)

    atomic.torch.save = slow_save  # in this child process only
    _checkpointer(folder, 2.0).save("model_0000019", iteration=19)


def test_sigkill_during_a_save_leaves_the_previous_checkpoint_and_pointer(tmp_path, caplog):
    _checkpointer(tmp_path, 1.0).save("model_0000009", iteration=9)
    child = multiprocessing.get_context("fork").Process(target=_save_slowly, args=(str(tmp_path),))
    child.start()
    partial = tmp_path / ("model_0000019.pth" + PARTIAL_SUFFIX)
    deadline = time.monotonic() + 30
    while not (partial.exists() and partial.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert child.exitcode == -signal.SIGKILL
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000009.pth", partial.name]
    fresh = _checkpointer(tmp_path, 0.0)
    with caplog.at_level(logging.WARNING, logger=atomic.__name__):
        assert fresh.resume_or_load("", resume=True)["iteration"] == 9
    assert torch.all(fresh.model.weight == 1.0) and f"Ignoring {partial}" in caplog.text


def test_resume_skips_a_truncated_newest_checkpoint_with_a_warning(tmp_path, caplog):
    checkpointer = _checkpointer(tmp_path, 1.0)
    checkpointer.save("model_0000009", iteration=9)
    nn.init.constant_(checkpointer.model.weight, 2.0)
    checkpointer.save("model_0000019", iteration=19)
    newest = tmp_path / "model_0000019.pth"
    newest.write_bytes(newest.read_bytes()[:300])
    with pytest.raises(Exception):  # negative control: Detectron2's checkpointer stops on it
        DetectionCheckpointer(nn.Linear(2, 1), str(tmp_path)).resume_or_load("", resume=True)

    fresh = _checkpointer(tmp_path, 0.0)
    with caplog.at_level(logging.WARNING, logger=atomic.__name__):
        extra = fresh.resume_or_load("", resume=True)
    assert extra["iteration"] == 9 and torch.all(fresh.model.weight == 1.0)
    assert f"Cannot resume from {newest}" in caplog.text
    assert f"Resuming from {tmp_path / 'model_0000009.pth'}, the newest intact checkpoint" in caplog.text


def test_resume_prefers_the_newest_of_the_other_checkpoints_and_names_partial_files(tmp_path, caplog):
    checkpointer = _checkpointer(tmp_path)
    for iteration in (9, 19, 29):
        checkpointer.save(f"model_{iteration:07d}", iteration=iteration)
        os.utime(tmp_path / f"model_{iteration:07d}.pth", (iteration, iteration))  # distinct times, in order
    (tmp_path / "model_0000029.pth").write_bytes(b"")
    (tmp_path / ("model_0000039.pth" + PARTIAL_SUFFIX)).write_bytes(b"PK")
    torch.save({"model": checkpointer.model.state_dict()}, tmp_path / "weights_only.pth")  # newer still
    with caplog.at_level(logging.WARNING, logger=atomic.__name__):
        assert _checkpointer(tmp_path).resume_or_load("", resume=True)["iteration"] == 19
    assert f"Ignoring {tmp_path / ('model_0000039.pth' + PARTIAL_SUFFIX)}" in caplog.text
    assert f"Cannot resume from {tmp_path / 'weights_only.pth'} (ValueError: not a training checkpoint" in caplog.text


def test_resume_with_no_readable_checkpoint_names_every_file_tried(tmp_path):
    checkpointer = _checkpointer(tmp_path)
    checkpointer.save("model_0000009", iteration=9)
    (tmp_path / "model_0000009.pth").write_bytes(b"not a checkpoint")
    (tmp_path / "model_0000019.pth").write_bytes(b"")
    with pytest.raises(RuntimeError, match="no readable checkpoint") as error:
        _checkpointer(tmp_path).resume_or_load("", resume=True)
    for name in ("model_0000009.pth", "model_0000019.pth", "last_checkpoint"):
        assert name in str(error.value)


def test_without_resume_the_weights_file_is_loaded_as_before(tmp_path):
    source = _checkpointer(tmp_path / "a", 3.0)
    os.makedirs(source.save_dir)
    source.save("model_final")
    target = _checkpointer(tmp_path / "b", 0.0)
    assert "iteration" not in target.resume_or_load(str(tmp_path / "a" / "model_final.pth"), resume=False)
    assert torch.all(target.model.weight == 3.0)
