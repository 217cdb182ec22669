"""losses of ccnet_d2 (importing registers them)."""
from .consistent import CategoryConsistentLoss, phi_var
from .ohem import OhemCrossEntropy, ohem_keep_mask
