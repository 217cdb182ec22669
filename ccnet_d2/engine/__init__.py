"""Training engine: the Trainer shared by tools/train_net.py; ClipPredictor for the video model."""
from .trainer import Trainer
from .clip_predictor import ClipPredictor
