"""Training engine: the Trainer shared by tools/train_net.py."""
from .trainer import Trainer
