"""ccnet_d2's Cityscapes evaluators give the results of Detectron2's own (where those run) on the same
predictions, 100 for perfect predictions and less for corrupted ones."""
import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.structures import Instances
from PIL import Image

from ccnet_d2.evaluation import CityscapesInstanceEvaluator, CityscapesSemSegEvaluator, build_evaluator

from ..data.test_cityscapes_loaders import detectron2_result
from ..data.trees import make_cityscapes_scene_tree


@pytest.fixture
def records(dataset_root):
    make_cityscapes_scene_tree(str(dataset_root))
    return DatasetCatalog.get("cityscapes_fine_sem_seg_val")


def _evaluate(evaluator, inputs, outputs):
    evaluator.reset()
    evaluator.process(inputs, outputs)
    return evaluator.evaluate()


def _sem_seg_outputs(records, corrupt: bool):
    outputs = []
    for i, record in enumerate(records):
        train_ids = np.asarray(Image.open(record["sem_seg_file_name"])).astype(np.int64)
        predicted = np.where(train_ids == 255, 0, train_ids)
        if corrupt:
            predicted[:, : 20 + 10 * i] = 13  # a band called "car"
        outputs.append({"sem_seg": torch.nn.functional.one_hot(torch.from_numpy(predicted), 19).permute(2, 0, 1).float()})
    return outputs


def _instance_outputs(records, corrupt: bool):
    """One prediction per ground-truth instance (its mask from the instance image), scored 0.9; corrupted:
    masks shifted by 6 pixels and a false car."""
    from cityscapesscripts.helpers.labels import id2label

    from detectron2.data import MetadataCatalog

    thing_classes = MetadataCatalog.get("cityscapes_fine_instance_seg_val").thing_classes
    outputs = []
    for record in records:
        instance_ids = np.asarray(Image.open(record["sem_seg_file_name"].replace("labelTrainIds", "instanceIds")))
        masks, classes = [], []
        for value in np.unique(instance_ids[instance_ids >= 1000]):
            mask = instance_ids == value
            masks.append(np.roll(mask, 6, axis=1) if corrupt else mask)
            classes.append(thing_classes.index(id2label[int(value) // 1000].name))
        if corrupt:
            false_car = np.zeros_like(instance_ids, dtype=bool)
            false_car[2:14, 2:30] = True
            masks.append(false_car)
            classes.append(thing_classes.index("car"))
        instances = Instances(instance_ids.shape)
        instances.pred_masks = torch.from_numpy(np.stack(masks))
        instances.pred_classes = torch.tensor(classes)
        instances.scores = torch.linspace(0.9, 0.5, len(classes))
        outputs.append({"instances": instances})
    return outputs


# task -> (dataset, our evaluator, Detectron2's class name, outputs, result key and metric, corrupted bound)
TASKS = {
    "sem_seg": ("cityscapes_fine_sem_seg_val", CityscapesSemSegEvaluator, "CityscapesSemSegEvaluator",
                _sem_seg_outputs, ("sem_seg", "IoU"), 90),
    "instance": ("cityscapes_fine_instance_seg_val", CityscapesInstanceEvaluator, "CityscapesInstanceEvaluator",
                 _instance_outputs, ("segm", "AP"), 60),
}


@pytest.mark.parametrize("corrupt", [False, True], ids=["perfect", "corrupted"])
@pytest.mark.parametrize("task", sorted(TASKS))
def test_results_equal_detectron2s(records, task, corrupt):
    import detectron2.evaluation

    dataset, ours_class, theirs_name, make_outputs, (group, metric), bound = TASKS[task]
    inputs = [{"file_name": r["file_name"]} for r in records]
    outputs = make_outputs(records, corrupt)
    ours = _evaluate(ours_class(dataset), inputs, outputs)
    assert (ours[group][metric] < bound) if corrupt else ours[group][metric] == pytest.approx(100)
    theirs = detectron2_result(_evaluate, getattr(detectron2.evaluation, theirs_name)(dataset), inputs, outputs)
    assert ours == theirs


def test_build_evaluator_picks_these_classes(records, tmp_path):
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(tmp_path)
    assert type(build_evaluator(cfg, "cityscapes_fine_sem_seg_val")) is CityscapesSemSegEvaluator
    assert type(build_evaluator(cfg, "cityscapes_fine_instance_seg_val")) is CityscapesInstanceEvaluator
