"""The official Cityscapes evaluations (pixel-level and instance-level), through the public
``cityscapesscripts`` package.

Detectron2's ``CityscapesSemSegEvaluator`` and ``CityscapesInstanceEvaluator`` import, since December
2024, an unpublished internal copy of cityscapesscripts, so with detectron2's current main branch they
fail with ``No module named 'deeplearning'``. These classes keep Detectron2's base class (its temporary
folder shared by the local ranks) and its result keys, write the same prediction files and call the same
cityscapesscripts functions, so their results are those of Detectron2's evaluators where those run (a
test compares both on one set of predictions). They also pass the evaluation scripts a copy of their
settings instead of changing the modules' global ``args``.
"""
import copy
import glob
import os
from collections import OrderedDict

import numpy as np
from detectron2.evaluation.cityscapes_evaluation import CityscapesEvaluator
from detectron2.utils import comm
from PIL import Image

__all__ = ["CityscapesSemSegEvaluator", "CityscapesInstanceEvaluator"]


def _settings(module, prediction_dir: str):
    """A copy of an evaluation script's settings, reading predictions from ``prediction_dir``, quiet about
    files (no JSON export, no colours)."""
    args = copy.copy(module.args)
    args.predictionPath, args.predictionWalk = os.path.abspath(prediction_dir), None
    args.JSONOutput, args.colorized = False, False
    return args


def _ground_truth(gt_dir: str, suffix: str):
    files = sorted(glob.glob(os.path.join(gt_dir, "*", "*_gtFine_" + suffix)))
    if not files:
        raise FileNotFoundError(f"no ground truth to evaluate against: no {gt_dir}/<city>/*_gtFine_{suffix}")
    return files


class CityscapesSemSegEvaluator(CityscapesEvaluator):
    """Cityscapes' pixel-level evaluation (IoU, iIoU over classes and categories, in %) of ``sem_seg``
    outputs in train ids. Runs on every rank of one machine; rank 0 evaluates."""

    def process(self, inputs, outputs):
        from cityscapesscripts.helpers.labels import trainId2label

        # Train id -> label id, the ids the evaluation reads; train ids it ignores become 255.
        to_label_id = np.full(256, 255, dtype=np.uint8)
        for train_id, label in trainId2label.items():
            if 0 <= train_id < 255 and not label.ignoreInEval:
                to_label_id[train_id] = label.id
        for sample, output in zip(inputs, outputs):
            train_ids = output["sem_seg"].argmax(dim=0).to(self._cpu_device).numpy()
            stem = os.path.splitext(os.path.basename(sample["file_name"]))[0]
            Image.fromarray(to_label_id[train_ids]).save(os.path.join(self._temp_dir, stem + "_pred.png"))

    def evaluate(self):
        comm.synchronize()
        if comm.get_rank() > 0:
            return None
        # Imported here: the script reads $CITYSCAPES_DATASET when it is first imported.
        import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as pixel_eval

        self._logger.info("Evaluating Cityscapes predictions in %s", self._temp_dir)
        args = _settings(pixel_eval, self._temp_dir)
        ground_truth = _ground_truth(self._metadata.gt_dir, "labelIds.png")
        predictions = [pixel_eval.getPrediction(args, gt) for gt in ground_truth]
        scores = pixel_eval.evaluateImgLists(predictions, ground_truth, args)
        self._working_dir.cleanup()
        return OrderedDict(sem_seg={
            "IoU": 100.0 * scores["averageScoreClasses"],
            "iIoU": 100.0 * scores["averageScoreInstClasses"],
            "IoU_sup": 100.0 * scores["averageScoreCategories"],
            "iIoU_sup": 100.0 * scores["averageScoreInstCategories"],
        })


class CityscapesInstanceEvaluator(CityscapesEvaluator):
    """Cityscapes' instance-level evaluation (mask AP and AP50, in %) of ``instances`` outputs. Runs on
    every rank of one machine; rank 0 evaluates."""

    def process(self, inputs, outputs):
        from cityscapesscripts.helpers.labels import name2label

        for sample, output in zip(inputs, outputs):
            stem = os.path.splitext(os.path.basename(sample["file_name"]))[0]
            lines = []
            if "instances" in output:  # the evaluation wants a (possibly empty) list for every image
                instances = output["instances"].to(self._cpu_device)
                for i in range(len(instances)):
                    class_name = self._metadata.thing_classes[instances.pred_classes[i]]
                    mask_file = f"{stem}_{i}_{class_name}.png"
                    mask = instances.pred_masks[i].numpy().astype(np.uint8) * 255
                    Image.fromarray(mask).save(os.path.join(self._temp_dir, mask_file))
                    lines.append(f"{mask_file} {name2label[class_name].id} {instances.scores[i]}\n")
            with open(os.path.join(self._temp_dir, stem + "_pred.txt"), "w") as f:
                f.writelines(lines)

    def evaluate(self):
        comm.synchronize()
        if comm.get_rank() > 0:
            return None
        import cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling as instance_eval

        self._logger.info("Evaluating Cityscapes predictions in %s", self._temp_dir)
        args = _settings(instance_eval, self._temp_dir)
        args.gtInstancesFile = os.path.join(self._temp_dir, "gtInstances.json")
        ground_truth = _ground_truth(self._metadata.gt_dir, "instanceIds.png")
        predictions = [instance_eval.getPrediction(gt, args) for gt in ground_truth]
        averages = instance_eval.evaluateImgLists(predictions, ground_truth, args)["averages"]
        self._working_dir.cleanup()
        return OrderedDict(segm={"AP": averages["allAp"] * 100, "AP50": averages["allAp50%"] * 100})
