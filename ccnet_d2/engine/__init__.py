"""Training engine: the Trainer shared by tools/train_net.py, multi-process training on any device, stopping on
a signal; ClipPredictor for the video model."""
from .distributed import create_ddp_model, replace_sync_batchnorm_on_cpu
from .interruption import SaveOnSignal
from .trainer import Trainer
from .clip_predictor import ClipPredictor
