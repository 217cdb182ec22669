"""Toy models with random weights whose outputs are not degenerate, for comparing exported graphs."""
import torch
from torch import nn

from detectron2.modeling import build_model

from ccnet_d2.export.random_weights import calibrate_batch_norm, set_attention_gamma
from tests.common import build_cfg


def random_image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A raw image [3, H, W], float 0..255."""
    return torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed)) * 255


def seeded_model(config: str, *overrides, gamma: float = 1.0, seed: int = 0, device: str = "cpu") -> nn.Module:
    """The config's model on ``device``, random weights, attention on (``gamma``), batch-norm
    statistics measured on a random image; in evaluation mode."""
    torch.manual_seed(seed)
    model = build_model(build_cfg(config, "MODEL.DEVICE", device, "MODEL.WEIGHTS", "", *overrides))
    set_attention_gamma(model, gamma)
    return calibrate_batch_norm(model, random_image(96, 128, seed=100).to(device))
