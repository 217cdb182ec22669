"""Training engine: the Trainer shared by tools/train_net.py, multi-process training on any device, stopping on
a signal."""
from .distributed import create_ddp_model, replace_sync_batchnorm_on_cpu
from .interruption import SaveOnSignal
from .trainer import Trainer
