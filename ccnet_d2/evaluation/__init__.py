"""Evaluator selection by the dataset's ``evaluator_type``."""
from .build import EVALUATOR_TYPES, build_evaluator
