"""Meta-architectures of ccnet_d2 (importing registers them)."""
from .ccnet_segmentor import INFERENCE_MODES, CCNetSegmentor
from .ccnet_video_segmentor import CCNetVideoSegmentor
