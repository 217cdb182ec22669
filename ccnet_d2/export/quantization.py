"""INT8 ONNX models of the CCNet segmentor and of Mask R-CNN + RCCA: ONNX Runtime's static quantization, and
its accuracy against the float model (``tools/export_model.py --int8``, docs/DEPLOYMENT.md).

The convolutions (almost all of the arithmetic) get int8 weights, one scale per output channel, and
uint8 inputs and outputs whose ranges are measured on calibration images drawn from the config's training
set (min/max over the images); the file marks them with QuantizeLinear / DequantizeLinear pairs (QDQ
format), which ONNX Runtime fuses into integer convolutions. Every other operator computes in float32,
the criss-cross attention's among them: it reads the query, key and value its convolutions give (8-bit
values), but the energies, the softmax over each cross and the aggregation are float32 and never rounded
to 8 bits, since the attention weights span a range that one 8-bit scale per tensor cannot hold without
zeroing the small ones.
"""
import os
import tempfile
from typing import Dict, List, Sequence

import numpy as np

__all__ = ["INT8_FILE_NAME", "QUANTIZED_OPERATORS", "quantize_int8", "calibration_inputs", "int8_accuracy",
           "describe_int8_accuracy"]

INT8_FILE_NAME = "model_int8.onnx"
QUANTIZED_OPERATORS = ("Conv",)


class _Feeds:
    """ONNX Runtime's CalibrationDataReader over a list of inputs."""

    def __init__(self, input_name: str, inputs: Sequence[np.ndarray]):
        self._feeds = iter([{input_name: x} for x in inputs])

    def get_next(self):
        return next(self._feeds, None)


def quantize_int8(float_path: str, calibration: Sequence[np.ndarray], output_path: str) -> str:
    """Write the static INT8 version of the ONNX file ``float_path`` (module docstring) to ``output_path``;
    ``calibration``: inputs of the graph's one input, e.g. from :func:`calibration_inputs`."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

    if not calibration:
        raise ValueError("INT8 quantization needs at least one calibration image")
    input_name = onnx.load(float_path, load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory() as workdir:
        prepared = os.path.join(workdir, "prepared.onnx")
        # ONNX shape inference and graph fusions before the quantizer; the symbolic shape inference cannot
        # read the attention's Einsum equations (ellipsis) and is not needed for a static quantization
        quant_pre_process(float_path, prepared, skip_symbolic_shape=True)
        quantize_static(prepared, output_path, _Feeds(input_name, calibration), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(QUANTIZED_OPERATORS), per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    return output_path


def _training_records(cfg) -> List[dict]:
    from detectron2.data import DatasetCatalog

    if not cfg.DATASETS.TRAIN:
        raise ValueError("INT8 calibration draws its images from DATASETS.TRAIN, which the config leaves empty")
    records = []
    for name in cfg.DATASETS.TRAIN:
        records.extend(DatasetCatalog.get(name))
    return records


def _is_segmentor(cfg) -> bool:
    return cfg.MODEL.META_ARCHITECTURE == "CCNetSegmentor"


def calibration_inputs(cfg, count: int) -> List[np.ndarray]:
    """``count`` images spread evenly over the config's training set, each read and resized as the
    predictor does (``preprocess``), as the graph's ``image`` input: [1, 3, h, w] for the segmentor,
    [3, h, w] for Mask R-CNN."""
    from ..data.image_files import read_image_bgr
    from .preprocessing import preprocess

    if count < 1:
        raise ValueError(f"INT8 calibration: the number of images must be >= 1, got {count}")
    records = _training_records(cfg)
    picked = [records[i * len(records) // count] for i in range(min(count, len(records)))]
    images = [preprocess(read_image_bgr(r["file_name"]), cfg) for r in picked]
    return [x[None] for x in images] if _is_segmentor(cfg) else images


def _predict(session, image_bgr: np.ndarray, cfg) -> dict:
    """What the predictor returns for ``image_bgr``, from an exported file (docs/DEPLOYMENT.md's recipe)."""
    from .preprocessing import instance_postprocess, preprocess, semantic_postprocess

    inputs = preprocess(image_bgr, cfg)
    if _is_segmentor(cfg):
        logits, _ = session.run(None, {"image": inputs[None]})
        return semantic_postprocess(logits, image_bgr.shape[:2], cfg)
    return instance_postprocess(session.run(None, {"image": inputs}), image_bgr.shape[:2], cfg)


def _evaluator(cfg, name: str):
    from detectron2.evaluation import COCOEvaluator, SemSegEvaluator

    if _is_segmentor(cfg):
        return SemSegEvaluator(name, distributed=False)
    return COCOEvaluator(name, tasks=("bbox", "segm") if cfg.MODEL.MASK_ON else ("bbox",), distributed=False)


def _metrics(cfg, results: dict) -> Dict[str, float]:
    if _is_segmentor(cfg):
        return {"mIoU": results["sem_seg"]["mIoU"]}
    return {f"{task} AP": results[task]["AP"] for task in ("bbox", "segm") if task in results}


def int8_accuracy(cfg, float_path: str, int8_path: str) -> Dict:
    """The float and INT8 ONNX files on the config's first test set, run as the predictor runs them:
    ``{"images", "float": {metric: value}, "int8": {...}}`` with Detectron2's evaluator of the model (mIoU of
    ``SemSegEvaluator``; box and mask AP of ``COCOEvaluator``), and for the segmentor the percentage of pixels
    where the two files' labels agree (``pixel_agreement``)."""
    import onnxruntime
    from detectron2.data import DatasetCatalog

    from ..data.image_files import read_image_bgr

    if not cfg.DATASETS.TEST:
        raise ValueError("INT8 accuracy is measured on DATASETS.TEST[0], which the config leaves empty")
    name = cfg.DATASETS.TEST[0]
    records = DatasetCatalog.get(name)  # first: a loader may add the metadata the evaluator reads (json_file)
    sessions = [onnxruntime.InferenceSession(p, providers=["CPUExecutionProvider"]) for p in (float_path, int8_path)]
    evaluators = [_evaluator(cfg, name) for _ in sessions]
    for evaluator in evaluators:
        evaluator.reset()
    agreeing = total = 0
    for record in records:
        image = read_image_bgr(record["file_name"])
        outputs = [_predict(session, image, cfg) for session in sessions]
        for evaluator, output in zip(evaluators, outputs):
            evaluator.process([record], [output])
        if _is_segmentor(cfg):
            float_labels, int8_labels = (o["sem_seg"].argmax(0) for o in outputs)
            agreeing += int((float_labels == int8_labels).sum())
            total += float_labels.numel()
    result = {"images": len(records), "float": _metrics(cfg, evaluators[0].evaluate()),
              "int8": _metrics(cfg, evaluators[1].evaluate())}
    if _is_segmentor(cfg):
        result["pixel_agreement"] = 100.0 * agreeing / total
    return result


def describe_int8_accuracy(result: Dict) -> str:
    """One line: each metric of the float and the INT8 file, and the pixel agreement where measured."""
    parts = [f"{metric} float {value:.2f}, INT8 {result['int8'][metric]:.2f}" for metric, value in result["float"].items()]
    if "pixel_agreement" in result:
        parts.append(f"labels agree on {result['pixel_agreement']:.2f} % of pixels")
    return "; ".join(parts)
