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


class _ScriptEvaluator(CityscapesEvaluator):
    """Runs one of cityscapesscripts' evaluation scripts on the prediction files ``process`` wrote."""

    def _run_script(self, script, ground_truth_suffix: str, prediction_of, **settings):
        """The script's ``evaluateImgLists`` results on rank 0 (None on the other ranks), with a copy of the
        script's settings: predictions read from the temporary folder, no JSON export, no colours, and
        ``settings``. ``prediction_of(args, ground_truth_file)`` finds a ground-truth file's prediction."""
        comm.synchronize()
        if comm.get_rank() > 0:
            return None
        self._logger.info("Evaluating Cityscapes predictions in %s", self._temp_dir)
        args = copy.copy(script.args)
        args.predictionPath, args.predictionWalk = os.path.abspath(self._temp_dir), None
        args.JSONOutput, args.colorized = False, False
        for key, value in settings.items():
            setattr(args, key, value)
        gt_dir = self._metadata.gt_dir
        ground_truth = sorted(glob.glob(os.path.join(gt_dir, "*", "*_gtFine_" + ground_truth_suffix)))
        if not ground_truth:
            raise FileNotFoundError("no ground truth to evaluate against: no "
                                    f"{gt_dir}/<city>/*_gtFine_{ground_truth_suffix}")
        results = script.evaluateImgLists([prediction_of(args, gt) for gt in ground_truth], ground_truth, args)
        self._working_dir.cleanup()
        return results


class CityscapesSemSegEvaluator(_ScriptEvaluator):
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
        # Imported here: the script reads $CITYSCAPES_DATASET when it is first imported.
        import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as pixel_eval

        scores = self._run_script(pixel_eval, "labelIds.png", pixel_eval.getPrediction)
        if scores is None:
            return None
        return OrderedDict(sem_seg={
            "IoU": 100.0 * scores["averageScoreClasses"],
            "iIoU": 100.0 * scores["averageScoreInstClasses"],
            "IoU_sup": 100.0 * scores["averageScoreCategories"],
            "iIoU_sup": 100.0 * scores["averageScoreInstCategories"],
        })


class CityscapesInstanceEvaluator(_ScriptEvaluator):
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
        import cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling as instance_eval

        results = self._run_script(instance_eval, "instanceIds.png",
                                   lambda args, gt: instance_eval.getPrediction(gt, args),
                                   gtInstancesFile=os.path.join(self._temp_dir, "gtInstances.json"))
        if results is None:
            return None
        averages = results["averages"]
        return OrderedDict(segm={"AP": averages["allAp"] * 100, "AP50": averages["allAp50%"] * 100})
