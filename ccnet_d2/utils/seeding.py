"""Randomness as a pure function of a run's seed and a position in it, which is what makes a resumed run
repeat the uninterrupted one: nothing has to be carried over but the seed itself.

``derived_seed(seed, *keys)`` mixes the run's seed with integer keys (a purpose tag, an epoch, a sample
position, a rank, an iteration) through numpy's ``SeedSequence``, so that nearby keys give unrelated
streams. The global generators (Python's ``random``, numpy's legacy ``np.random``, torch's CPU and CUDA
generators) are the ones Detectron2's augmentations, samplers of proposals, dropout and user code draw from.
"""
import contextlib
import random

import numpy as np
import torch

__all__ = ["derived_seed", "seed_global_rngs", "preserved_global_rngs"]


def derived_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed determined by ``seed`` and the non-negative integer ``keys``, and by nothing else."""
    if seed < 0 or any(k < 0 for k in keys):
        raise ValueError(f"derived_seed takes non-negative integers, got seed {seed} and keys {keys}")
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def seed_global_rngs(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch's (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def preserved_global_rngs():
    """Restore the CPU global generators (Python, numpy, torch) on exit: code inside may reseed and draw
    without changing what the surrounding code draws next (e.g. a data mapper run in the training process)."""
    python_state, numpy_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)
