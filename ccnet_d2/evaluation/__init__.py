"""Evaluator selection and inference helpers."""
from .build import EVALUATOR_TYPES, build_evaluator
