"""Fixtures shared by the whole suite.

``dataset_root``: a temporary $DETECTRON2_DATASETS with every dataset family re-registered under it.

Detectron2 (and ccnet_d2) register datasets with the root read at import, so changing the variable
inside a test is not enough: the fixture re-registers, then restores the original registration.
``register_datasets(root)`` registers again, for registrations that look at the files (LIP's layout).
"""
import os

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin import register_all_ade20k

from ccnet_d2.data.datasets.camvid import register_all_camvid
from ccnet_d2.data.datasets.cityscapes import register_all_cityscapes
from ccnet_d2.data.datasets.lip import register_all_lip
from ccnet_d2.data.datasets.voc import register_all_voc_sem_seg


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tests run many small tensors: one intra-op thread is faster than several, which spin and
    oversubscribe a busy 2-core machine (measured: 0.06 s vs 7 s for one narrow CCNet forward).
    Tools started as subprocesses choose their own threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


_PREFIXES = ("cityscapes_fine_instance_seg_", "cityscapes_fine_sem_seg_", "ade20k_sem_seg_", "lip_sem_seg_",
             "voc_2012_sem_seg_", "camvid_sem_seg_")


def _register_all(root):
    for name in DatasetCatalog.list():
        if name.startswith(_PREFIXES):
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
    register_all_cityscapes(root)
    register_all_ade20k(root)
    register_all_lip(root)
    register_all_voc_sem_seg(root)
    register_all_camvid(root)


@pytest.fixture
def dataset_root(tmp_path, monkeypatch):
    original = os.getenv("DETECTRON2_DATASETS", "datasets")
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    _register_all(str(tmp_path))
    yield tmp_path
    _register_all(original)



@pytest.fixture
def register_datasets(dataset_root):
    """Register every dataset family again under a root, after the test wrote its files there."""
    return _register_all
