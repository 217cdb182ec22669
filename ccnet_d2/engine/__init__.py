"""Training engine: the Trainer shared by tools/train_net.py, multi-process training on any device, stopping on
a signal, exact resume, the launcher; Predictor (DefaultPredictor with checked input) and ClipPredictor for the video model."""
from .distributed import create_ddp_model, replace_sync_batchnorm_on_cpu
from .exact_resume import ExactResume, truncate_metrics
from .interruption import SaveOnSignal
from .launch import launch
from .trainer import Trainer, check_device
from .predictor import FilePrediction, Predictor
from .clip_predictor import ClipPredictor
