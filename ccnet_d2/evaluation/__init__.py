"""Evaluator selection and inference helpers."""
