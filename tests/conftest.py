"""Fixtures shared by the whole suite."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tests run many small tensors: one intra-op thread is faster than several, which spin and
    oversubscribe a busy 2-core machine (measured: 0.06 s vs 7 s for one narrow CCNet forward).
    Tools started as subprocesses choose their own threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
