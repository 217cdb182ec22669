"""The training loader whose batches are a pure function of (seed, iteration): a run resumed at iteration
k reads exactly the batches, augmented exactly as, the uninterrupted run read from iteration k on.

Detectron2's loader is exact only from the start: its sampler, its aspect-ratio buckets and the random
state of every loader worker evolve as batches are drawn (and workers run ahead of training), and none of
that is in a checkpoint. Here nothing is carried over but the seed:

- the sample order is Detectron2's ``TrainingSampler`` scheme (one permutation per epoch over all
  processes, rank r taking every r-th position), each epoch's permutation drawn from
  ``derived_seed(seed, epoch)``;
- batches are grouped by aspect ratio as Detectron2's ``AspectRatioGroupedDataset`` does (width > height
  or not), from the records' ``width`` and ``height``, so the grouping replays without reading images;
- every sample is mapped (decoded, augmented) with the global generators seeded from its position in the
  whole run (``derived_seed(seed, position)``), whichever worker maps it, and the generators of the
  process are restored afterwards (``num_workers=0`` maps in the training process);
- worker w of W yields the batches i with (i - start) % W == w, which PyTorch's loader returns in order.

A resumed run sets :attr:`ResumableTrainStream.start_iteration` before its first batch is drawn; the
schedule is then replayed from iteration 0 without mapping anything (index arithmetic only).
"""
import logging
import signal
from typing import Callable, Iterator, List, Sequence, Tuple

import torch
from detectron2.data import get_detection_dataset_dicts
from detectron2.data.build import trivial_batch_collator
from detectron2.utils import comm
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..utils.seeding import derived_seed, preserved_global_rngs, seed_global_rngs

__all__ = ["EXACT_RESUME_SAMPLERS", "ResumableTrainStream", "build_resumable_train_loader", "training_seed"]

EXACT_RESUME_SAMPLERS = ("TrainingSampler",)  # DATALOADER.SAMPLER_TRAIN values this loader reproduces
_EPOCH, _SAMPLE, _RETRY = 1, 2, 3  # purpose tags of derived_seed
MAX_RETRIES = 10  # samples a mapper may reject (return None) in a row before the run stops
_logger = logging.getLogger(__name__)


def training_seed(cfg) -> int:
    """``cfg.SEED``, or, when it is negative (Detectron2's "random"), one random seed shared by all processes."""
    return cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed() % 2**31


class ResumableTrainStream(IterableDataset):
    """This process's training batches (lists of mapped dataset dicts), infinite, from ``start_iteration``."""

    def __init__(self, records: Sequence[dict], mapper: Callable[[dict], dict], batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1, aspect_ratio_grouping: bool = True):
        if not records:
            raise ValueError("the training datasets have no records (DATASETS.TRAIN; empty after filtering?)")
        self.records, self.mapper = records, mapper
        self.batch_size, self.seed = batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.start_iteration = 0
        sizes = [(r.get("width"), r.get("height")) for r in records]
        self.aspect_groups = None
        if aspect_ratio_grouping:
            if all(w is not None and h is not None for w, h in sizes):
                self.aspect_groups = [0 if w > h else 1 for w, h in sizes]
            else:
                _logger.info("Aspect-ratio grouping off: some training records have no width/height")

    def positions(self) -> Iterator[Tuple[int, int]]:
        """(position in the whole run, record index) of this process's samples, in order."""
        position, epoch = 0, 0
        while True:
            generator = torch.Generator().manual_seed(derived_seed(self.seed, _EPOCH, epoch))
            for index in torch.randperm(len(self.records), generator=generator).tolist():
                if position % self.world_size == self.rank:
                    yield position, index
                position += 1
            epoch += 1

    def batch_schedule(self) -> Iterator[List[Tuple[int, int]]]:
        """This process's batches of (position, record index), iteration 0 first."""
        buckets = ([], [])  # one batch in the making per aspect group (only the first without grouping)
        for sample in self.positions():
            bucket = buckets[self.aspect_groups[sample[1]] if self.aspect_groups else 0]
            bucket.append(sample)
            if len(bucket) == self.batch_size:
                yield bucket[:]
                del bucket[:]

    def map_sample(self, position: int, index: int) -> dict:
        """The mapped record, its randomness fixed by its position; a rejected record (the mapper returned
        None, e.g. no annotation left after a crop) is replaced by others drawn from the same position."""
        for attempt in range(MAX_RETRIES + 1):
            with preserved_global_rngs():
                seed_global_rngs(derived_seed(self.seed, _SAMPLE, position, attempt))
                mapped = self.mapper(self.records[index])
            if mapped is not None:
                return mapped
            rejected = self.records[index].get("file_name", index)
            generator = torch.Generator().manual_seed(derived_seed(self.seed, _RETRY, position, attempt))
            index = int(torch.randint(len(self.records), (1,), generator=generator))
            _logger.warning("The training mapper rejected %r; using another sample", rejected)
        raise RuntimeError(f"the training mapper rejected {MAX_RETRIES + 1} samples in a row (the last: "
                           f"{rejected!r}); check the dataset and the augmentations")

    def __iter__(self):
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        for iteration, batch in enumerate(self.batch_schedule()):
            if iteration >= self.start_iteration and (iteration - self.start_iteration) % workers == worker_id:
                yield [self.map_sample(position, index) for position, index in batch]


def _restore_default(signum, frame):
    signal.signal(signum, signal.SIG_DFL)


def outlive_first_stop_signal(worker_id: int) -> None:
    """Loader workers live through a first SIGTERM / SIGINT (sent to a whole process group or job step):
    the training process decides when to stop, may need a batch more, and shuts them down on its way
    out; a second signal acts as usual."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _restore_default)


def build_resumable_train_loader(cfg, mapper: Callable[[dict], dict]) -> DataLoader:
    """The training loader of ``cfg`` (the records of ``DATASETS.TRAIN`` as Detectron2's loader reads them,
    ``IMS_PER_BATCH`` over all processes, ``NUM_WORKERS``, ``ASPECT_RATIO_GROUPING``) over a
    :class:`ResumableTrainStream`; ``loader.dataset`` is the stream."""
    if cfg.DATALOADER.SAMPLER_TRAIN not in EXACT_RESUME_SAMPLERS:
        raise ValueError(f"DATALOADER.SAMPLER_TRAIN {cfg.DATALOADER.SAMPLER_TRAIN!r}: the resumable loader "
                         f"reproduces {EXACT_RESUME_SAMPLERS} only")
    records = get_detection_dataset_dicts(
        cfg.DATASETS.TRAIN, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
        min_keypoints=cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE if cfg.MODEL.KEYPOINT_ON else 0,
        proposal_files=cfg.DATASETS.PROPOSAL_FILES_TRAIN if cfg.MODEL.LOAD_PROPOSALS else None)
    world_size = comm.get_world_size()
    stream = ResumableTrainStream(records, mapper, cfg.SOLVER.IMS_PER_BATCH // world_size, training_seed(cfg),
                                  comm.get_rank(), world_size, cfg.DATALOADER.ASPECT_RATIO_GROUPING)
    # Its own generator: creating the loader's iterator must not draw from torch's global one.
    return DataLoader(stream, batch_size=None, num_workers=cfg.DATALOADER.NUM_WORKERS,
                      collate_fn=trivial_batch_collator, generator=torch.Generator(),
                      worker_init_fn=outlive_first_stop_signal)
