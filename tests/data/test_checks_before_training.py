"""Problems visible before the first iteration stop the run there: a missing evaluation split, a batch
size that cannot be split over the processes."""
import pytest

from ccnet_d2.engine import Trainer
from ccnet_d2.engine import trainer as trainer_module
from tests.common import build_cfg, config_path

from .trees import make_lip_tree

LIP_CONFIG = config_path("LIP-HumanParsing/ccnet_R_101_os8_r2_ccl_473x473_115k_bs40_lip.yaml")


def test_a_missing_evaluation_split_stops_before_training(dataset_root):
    make_lip_tree(str(dataset_root), splits=(("train", 2),))  # no val split
    with pytest.raises(FileNotFoundError, match="Dataset 'lip_sem_seg_val' is not available") as error:
        Trainer.build_train_loader(build_cfg(LIP_CONFIG))
    assert "TrainVal_images/val_images" in str(error.value)


def test_with_every_split_present_the_loader_is_built(dataset_root):
    make_lip_tree(str(dataset_root))
    cfg = build_cfg(LIP_CONFIG, "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.NUM_WORKERS", "0")
    batch = next(iter(Trainer.build_train_loader(cfg)))
    assert len(batch) == 2 and batch[0]["sem_seg"].shape == batch[0]["image"].shape[-2:]


@pytest.mark.parametrize("batch, processes", [(0, 1), (-4, 1), (3, 2)])
def test_a_batch_size_that_cannot_be_split_is_named(monkeypatch, batch, processes):
    monkeypatch.setattr(trainer_module.comm, "get_world_size", lambda: processes)
    cfg = build_cfg(LIP_CONFIG, "SOLVER.IMS_PER_BATCH", str(batch))
    with pytest.raises(ValueError, match=rf"SOLVER.IMS_PER_BATCH is {batch}: it must be a positive multiple of "
                                         rf"the number of processes \({processes}\)"):
        Trainer.build_train_loader(cfg)
