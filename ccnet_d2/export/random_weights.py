"""Random-weight models whose outputs look like a trained model's (benchmark and tests of exports).

With Detectron2's initial batch-norm statistics (mean 0, variance 1) activations grow through the
depth until every score saturates and Mask R-CNN keeps a few degenerate boxes; with gamma = 0 at
initialisation the criss-cross attention is left out of the outputs. Both would make a comparison or
a timing unrepresentative.
"""
import torch
from torch import nn

from detectron2.layers import FrozenBatchNorm2d

from ..layers import CrissCrossAttention

__all__ = ["set_attention_gamma", "calibrate_batch_norm"]

_NORMS = (nn.BatchNorm2d, FrozenBatchNorm2d)


def set_attention_gamma(model: nn.Module, gamma: float) -> nn.Module:
    """Every CrissCrossAttention's residual weight set to ``gamma``."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, CrissCrossAttention):
                module.gamma.fill_(gamma)
    return model


def calibrate_batch_norm(model: nn.Module, image: torch.Tensor) -> nn.Module:
    """Every batch norm's (trainable or frozen) running mean and variance set to those of its input
    on ``image`` (raw [3, H, W]), layer after layer in one inference, so that each layer sees inputs
    already normalised by the layers before it; returns the model in evaluation mode."""

    def measure(module, inputs):
        module.running_mean.copy_(inputs[0].mean(dim=(0, 2, 3)))
        module.running_var.copy_(inputs[0].var(dim=(0, 2, 3), unbiased=False))

    model.eval()
    hooks = [m.register_forward_pre_hook(measure) for m in model.modules() if isinstance(m, _NORMS)]
    try:
        with torch.no_grad():
            model([{"image": image}])
    finally:
        for hook in hooks:
            hook.remove()
    return model
