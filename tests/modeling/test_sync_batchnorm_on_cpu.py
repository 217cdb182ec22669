"""replace_sync_batchnorm_on_cpu: torch's SyncBatchNorm (which refuses CPU tensors in a multi-process run)
becomes Detectron2's NaiveSyncBatchNorm with the same parameters, statistics and state-dict keys; and
create_ddp_model refuses a CPU model in processes joined over NCCL with the remedy."""
import pytest
import torch
from detectron2.layers import NaiveSyncBatchNorm
from torch import nn

from ccnet_d2.engine import distributed
from ccnet_d2.engine.distributed import create_ddp_model, replace_sync_batchnorm_on_cpu


def _model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.SyncBatchNorm(4, momentum=0.3, eps=1e-3),
                          nn.Sequential(nn.Conv2d(4, 4, 1), nn.SyncBatchNorm(4)))
    for layer in model.modules():
        if isinstance(layer, nn.SyncBatchNorm):
            layer.running_mean.uniform_(-1, 1)
            layer.running_var.uniform_(0.5, 2)
            nn.init.uniform_(layer.weight, 0.5, 1.5)
    model[1].bias.requires_grad_(False)
    return model


def test_every_sync_batchnorm_is_replaced_with_its_state():
    original, model = _model(), replace_sync_batchnorm_on_cpu(_model())
    layers = [m for m in model.modules() if "BatchNorm" in type(m).__name__]
    assert [type(m) for m in layers] == [NaiveSyncBatchNorm, NaiveSyncBatchNorm]
    assert layers[0].momentum == 0.3 and layers[0].eps == 1e-3 and not layers[0].bias.requires_grad
    assert original.state_dict().keys() == model.state_dict().keys()
    for key, value in original.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key
    x = torch.randn(2, 3, 9, 9)
    for mode in ("eval", "train"):  # one process: both are plain batch norm
        getattr(original, mode)(), getattr(model, mode)()
        torch.testing.assert_close(model(x), original(x))
    torch.testing.assert_close(model[1].running_mean, original[1].running_mean)  # updated alike in training


def test_a_model_without_sync_batchnorm_is_left_alone():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    assert replace_sync_batchnorm_on_cpu(model) is model and type(model[1]) is nn.BatchNorm2d


def test_a_cpu_model_over_nccl_names_the_remedy(monkeypatch):
    monkeypatch.setattr(distributed.comm, "get_world_size", lambda: 2)
    monkeypatch.setattr(distributed.dist, "get_backend", lambda: "nccl")
    with pytest.raises(RuntimeError, match="MODEL.DEVICE is 'cpu' but the processes talk over NCCL.*CUDA_VISIBLE_DEVICES="):
        create_ddp_model(nn.Linear(2, 2))
