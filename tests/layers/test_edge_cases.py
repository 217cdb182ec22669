"""The PyTorch backend and the compiled op (its CPU kernel, ``torch.ops.ccnet_d2.*``) on edge cases: empty
images are refused by both, empty batches and channels give the same empty or uniform results, and
NaN or infinite inputs give the same outputs as the loop written from the definition."""
import math

import pytest
import torch

from ccnet_d2.layers import compiled_op_built, criss_cross_attention, criss_cross_attention_map
from ccnet_d2.layers.criss_cross import criss_cross_attention_torch

from .compiled_op_checks import make_inputs
from .reference import loop_criss_cross

needs_extension = pytest.mark.skipif(not compiled_op_built(), reason="ccnet_d2._C is not built")
ops = torch.ops.ccnet_d2


@needs_extension
@pytest.mark.parametrize("h, w", [(0, 4), (3, 0), (0, 0)])
def test_an_empty_image_is_refused_by_both_backends(h, w):
    q, k, v = make_inputs(1, 2, 3, h, w)
    for attend in (lambda: criss_cross_attention(q, k, v, backend="torch"), lambda: criss_cross_attention_torch(q, k, v),
                   lambda: criss_cross_attention_map(q, k)):
        with pytest.raises(ValueError, match=r"H and W must be >= 1"):
            attend()
    for attend in (lambda: ops.criss_cross_attention(q, k, v), lambda: ops.criss_cross_attention_weights(q, k)):
        with pytest.raises(RuntimeError, match=r"H and W must be >= 1"):
            attend()


@needs_extension
@pytest.mark.parametrize("b, cq, c", [(0, 2, 3), (2, 2, 0), (2, 0, 3)])
def test_empty_batch_or_channels_give_the_same_result(b, cq, c):
    q, k, v = make_inputs(b, cq, c, 3, 4)
    expected = criss_cross_attention_torch(q, k, v)
    torch.testing.assert_close(ops.criss_cross_attention(q, k, v), expected, rtol=0, atol=1e-12)
    weights = ops.criss_cross_attention_weights(q, k)
    torch.testing.assert_close(weights, criss_cross_attention_map(q, k).double(), rtol=1e-6, atol=1e-7)  # map: float32
    if cq == 0 and b:  # no query channels: every energy is 0, so every position of the cross weighs the same
        torch.testing.assert_close(weights, torch.full_like(weights, 1 / (3 + 4 - 1)))
        torch.testing.assert_close(expected, loop_criss_cross(q, k, v)[0])


def _with(tensor, value, at=(0, 1, 1, 2)):
    changed = tensor.clone()
    changed[at] = value
    return changed


@needs_extension
@pytest.mark.parametrize("special", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("where", ["query", "key", "value"])
def test_nan_and_infinite_inputs_give_the_definitions_result_on_both_backends(special, where):
    q, k, v = make_inputs(1, 2, 3, 3, 4, seed=3)
    inputs = {"query": q, "key": k, "value": v}
    inputs[where] = _with(inputs[where], special)
    expected = loop_criss_cross(*inputs.values())[0]
    op, torch_backend = ops.criss_cross_attention(*inputs.values()), criss_cross_attention_torch(*inputs.values())
    assert not torch.isfinite(expected).all()  # (the special value reaches the output)
    torch.testing.assert_close(op, expected, equal_nan=True)
    if where == "value" and math.isinf(special):  # +-inf in the value: see the next test
        return
    torch.testing.assert_close(torch_backend, expected, equal_nan=True)


@needs_extension
@pytest.mark.parametrize("special", [float("inf"), float("-inf")])
def test_an_infinite_value_is_nan_on_its_own_pixel_with_the_torch_backend(special):
    """The one documented difference: the PyTorch backend multiplies the masked weight (exactly 0) of a pixel's
    own column entry by its value, and 0 * inf is NaN; the op and the definition leave that entry out. Every
    other output is the same, and the same outputs are non-finite."""
    q, k, v = make_inputs(1, 2, 3, 3, 4, seed=3)
    v = _with(v, special, at=(0, 1, 1, 2))
    op, torch_backend = ops.criss_cross_attention(q, k, v), criss_cross_attention_torch(q, k, v)
    assert op[0, 1, 1, 2] == special and torch.isnan(torch_backend[0, 1, 1, 2])
    torch.testing.assert_close(torch.isfinite(torch_backend), torch.isfinite(op))
    torch_backend[0, 1, 1, 2] = special
    torch.testing.assert_close(torch_backend, op, equal_nan=True)
