"""Multi-process training on CPU as on GPUs: the same launcher, DistributedDataParallel and SyncBN.

Detectron2's ``launch`` starts one process per device and joins them over gloo when no GPU is visible
(NCCL otherwise). Two pieces of the GPU path refuse CPU tensors and are adapted here: Detectron2's
``create_ddp_model`` passes ``device_ids=[local rank]`` (GPU modules only), and ``torch.nn.SyncBatchNorm``
(the semantic configs' ``NORM: "SyncBN"``) raises for CPU inputs; Detectron2's ``NaiveSyncBatchNorm``,
which averages the statistics with plain all-reduces, takes its place there.
"""
import logging

import torch.distributed as dist
from detectron2.engine.defaults import create_ddp_model as detectron2_create_ddp_model
from detectron2.layers import NaiveSyncBatchNorm
from detectron2.utils import comm
from torch import nn

__all__ = ["create_ddp_model", "replace_sync_batchnorm_on_cpu"]

_logger = logging.getLogger(__name__)


def _device_type(model: nn.Module) -> str:
    return next(model.parameters()).device.type


def create_ddp_model(model: nn.Module, **kwargs) -> nn.Module:
    """Detectron2's ``create_ddp_model``, with ``device_ids`` left out for a model that is not on a GPU."""
    if comm.get_world_size() > 1 and _device_type(model) != "cuda":
        if dist.get_backend() == "nccl":
            raise RuntimeError(
                f"MODEL.DEVICE is {_device_type(model)!r} but the processes talk over NCCL, which Detectron2's "
                "launcher chooses whenever a GPU is visible and which moves GPU tensors only. To train on "
                "CPU in several processes, hide the GPUs: CUDA_VISIBLE_DEVICES= python tools/train_net.py ...")
        kwargs.setdefault("device_ids", None)
    return detectron2_create_ddp_model(model, **kwargs)


def _naive_copy(layer: nn.SyncBatchNorm) -> NaiveSyncBatchNorm:
    naive = NaiveSyncBatchNorm(layer.num_features, eps=layer.eps, momentum=layer.momentum, affine=layer.affine,
                               track_running_stats=layer.track_running_stats).to(layer.weight.device)
    naive.load_state_dict(layer.state_dict())
    for name, parameter in layer.named_parameters(recurse=False):
        getattr(naive, name).requires_grad_(parameter.requires_grad)
    return naive.train(layer.training)


def replace_sync_batchnorm_on_cpu(model: nn.Module) -> nn.Module:
    """Swap every ``torch.nn.SyncBatchNorm`` of a model that is not on a GPU for an equivalent
    ``NaiveSyncBatchNorm`` (same parameters, statistics and state-dict keys), in place; log how many."""
    if _device_type(model) == "cuda":
        return model
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.SyncBatchNorm):
                setattr(parent, name, _naive_copy(child))
                replaced += 1
    if replaced:
        _logger.info("SyncBN on %s: %d torch.nn.SyncBatchNorm layers replaced by Detectron2's NaiveSyncBatchNorm "
                     "(torch's refuses CPU tensors); statistics are still averaged over all processes",
                     _device_type(model), replaced)
    return model
