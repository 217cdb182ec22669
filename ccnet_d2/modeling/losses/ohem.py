"""Online hard example mining (OHEM) cross-entropy for semantic segmentation.

The rule of the official CCNet code's OHEM (its README trains with threshold 0.7, min-kept 100000):
among the labelled pixels of the batch, keep those whose softmax probability of the true class is at
most ``threshold``; when fewer than ``min_kept`` pixels qualify, raise the threshold to the
``min_kept``-th smallest probability, so at least ``min_kept`` pixels (all of them when there are
fewer) are kept. The loss is the mean cross-entropy over the kept pixels.

One difference, on purpose: the official code estimates the raised threshold on probabilities and
labels zoomed to 1/8 with ``min_kept // 64`` (a CPU shortcut), then applies it at full resolution;
this implementation finds the exact ``min_kept``-th smallest probability at full resolution. Everything runs on the logits' device with tensor
operations only: no ``.item()``, no Python branch on tensor values, hence no host synchronisation.
"""
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["OhemCrossEntropy", "ohem_keep_mask"]


@torch.no_grad()
def ohem_keep_mask(logits: torch.Tensor, targets: torch.Tensor, *, threshold: float, min_kept: int,
                   ignore_index: int = 255) -> torch.Tensor:
    """Boolean mask [N, H, W] of the pixels OHEM keeps (see the module docstring)."""
    valid = targets != ignore_index
    safe_targets = torch.where(valid, targets, torch.zeros_like(targets))
    probs = F.softmax(logits.float(), dim=1)
    true_prob = probs.gather(1, safe_targets.unsqueeze(1)).squeeze(1)
    # Ignored pixels get a probability above any real one so they sort last and are never kept.
    true_prob = torch.where(valid, true_prob, torch.full_like(true_prob, 2.0))
    if min_kept <= 0:
        return valid & (true_prob <= threshold)
    flat = true_prob.flatten()
    kth_smallest = torch.kthvalue(flat, min(int(min_kept), flat.numel())).values
    return valid & (true_prob <= torch.clamp(kth_smallest, min=threshold))


class OhemCrossEntropy(nn.Module):
    """Cross-entropy averaged over the OHEM-kept pixels of the batch."""

    def __init__(self, threshold: float = 0.7, min_kept: int = 100000, ignore_index: int = 255):
        super().__init__()
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"OhemCrossEntropy: threshold is a probability in (0, 1], got {threshold}")
        if min_kept < 0:
            raise ValueError(f"OhemCrossEntropy: min_kept must be >= 0, got {min_kept}")
        self.threshold = threshold
        self.min_kept = min_kept
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        kept = ohem_keep_mask(logits, targets, threshold=self.threshold, min_kept=self.min_kept,
                              ignore_index=self.ignore_index)
        pixel_losses = F.cross_entropy(logits, targets, ignore_index=self.ignore_index, reduction="none")
        kept = kept.to(pixel_losses.dtype)
        return (pixel_losses * kept).sum() / kept.sum().clamp(min=1.0)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, min_kept={self.min_kept}, ignore_index={self.ignore_index}"
