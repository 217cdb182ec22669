"""Exported models against eager PyTorch: the ONNX files pass onnx.checker, contain standard operators
only and run in ONNX Runtime (CPU); the torch.export program runs; outputs match at two or three input sizes.

Tolerances (float32, absolute; the measured differences, 4-10x smaller, are in docs/DEPLOYMENT.md):
semantic logits 1e-4 and the same label on >= 99.9 % of pixels; Mask R-CNN boxes 0.05 px, scores
5e-4, 28x28 mask probabilities 1e-4, classes equal.
"""
import cv2
import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from detectron2.checkpoint import DetectionCheckpointer

from ccnet_d2.export import INSTANCE_OUTPUTS, SEMANTIC_OUTPUTS, decompositions, export_model
from ccnet_d2.layers import compiled_op_built, compiled_op_status, criss_cross_attention_torch
from tests.common import TOY_INSTANCE_CONFIG, TOY_PANOPTIC_CONFIG, TOY_SEMANTIC_CONFIG, load_tool

from .seeded import random_image, seeded_model

LOGIT_ATOL, LABEL_AGREEMENT = 1e-4, 0.999
BOX_ATOL, SCORE_ATOL, MASK_ATOL = 0.05, 5e-4, 1e-4
SEMANTIC_SIZES = [(100, 90), (77, 130), (64, 96)]  # the first is traced; the last needs no padding to the stride 8
INSTANCE_SIZES = [(192, 160), (160, 224)]
INSTANCE_OVERRIDES = ("MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.05")

needs_compiled_op = pytest.mark.skipif(not compiled_op_built(), reason=f"the compiled op is {compiled_op_status()}")


def onnx_session(path):
    """onnx.checker, standard operators only, then an ONNX Runtime CPU session."""
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    domains = {node.domain for node in model.graph.node} | {opset.domain for opset in model.opset_import}
    assert domains <= {"", "ai.onnx"}, f"non-standard operator domains {domains}"
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])


def exported_with_tool(tmp_path, config, model, export_format, sample, *overrides):
    """Save ``model``'s weights and export them with tools/export_model.py, as a user would;
    ``sample``: the tool's ``--size H W`` or ``--sample-image FILE`` arguments."""
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("seeded")
    return load_tool("export_model").main(["--config-file", config, "--format", export_format, "--output",
                                           str(tmp_path), *map(str, sample),
                                           "MODEL.WEIGHTS", str(tmp_path / "seeded.pth"), *overrides])


# ---- the custom-operator table ----

class OpGraph(torch.nn.Module):
    """A graph calling the compiled op directly (its CPU kernel), as a model built with backend 'cuda'
    does on a GPU."""

    def forward(self, query, value):
        return torch.ops.ccnet_d2.criss_cross_attention(query, query.flip(1), value)


def op_inputs(height, width, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 4, height, width, generator=g), torch.randn(1, 6, height, width, generator=g)


@needs_compiled_op
def test_compiled_op_exports_to_standard_onnx(tmp_path):
    inputs = op_inputs(9, 7)
    spatial = {2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
    program = torch.export.export(OpGraph(), inputs, dynamic_shapes=(spatial, spatial))
    assert any("ccnet_d2" in str(node.target) for node in program.graph.nodes)  # the op is really in the graph
    program = decompositions.decompose_custom_ops(program)
    assert not any("ccnet_d2" in str(node.target) for node in program.graph.nodes)
    path = str(tmp_path / "op.onnx")
    torch.onnx.export(program, inputs, dynamo=True).save(path)
    session = onnx_session(path)
    for size in [(9, 7), (5, 12)]:
        query, value = op_inputs(*size, seed=1)
        expected = torch.ops.ccnet_d2.criss_cross_attention(query, query.flip(1), value)
        got, = session.run(None, {"query": query.numpy(), "value": value.numpy()})
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)
        assert program.module()(query, value).sub(expected).abs().max() < 1e-5


@needs_compiled_op
def test_compiled_op_traced_as_reference(tmp_path):
    inputs = op_inputs(6, 8)
    with decompositions.custom_ops_as_reference():
        traced = torch.jit.trace(OpGraph(), inputs)
    assert "ccnet_d2::" not in str(traced.graph) and "aten::einsum" in str(traced.graph)
    expected = torch.ops.ccnet_d2.criss_cross_attention(inputs[0], inputs[0].flip(1), inputs[1])
    torch.testing.assert_close(traced(*inputs), expected, atol=1e-5, rtol=0)
    without = torch.jit.trace(OpGraph(), inputs)  # negative control: outside the block the op stays
    assert "ccnet_d2::criss_cross_attention" in str(without.graph)


@needs_compiled_op
def test_operator_missing_from_the_table_is_named(monkeypatch):
    program = torch.export.export(OpGraph(), op_inputs(5, 5))
    monkeypatch.setattr(decompositions, "CUSTOM_OP_DECOMPOSITIONS", {})
    with pytest.raises(RuntimeError, match=r"ccnet_d2\.criss_cross_attention.*CUSTOM_OP_DECOMPOSITIONS"):
        decompositions.decompose_custom_ops(program)


def test_table_entries_are_the_reference_implementations():
    assert decompositions.CUSTOM_OP_DECOMPOSITIONS["ccnet_d2::criss_cross_attention"] is criss_cross_attention_torch
    fused = decompositions.CUSTOM_OP_DECOMPOSITIONS["ccnet_d2::fused_criss_cross_attention"]
    assert fused is decompositions.fused_criss_cross_attention_reference  # checked against the kernel in
    # tests/layers/fused_kernel_checks.py (export_decomposes_to_the_reference)


# ---- the CCNet segmentor ----

@pytest.fixture(scope="module")
def semantic_model():
    return seeded_model(TOY_SEMANTIC_CONFIG)


def eager_semantic_logits(model, image):
    with torch.no_grad():
        return model([{"image": image}])[0]["sem_seg"].numpy()


def test_semantic_onnx_matches_pytorch_at_three_sizes(semantic_model, tmp_path):
    session = onnx_session(exported_with_tool(tmp_path, TOY_SEMANTIC_CONFIG, semantic_model, "onnx",
                                              ["--size", *SEMANTIC_SIZES[0]]))
    assert [o.name for o in session.get_outputs()] == list(SEMANTIC_OUTPUTS)
    no_attention = seeded_model(TOY_SEMANTIC_CONFIG, gamma=0.0)
    for seed, (height, width) in enumerate(SEMANTIC_SIZES):
        image = random_image(height, width, seed)
        expected = eager_semantic_logits(semantic_model, image)
        logits, labels = session.run(None, {"image": image[None].numpy()})
        assert logits.shape == (1, 4, height, width) and labels.shape == (1, height, width)
        np.testing.assert_allclose(logits[0], expected, atol=LOGIT_ATOL, rtol=0)
        assert (labels[0] == expected.argmax(0)).mean() >= LABEL_AGREEMENT
        assert len(np.unique(labels)) > 1  # not a constant map
        # negative control: the same network without the attention is far outside the tolerance
        assert np.abs(eager_semantic_logits(no_attention, image) - logits[0]).max() > 100 * LOGIT_ATOL


def test_semantic_torch_export_program_matches_eager(semantic_model, tmp_path):
    sample = str(tmp_path / "sample.png")  # traced at the size the tool resizes it to (INPUT.MIN_SIZE_TEST 128)
    cv2.imwrite(sample, random_image(60, 75).permute(1, 2, 0).numpy().astype(np.uint8))
    path = exported_with_tool(tmp_path, TOY_SEMANTIC_CONFIG, semantic_model, "torch-export", ["--sample-image", sample])
    program = torch.export.load(path)
    assert not any("ccnet_d2" in str(node.target) for node in program.graph.nodes)
    for seed, (height, width) in enumerate(SEMANTIC_SIZES):
        image = random_image(height, width, seed)
        with torch.no_grad():
            logits, labels = program.module()(image[None])
        np.testing.assert_allclose(logits[0].numpy(), eager_semantic_logits(semantic_model, image), atol=1e-5, rtol=0)
        assert torch.equal(labels, logits.argmax(1))


def test_semantic_export_refuses_sliding_window(tmp_path):
    model = seeded_model(TOY_SEMANTIC_CONFIG, "TEST.SEM_SEG.MODE", "slide", "TEST.SEM_SEG.CROP_SIZE", "[64, 64]",
                         "TEST.SEM_SEG.STRIDE", "[32, 32]")
    with pytest.raises(ValueError, match="TEST.SEM_SEG.MODE whole"):
        export_model(model, random_image(64, 64), str(tmp_path), "onnx")


# ---- Mask R-CNN + RCCA ----

def test_mask_rcnn_onnx_matches_pytorch_at_two_sizes(tmp_path):
    model = seeded_model(TOY_INSTANCE_CONFIG, *INSTANCE_OVERRIDES)
    session = onnx_session(exported_with_tool(tmp_path, TOY_INSTANCE_CONFIG, model, "onnx",
                                              ["--size", *INSTANCE_SIZES[0]], *INSTANCE_OVERRIDES))
    assert [o.name for o in session.get_outputs()] == list(INSTANCE_OUTPUTS)
    for seed, (height, width) in enumerate(INSTANCE_SIZES):
        image = random_image(height, width, seed)
        with torch.no_grad():
            expected = model.inference([{"image": image}], do_postprocess=False)[0]
        boxes, classes, masks, scores, image_size = session.run(None, {"image": image.numpy()})
        assert len(expected) >= 5 and len(set(expected.scores.tolist())) == len(expected)  # not vacuous
        assert boxes.shape == (len(expected), 4) and masks.shape == (len(expected), 1, 28, 28)
        np.testing.assert_array_equal(classes, expected.pred_classes.numpy())
        np.testing.assert_allclose(boxes, expected.pred_boxes.tensor.numpy(), atol=BOX_ATOL, rtol=0)
        np.testing.assert_allclose(scores, expected.scores.numpy(), atol=SCORE_ATOL, rtol=0)
        np.testing.assert_allclose(masks, expected.pred_masks.numpy(), atol=MASK_ATOL, rtol=0)
        np.testing.assert_array_equal(image_size, [height, width])


def test_mask_rcnn_torch_export_is_refused_with_the_reason(tmp_path):
    model = seeded_model(TOY_INSTANCE_CONFIG)
    with pytest.raises(ValueError, match="data-dependent.*--format onnx"):
        export_model(model, random_image(64, 64), str(tmp_path), "torch-export")


PANOPTIC_OVERRIDES = ("MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.05",
                      "MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH", "0.05")


def test_panoptic_fpn_onnx_and_its_merge_match_the_predictor(tmp_path):
    """The exported Panoptic FPN (raw detections + stuff logits) and ``panoptic_postprocess`` give what the
    model gives through Detectron2's inference, at the traced size and another; torch.export is refused."""
    from ccnet_d2.export import PANOPTIC_OUTPUTS, panoptic_postprocess
    from tests.common import build_cfg

    model = seeded_model(TOY_PANOPTIC_CONFIG, *PANOPTIC_OVERRIDES)
    cfg = build_cfg(TOY_PANOPTIC_CONFIG, *PANOPTIC_OVERRIDES)
    session = onnx_session(exported_with_tool(tmp_path, TOY_PANOPTIC_CONFIG, model, "onnx",
                                              ["--size", *INSTANCE_SIZES[0]], *PANOPTIC_OVERRIDES))
    assert [o.name for o in session.get_outputs()] == list(PANOPTIC_OUTPUTS)
    for seed, (height, width) in enumerate(INSTANCE_SIZES):
        image = random_image(height, width, seed)
        out_size = (height * 2 // 3, width * 2 // 3)  # the original image's size, as the predictor passes it
        with torch.no_grad():
            (expected,) = model([{"image": image, "height": out_size[0], "width": out_size[1]}])
        got = panoptic_postprocess(session.run(None, {"image": image.numpy()}), out_size, cfg)
        # the stuff logits of these random weights reach about 25; ONNX Runtime's and PyTorch's convolutions
        # sum in other orders, which moves them by up to 2e-4 of that (measured), the plain FPN branch as much
        logits, reference_logits = got["sem_seg"].numpy(), expected["sem_seg"].numpy()
        assert np.abs(logits - reference_logits).max() <= 1e-3 * np.abs(reference_logits).max()
        assert (logits.argmax(0) == reference_logits.argmax(0)).mean() > LABEL_AGREEMENT - 0.004
        instances, reference = got["instances"], expected["instances"]
        assert len(reference) >= 3  # not vacuous
        np.testing.assert_array_equal(instances.pred_classes.numpy(), reference.pred_classes.numpy())
        np.testing.assert_allclose(instances.scores.numpy(), reference.scores.numpy(), atol=SCORE_ATOL, rtol=0)
        (ids, segments), (expected_ids, expected_segments) = got["panoptic_seg"], expected["panoptic_seg"]
        assert any(s["isthing"] for s in expected_segments) and any(not s["isthing"] for s in expected_segments)
        assert [(s["category_id"], s["isthing"]) for s in segments] == \
            [(s["category_id"], s["isthing"]) for s in expected_segments]
        assert (ids == expected_ids).float().mean() > 0.995
    with pytest.raises(ValueError, match="Panoptic FPN.*torch.export.*--format onnx"):
        export_model(model, random_image(64, 64), str(tmp_path), "torch-export")
    with pytest.raises(ValueError, match="--int8: .*Panoptic FPN is exported in float32 only"):
        load_tool("export_model").main(["--config-file", TOY_PANOPTIC_CONFIG, "--format", "onnx", "--output",
                                        str(tmp_path / "int8"), "--size", "64", "64", "--int8"])


def suppression_limits(path):
    """The max_output_boxes_per_class of every NonMaxSuppression node of an ONNX file (subgraphs included)."""
    model = onnx.load(path)
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    limits = []

    def visit(graph):
        for node in graph.node:
            if node.op_type == "Constant":
                constants[node.output[0]] = onnx.numpy_helper.to_array(node.attribute[0].t)
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    visit(attribute.g)
            if node.op_type == "NonMaxSuppression":
                limits.append(int(constants[node.input[2]].reshape(-1)[0]))

    visit(model.graph)
    return sorted(limits)


@pytest.mark.parametrize("score_threshold, kept", [("0.0", 7), ("1.0", 0)])
def test_mask_rcnn_onnx_suppression_keeps_what_the_model_keeps(tmp_path, score_threshold, kept):
    """The graph's two NonMaxSuppression nodes stop at the RPN's and the box head's kept counts; with
    every candidate of every class entering suppression (threshold 0) the survivors equal eager's, and
    an image with no candidate (threshold 1: no softmax score reaches it) gives no detection."""
    overrides = ("MODEL.ROI_HEADS.SCORE_THRESH_TEST", score_threshold, "TEST.DETECTIONS_PER_IMAGE", "7",
                 "MODEL.RPN.POST_NMS_TOPK_TEST", "40")
    model = seeded_model(TOY_INSTANCE_CONFIG, *overrides)
    path = exported_with_tool(tmp_path, TOY_INSTANCE_CONFIG, model, "onnx", ["--size", *INSTANCE_SIZES[0]], *overrides)
    assert suppression_limits(path) == [7, 40]  # without limited_suppression: 2**63 - 1, no limit
    session = onnx_session(path)
    image = random_image(*INSTANCE_SIZES[1], seed=3)
    with torch.no_grad():
        expected = model.inference([{"image": image}], do_postprocess=False)[0]
    boxes, classes, masks, scores, _ = session.run(None, {"image": image.numpy()})
    assert len(expected) == kept and boxes.shape == (kept, 4) and masks.shape == (kept, 1, 28, 28)
    np.testing.assert_array_equal(classes, expected.pred_classes.numpy())
    np.testing.assert_allclose(boxes, expected.pred_boxes.tensor.numpy(), atol=BOX_ATOL, rtol=0)
    np.testing.assert_allclose(scores, expected.scores.numpy(), atol=SCORE_ATOL, rtol=0)
