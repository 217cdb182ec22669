"""Toy models with random weights whose outputs are not degenerate, for comparing exported graphs."""
import torch
from torch import nn

from detectron2.modeling import build_model

from ccnet_d2.layers import CrissCrossAttention
from tests.common import build_cfg


def seeded_model(config: str, *overrides, gamma: float = 1.0, seed: int = 0) -> nn.Module:
    """The config's model (random weights, CPU) in evaluation mode, with every criss-cross gamma set to
    ``gamma`` (0 at initialisation would leave the attention out of the outputs) and batch-norm
    statistics measured on two random images (with the initial statistics the activations grow
    through the depth until every score saturates)."""
    torch.manual_seed(seed)
    model = build_model(build_cfg(config, "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", *overrides)).eval()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, CrissCrossAttention):
                m.gamma.fill_(gamma)
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a plain average over the calibration batches
            m.train()
        for i in range(2):
            image = torch.rand(3, 96, 128, generator=torch.Generator().manual_seed(100 + i)) * 255
            model([{"image": image}])
    for m in norms:
        m.eval()
    return model


def random_image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A raw image [3, H, W], float 0..255."""
    return torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed)) * 255
