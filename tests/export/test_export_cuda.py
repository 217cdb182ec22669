"""Models built with backend 'cuda' (the compiled op in their graphs) export to standard ONNX operators
that run in ONNX Runtime on CPU and match the model on the GPU. Needs a CUDA GPU and the op's CUDA
kernels; elsewhere the module is reported as skipped."""
import numpy as np
import pytest
import torch

from ccnet_d2.export import export_model
from ccnet_d2.layers import compiled_op_has_cuda_kernels, compiled_op_status
from tests.common import TOY_INSTANCE_CONFIG, TOY_SEMANTIC_CONFIG

from .seeded import random_image, seeded_model
from .test_export import BOX_ATOL, LOGIT_ATOL, SCORE_ATOL, onnx_session

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
    pytest.mark.skipif(not compiled_op_has_cuda_kernels(),
                       reason=f"the compiled op is {compiled_op_status()}, not built with CUDA kernels"),
]
CUDA_BACKEND = ("MODEL.CCNET.BACKEND", "cuda")


def test_semantic_model_with_cuda_backend_exports_to_standard_onnx(tmp_path):
    model = seeded_model(TOY_SEMANTIC_CONFIG, *CUDA_BACKEND, device="cuda")
    image = random_image(100, 90)
    session = onnx_session(export_model(model, image.cuda(), str(tmp_path), "onnx"))
    with torch.no_grad():
        expected = model([{"image": image.cuda()}])[0]["sem_seg"].cpu().numpy()
    logits, _ = session.run(None, {"image": image[None].numpy()})
    np.testing.assert_allclose(logits[0], expected, atol=LOGIT_ATOL, rtol=0)


def test_mask_rcnn_with_cuda_backend_exports_to_standard_onnx(tmp_path):
    model = seeded_model(TOY_INSTANCE_CONFIG, *CUDA_BACKEND, "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.05",
                         device="cuda")
    image = random_image(192, 160)
    session = onnx_session(export_model(model, image.cuda(), str(tmp_path), "onnx"))
    with torch.no_grad():
        expected = model.inference([{"image": image.cuda()}], do_postprocess=False)[0].to("cpu")
    boxes, classes, _, scores, _ = session.run(None, {"image": image.numpy()})
    assert len(expected) > 0
    np.testing.assert_array_equal(classes, expected.pred_classes.numpy())
    np.testing.assert_allclose(boxes, expected.pred_boxes.tensor.numpy(), atol=BOX_ATOL, rtol=0)
    np.testing.assert_allclose(scores, expected.scores.numpy(), atol=SCORE_ATOL, rtol=0)
