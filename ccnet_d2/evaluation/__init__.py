"""Evaluator selection and inference helpers."""
from .build import EVALUATOR_TYPES, build_evaluator
from .inference import flip_logits, multi_scale_logits, sliding_window_logits, swap_channels, window_starts
