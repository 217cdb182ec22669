"""The Trainer used by ``tools/train_net.py``: Detectron2's DefaultTrainer with the project's evaluator
selection, training mapper, poly learning-rate schedule and test-time augmentation, checkpoints that
survive interruption, exact resume, and multi-process training on CPU. Everything else (the other
hooks, multi-GPU training) is Detectron2's."""
import contextlib
import logging
import os

import torch

from detectron2.data import DatasetMapper, build_detection_test_loader, build_detection_train_loader
from detectron2.engine import DefaultTrainer, defaults, hooks
from detectron2.modeling import GeneralizedRCNN, GeneralizedRCNNWithTTA, PanopticFPN
from detectron2.projects.deeplab import build_lr_scheduler as build_deeplab_lr_scheduler
from detectron2.utils import comm

from ..checkpoint import AtomicCheckpointer, explain_weights_errors
from ..data import build_clip_mapper, build_test_resize, build_train_mapper, check_dataset_available
from ..data.resumable_loader import (EXACT_RESUME_SAMPLERS, ResumableTrainStream, build_resumable_train_loader,
                                     training_seed)
from ..evaluation import build_evaluator
from .distributed import create_ddp_model, replace_sync_batchnorm_on_cpu
from .exact_resume import ExactResume, truncate_metrics
from .interruption import SaveOnSignal

__all__ = ["Trainer", "check_batch_size", "check_device"]

_logger = logging.getLogger(__name__)


def check_batch_size(cfg) -> None:
    """SOLVER.IMS_PER_BATCH is the number of images per iteration summed over all processes: a positive
    multiple of the number of processes."""
    batch, processes = cfg.SOLVER.IMS_PER_BATCH, comm.get_world_size()
    if batch < 1 or batch % processes:
        raise ValueError(f"SOLVER.IMS_PER_BATCH is {batch}: it must be a positive multiple of the number of "
                         f"processes ({processes}), as it counts the images of one iteration over all of them")


def check_device(cfg) -> None:
    """MODEL.DEVICE names a device this machine has (Detectron2's default is "cuda")."""
    device = str(cfg.MODEL.DEVICE)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"MODEL.DEVICE is {device!r} but torch sees no CUDA GPU here (torch "
                           f"{torch.__version__}, CUDA build {torch.version.cuda}): add MODEL.DEVICE cpu to the "
                           "command line to run on the CPU")


# The writers' period of Detectron2's DefaultTrainer (metrics.json, the printed losses, TensorBoard).
WRITER_PERIOD = 20


@contextlib.contextmanager
def _project_builders():
    """While DefaultTrainer.__init__ runs, the DDP wrapper and the checkpointer it builds by name from its
    module are the project's (any device; atomic files), so that nothing of that method is copied."""
    saved = defaults.create_ddp_model, defaults.DetectionCheckpointer
    defaults.create_ddp_model, defaults.DetectionCheckpointer = create_ddp_model, AtomicCheckpointer
    try:
        yield
    finally:
        defaults.create_ddp_model, defaults.DetectionCheckpointer = saved


class Trainer(DefaultTrainer):
    """DefaultTrainer overriding the evaluator, the data loaders, the LR scheduler, the checkpointer
    (:class:`~ccnet_d2.checkpoint.AtomicCheckpointer`), the DDP wrapper and the hooks (exact resume, stop
    on a signal)."""

    def __init__(self, cfg):
        self._metric_writers = []
        with _project_builders():
            super().__init__(cfg)

    def resume_or_load(self, resume=True):
        """Detectron2's resume or load. Resuming falls back to the newest intact checkpoint, starts the
        training stream at the next iteration and cuts from ``metrics.json`` the rows the interrupted run
        wrote after its checkpoint; loading ``MODEL.WEIGHTS`` fails with an error naming the file when it
        is not a checkpoint."""
        with explain_weights_errors(self.checkpointer, self.cfg.MODEL.WEIGHTS, resume):
            checkpoint = self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if not (resume and self.checkpointer.has_checkpoint()):
            return
        self.start_iter = self.iter + 1  # the checkpoint holds the iteration that had finished
        stream = self._train_stream()
        if stream is not None:
            stream.start_iteration = self.start_iter
        if comm.is_main_process():
            cut = truncate_metrics(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"), self.iter,
                                   drop_last=checkpoint.get("extra_metrics_row", False))
            if cut:
                _logger.info("metrics.json: %d row(s) written after the checkpoint of iteration %d removed", cut,
                             self.iter)

    def _train_stream(self):
        """The training loader's ResumableTrainStream (None with another loader)."""
        dataset = getattr(self._trainer.data_loader, "dataset", None)
        return dataset if isinstance(dataset, ResumableTrainStream) else None

    @classmethod
    def build_model(cls, cfg):
        """Detectron2's model on an available device, with SyncBN layers made to work on CPU
        (``replace_sync_batchnorm_on_cpu``)."""
        check_device(cfg)
        return replace_sync_batchnorm_on_cpu(super().build_model(cfg))

    def build_writers(self):
        """Detectron2's writers, kept so that checkpoints and interruptions can flush them."""
        self._metric_writers = super().build_writers()
        return self._metric_writers

    def build_hooks(self):
        """Detectron2's hooks, with the writers' period capped at ``SOLVER.CHECKPOINT_PERIOD`` (so the loss
        history on disk is never behind the checkpoints) and :class:`SaveOnSignal` last."""
        period = self.cfg.SOLVER.CHECKPOINT_PERIOD
        writer_period = min(WRITER_PERIOD, period)
        built = [hooks.PeriodicWriter(self._metric_writers, period=writer_period)
                 if isinstance(h, hooks.PeriodicWriter) else h for h in super().build_hooks()]
        stream = self._train_stream()
        exact_resume = ExactResume(stream.seed if stream is not None else training_seed(self.cfg), stream)
        return built + [exact_resume, SaveOnSignal(self.checkpointer, period, self._metric_writers, writer_period)]

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        return build_evaluator(cfg, dataset_name, output_folder)

    @classmethod
    def build_train_loader(cls, cfg):
        """Detectron2's loader with ``ccnet_d2.data.build_train_mapper(cfg)`` (semantic-segmentation
        augmentations; None, i.e. the default DatasetMapper, for instance models), or for a model of
        clips ``build_clip_mapper(cfg, True)`` (the test loader likewise). Checked here, before
        the first iteration: the batch size, and that every training *and evaluation* dataset is
        where its registration points (a missing one fails with its expected folder tree).

        The loader is :func:`~ccnet_d2.data.resumable_loader.build_resumable_train_loader` (the same
        records, batch size, workers and grouping, batches that a resumed run repeats exactly); with a
        ``DATALOADER.SAMPLER_TRAIN`` it does not reproduce, Detectron2's, and a warning."""
        check_batch_size(cfg)
        for name in list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST):
            check_dataset_available(name)
        mapper = build_clip_mapper(cfg, True) or build_train_mapper(cfg)
        if cfg.DATALOADER.SAMPLER_TRAIN in EXACT_RESUME_SAMPLERS:
            return build_resumable_train_loader(cfg, mapper or DatasetMapper(cfg, True))
        _logger.warning("DATALOADER.SAMPLER_TRAIN is %r: Detectron2's loader is used, and a resumed run reads other "
                        "batches than the uninterrupted one would (exact resume needs %s)",
                        cfg.DATALOADER.SAMPLER_TRAIN, " or ".join(EXACT_RESUME_SAMPLERS))
        return build_detection_train_loader(cfg, mapper=mapper)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        check_dataset_available(dataset_name)
        mapper = build_clip_mapper(cfg, False) or DatasetMapper(cfg, False, augmentations=[build_test_resize(cfg)])
        return build_detection_test_loader(cfg, dataset_name, mapper=mapper)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        """``SOLVER.LR_SCHEDULER_NAME: WarmupPolyLR`` (CCNet's poly schedule, from
        ``detectron2.projects.deeplab``) or any scheduler Detectron2 knows."""
        if cfg.SOLVER.LR_SCHEDULER_NAME == "WarmupPolyLR" and "POLY_LR_POWER" not in cfg.SOLVER:
            raise KeyError("SOLVER.LR_SCHEDULER_NAME is 'WarmupPolyLR' but SOLVER.POLY_LR_POWER is missing: "
                           "call detectron2.projects.deeplab.add_deeplab_config(cfg) before merging the yaml")
        return build_deeplab_lr_scheduler(cfg, optimizer)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """Detectron2's evaluation, with test-time augmentation when ``TEST.AUG.ENABLED`` (R-CNN models
        through Detectron2's ``GeneralizedRCNNWithTTA``: ``TEST.AUG.MIN_SIZES``, ``MAX_SIZE``, ``FLIP``;
        the CCNet segmentor applies it itself) and the segmentor's inference mode (whole image, sliding
        window, scales, flip) logged right after the results, so no number is read without it."""
        unwrapped = getattr(model, "module", model)
        mode = getattr(unwrapped, "inference_mode", None)
        if cfg.TEST.AUG.ENABLED and isinstance(unwrapped, PanopticFPN):
            raise ValueError("TEST.AUG.ENABLED: Detectron2's test-time augmentation for R-CNN models "
                             "(GeneralizedRCNNWithTTA) returns instances only, and Panoptic FPN's evaluation needs "
                             "its panoptic and semantic outputs; set TEST.AUG.ENABLED False")
        if cfg.TEST.AUG.ENABLED and isinstance(unwrapped, GeneralizedRCNN):
            _logger.info("Evaluating with test-time augmentation: sizes %s, max size %d, flip %s",
                         list(cfg.TEST.AUG.MIN_SIZES), cfg.TEST.AUG.MAX_SIZE, cfg.TEST.AUG.FLIP)
            model = GeneralizedRCNNWithTTA(cfg, model)
        results = super().test(cfg, model, evaluators)
        if mode:
            _logger.info("The results above were obtained with inference mode: %s", mode)
        return results
