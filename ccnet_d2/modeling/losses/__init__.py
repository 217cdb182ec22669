"""Losses of the CCNet head: OHEM cross-entropy and the category-consistent loss."""
from .consistent import CategoryConsistentLoss, phi_var
from .ohem import OhemCrossEntropy, ohem_keep_mask
