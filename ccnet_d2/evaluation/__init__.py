"""Evaluator selection by the dataset's ``evaluator_type``, the Cityscapes evaluators on the public
cityscapesscripts, and panoptic quality without panopticapi."""
from .build import EVALUATOR_TYPES, build_evaluator
from .cityscapes import CityscapesInstanceEvaluator, CityscapesSemSegEvaluator
from .panoptic import PanopticQualityEvaluator
