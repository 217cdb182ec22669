"""Evaluator selection by the dataset's ``evaluator_type``, and the Cityscapes evaluators on the public
cityscapesscripts."""
from .build import EVALUATOR_TYPES, build_evaluator
from .cityscapes import CityscapesInstanceEvaluator, CityscapesSemSegEvaluator
