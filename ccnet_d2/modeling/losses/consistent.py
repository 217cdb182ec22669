"""The category-consistent loss of CCNet's TPAMI version (Huang et al., TPAMI 2020).

Per image, with C the classes present, mu_c the mean feature of class c and h_i the pixel features:

- L_var = 1/|C| sum_c 1/N_c sum_{i in c} phi_var(||mu_c - h_i||), with the piecewise
  phi_var(d) = d - delta_d + (delta_d - delta_v)^2 for d > delta_d, (d - delta_v)^2 for
  delta_v < d <= delta_d, 0 for d <= delta_v (continuous, linear tail);
- L_dis = 1/(|C|(|C|-1)) sum_{a != b} max(0, 2 delta_d - ||mu_a - mu_b||)^2;
- L_reg = 1/|C| sum_c ||mu_c||.

Each term is averaged over the images of the batch that have at least one labelled pixel (L_dis over
those with at least two classes). The computation is vectorised over images and classes with
scatter-adds; ignored pixels take no part.
"""
from typing import Dict

import torch
from torch import nn

__all__ = ["CategoryConsistentLoss", "phi_var"]

_EPS = 1e-12  # norms are sqrt(max(squared, eps)) so that zero distances have finite gradients


def _norm(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x.pow(2).sum(dim).clamp(min=_EPS).sqrt()


def phi_var(distance: torch.Tensor, delta_v: float, delta_d: float) -> torch.Tensor:
    """The paper's piecewise intra-class penalty of a pixel at ``distance`` from its class mean."""
    quadratic = (distance - delta_v).clamp(min=0).pow(2)
    linear = distance - delta_d + (delta_d - delta_v) ** 2
    return torch.where(distance > delta_d, linear, quadratic)


class CategoryConsistentLoss(nn.Module):
    """Returns the three weighted terms as a dict: ``loss_ccl_var``, ``loss_ccl_dis``, ``loss_ccl_reg``."""

    def __init__(self, *, num_classes: int, delta_v: float = 0.5, delta_d: float = 1.5,
                 var_weight: float = 1.0, dis_weight: float = 1.0, reg_weight: float = 0.001,
                 ignore_index: int = 255):
        super().__init__()
        if not 0 <= delta_v < delta_d:
            raise ValueError(f"CategoryConsistentLoss: need 0 <= delta_v < delta_d, got {delta_v} and {delta_d}")
        self.num_classes = num_classes
        self.delta_v, self.delta_d = delta_v, delta_d
        self.var_weight, self.dis_weight, self.reg_weight = var_weight, dis_weight, reg_weight
        self.ignore_index = ignore_index

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """features [B, D, H, W] (float), labels [B, H, W] at the same resolution."""
        if features.dim() != 4 or labels.shape != (features.shape[0],) + features.shape[2:]:
            raise ValueError(f"CategoryConsistentLoss: expected features [B, D, H, W] and labels [B, H, W], "
                             f"got {tuple(features.shape)} and {tuple(labels.shape)}")
        b, d = features.shape[:2]
        k = self.num_classes
        feats = features.float().permute(0, 2, 3, 1).reshape(-1, d)  # [B*H*W, D]
        labels = labels.reshape(b, -1)
        valid = ((labels >= 0) & (labels < k) & (labels != self.ignore_index)).flatten()
        # One group per (image, class); ignored pixels go to an extra dump group that is dropped.
        image_index = torch.arange(b, device=labels.device).view(b, 1).expand_as(labels).flatten()
        group = torch.where(valid, image_index * k + labels.flatten().clamp(0, k - 1),
                            torch.full_like(image_index, b * k))
        counts = torch.zeros(b * k + 1, device=feats.device).index_add_(0, group, torch.ones_like(group, dtype=feats.dtype))
        sums = torch.zeros(b * k + 1, d, device=feats.device).index_add_(0, group, feats)
        counts, sums = counts[:-1], sums[:-1]
        present = counts > 0
        means = sums / counts.clamp(min=1).unsqueeze(1)  # [B*K, D]

        pixel_means = torch.cat([means, means.new_zeros(1, d)])[group]
        pixel_phi = phi_var(_norm(feats - pixel_means, 1), self.delta_v, self.delta_d) * valid
        phi_sums = torch.zeros(b * k + 1, device=feats.device).index_add_(0, group, pixel_phi)[:-1]
        per_class_var = phi_sums / counts.clamp(min=1)

        present = present.view(b, k)
        num_present = present.sum(1).to(feats.dtype)  # |C| per image
        has_class = num_present > 0
        var = per_class_var.view(b, k).sum(1) / num_present.clamp(min=1)
        reg = (_norm(means, 1).view(b, k) * present).sum(1) / num_present.clamp(min=1)

        means = means.view(b, k, d)
        pair_distance = _norm(means.unsqueeze(2) - means.unsqueeze(1), 3)  # [B, K, K]
        pair_mask = present.unsqueeze(2) & present.unsqueeze(1) & ~torch.eye(k, dtype=torch.bool, device=means.device)
        pair_phi = (2 * self.delta_d - pair_distance).clamp(min=0).pow(2) * pair_mask
        has_pairs = num_present > 1
        dis = pair_phi.sum((1, 2)) / (num_present * (num_present - 1)).clamp(min=1)

        def batch_mean(per_image, images):
            return (per_image * images).sum() / images.sum().clamp(min=1)

        return {
            "loss_ccl_var": self.var_weight * batch_mean(var, has_class),
            "loss_ccl_dis": self.dis_weight * batch_mean(dis, has_pairs),
            "loss_ccl_reg": self.reg_weight * batch_mean(reg, has_class),
        }

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, delta_v={self.delta_v}, delta_d={self.delta_d}, "
                f"weights=({self.var_weight}, {self.dis_weight}, {self.reg_weight})")
