"""Small helpers shared by the data pipeline and the training engine."""
from .seeding import derived_seed, preserved_global_rngs, seed_global_rngs
