"""Random weights for the reference networks of the checkpoint tests."""
import math

import torch
from torch import nn


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights everywhere (norm weights of both signs, so |w| matters; gamma != 0) and random
    running statistics; returns the model in evaluation mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if not tensor.is_floating_point():  # BatchNorm's num_batches_tracked
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
            elif ".gamma" in name:
                tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
            elif tensor.dim() > 1:  # conv weights: keep activations of order 1 through the depth
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=g) * math.sqrt(1.0 / fan_in))
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=g) * 0.5)
    return model.eval()
