"""ccnet_d2: CCNet criss-cross attention as a Detectron2 extension.

``import ccnet_d2`` registers every backbone, head, meta-architecture and dataset of the project.
"""
from . import data, model_zoo, modeling  # noqa: F401  (registration; model_zoo: configs by name)
from .config import add_ccnet_config
from .engine import ClipPredictor, FilePrediction, Predictor
from .export import export_model
from .layers import (
    RCCA,
    CrissCrossAttention,
    RCCAHeadBlock,
    criss_cross_attention,
    criss_cross_attention_map,
    pixel_attention_map,
)
from .layers import RCCA3d, CrissCrossAttention3d, criss_cross_attention_3d

__version__ = "0.1.0"
