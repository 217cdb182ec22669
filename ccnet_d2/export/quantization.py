"""INT8 ONNX models of the CCNet segmentor: ONNX Runtime's static quantization, and its accuracy against
the float model (``tools/export_model.py --int8``, docs/DEPLOYMENT.md).

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
from typing import Dict, Iterable, List, Sequence

import numpy as np

__all__ = ["INT8_FILE_NAME", "QUANTIZED_OPERATORS", "quantize_int8", "calibration_inputs", "int8_accuracy"]

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


def calibration_inputs(cfg, count: int) -> List[np.ndarray]:
    """``count`` images spread evenly over the config's training set, each read and resized as the
    predictor does (``preprocess``), as the segmentor graph's ``image`` input [1, 3, h, w]."""
    from ..data.image_files import read_image_bgr
    from .preprocessing import preprocess

    if count < 1:
        raise ValueError(f"INT8 calibration: the number of images must be >= 1, got {count}")
    records = _training_records(cfg)
    picked = [records[i * len(records) // count] for i in range(min(count, len(records)))]
    return [preprocess(read_image_bgr(r["file_name"]), cfg)[None] for r in picked]


def _labels(session, image_bgr: np.ndarray, cfg):
    from .preprocessing import preprocess, semantic_postprocess

    logits, _ = session.run(None, {"image": preprocess(image_bgr, cfg)[None]})
    return semantic_postprocess(logits, image_bgr.shape[:2], cfg)["sem_seg"]


def int8_accuracy(cfg, float_path: str, int8_path: str) -> Dict[str, float]:
    """The float and INT8 ONNX files of a segmentor on the config's first test set, as the predictor runs
    them: mIoU of each (Detectron2's ``SemSegEvaluator``) and the share of pixels where their labels agree."""
    import onnxruntime
    from detectron2.data import DatasetCatalog
    from detectron2.evaluation import SemSegEvaluator

    from ..data.image_files import read_image_bgr

    if not cfg.DATASETS.TEST:
        raise ValueError("INT8 accuracy is measured on DATASETS.TEST[0], which the config leaves empty")
    name = cfg.DATASETS.TEST[0]
    sessions = [onnxruntime.InferenceSession(p, providers=["CPUExecutionProvider"]) for p in (float_path, int8_path)]
    evaluators = [SemSegEvaluator(name, distributed=False) for _ in sessions]
    for evaluator in evaluators:
        evaluator.reset()
    agreeing = total = 0
    records: Iterable[dict] = DatasetCatalog.get(name)
    for record in records:
        image = read_image_bgr(record["file_name"])
        outputs = [_labels(session, image, cfg) for session in sessions]
        for evaluator, sem_seg in zip(evaluators, outputs):
            evaluator.process([record], [{"sem_seg": sem_seg}])
        float_labels, int8_labels = (o.argmax(0) for o in outputs)
        agreeing += int((float_labels == int8_labels).sum())
        total += float_labels.numel()
    float_result, int8_result = (e.evaluate()["sem_seg"] for e in evaluators)
    return {"images": len(records), "float_miou": float_result["mIoU"], "int8_miou": int8_result["mIoU"],
            "pixel_agreement": 100.0 * agreeing / total}
