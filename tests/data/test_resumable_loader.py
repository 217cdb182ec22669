"""ResumableTrainStream: its batches are a function of (seed, iteration) only: a stream started at
iteration k, with any number of loader workers, yields what the stream from 0 yields from k on, samples
augmented identically; the order and the aspect-ratio grouping are Detectron2's (checked against its
``AspectRatioGroupedDataset`` over the same sample order); the processes of a run share one permutation."""
import random

import numpy as np
import pytest
import torch
from detectron2.data.common import AspectRatioGroupedDataset
from detectron2.data.build import trivial_batch_collator
from torch.utils.data import DataLoader

from ccnet_d2.data.resumable_loader import ResumableTrainStream

RECORDS = [{"file_name": f"{i}.jpg", "width": 40 if i % 3 else 20, "height": 30} for i in range(11)]


def augmenting_mapper(record):
    """Draws from all three global generators, as augmentations do."""
    return {"file_name": record["file_name"], "width": record["width"], "height": record["height"],
            "draws": (random.random(), float(np.random.rand()), float(torch.rand(())))}


def _batches(stream, count, workers=0):
    loader = DataLoader(stream, batch_size=None, num_workers=workers, collate_fn=trivial_batch_collator,
                        generator=torch.Generator())  # as build_resumable_train_loader builds it
    iterator = iter(loader)
    return [next(iterator) for _ in range(count)]


@pytest.mark.parametrize("grouping", [True, False])
def test_a_stream_started_at_k_repeats_the_full_stream_from_k(grouping):
    full = _batches(ResumableTrainStream(RECORDS, augmenting_mapper, 3, seed=7, aspect_ratio_grouping=grouping), 12)
    for start, workers in ((5, 0), (5, 2), (9, 3)):
        resumed = ResumableTrainStream(RECORDS, augmenting_mapper, 3, seed=7, aspect_ratio_grouping=grouping)
        resumed.start_iteration = start
        assert _batches(resumed, 12 - start, workers) == full[start:], (start, workers)
    other_seed = _batches(ResumableTrainStream(RECORDS, augmenting_mapper, 3, seed=8, aspect_ratio_grouping=grouping), 12)
    assert other_seed != full  # (negative control)


def test_mapping_leaves_the_training_process_generators_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    _batches(ResumableTrainStream(RECORDS, augmenting_mapper, 3, seed=7), 4)  # mapped in this process
    assert torch.equal(torch.rand(3), expected)


def test_grouping_equals_detectron2s_over_the_same_order():
    stream = ResumableTrainStream(RECORDS, augmenting_mapper, 2, seed=3)
    order = []
    for position, index in stream.positions():
        order.append(RECORDS[index])
        if len(order) == 40:
            break
    detectron2_batches = [[r["file_name"] for r in batch] for batch in AspectRatioGroupedDataset(order, 2)]
    ours = [[RECORDS[i]["file_name"] for _, i in batch] for batch, _ in zip(stream.batch_schedule(), detectron2_batches)]
    assert ours == detectron2_batches


def test_the_processes_of_a_run_split_one_permutation_per_epoch():
    streams = [ResumableTrainStream(RECORDS, augmenting_mapper, 1, seed=5, rank=r, world_size=2) for r in (0, 1)]
    first = [list(zip(range(n), s.positions())) for n, s in ((6, streams[0]), (5, streams[1]))]
    positions = [[p for _, (p, _) in taken] for taken in first]
    assert positions == [[0, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9]]
    indices = sorted(i for taken in first for _, (_, i) in taken)
    assert indices == list(range(11))  # the first epoch: every record once, split between the processes


def test_a_rejected_sample_is_replaced_deterministically():
    def picky(record):
        return None if record["file_name"] == "4.jpg" else augmenting_mapper(record)

    first = _batches(ResumableTrainStream(RECORDS, picky, 3, seed=2, aspect_ratio_grouping=False), 8)
    again = _batches(ResumableTrainStream(RECORDS, picky, 3, seed=2, aspect_ratio_grouping=False), 8)
    assert first == again and all(s["file_name"] != "4.jpg" for batch in first for s in batch)
    with pytest.raises(RuntimeError, match="rejected 11 samples in a row"):
        _batches(ResumableTrainStream(RECORDS, lambda r: None, 3, seed=2), 1)
