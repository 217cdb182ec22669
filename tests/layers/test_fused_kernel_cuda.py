"""The fused Triton kernel natively on a GPU: every case of ``fused_kernel_checks.CASES`` on CUDA
tensors, larger shapes, and the "auto" policy. Needs a CUDA GPU and triton; skipped elsewhere."""
import logging

import pytest
import torch

from ccnet_d2.layers import criss_cross_attention, criss_cross_attention_torch, fused_kernel_available
from ccnet_d2.layers import fused_kernel_status
from ccnet_d2.layers import criss_cross as criss_cross_module
from ccnet_d2.layers.fused_op import fused_criss_cross_attention

from .compiled_op_checks import check_against_torch_backend, make_inputs
from .fused_kernel_checks import CASES, RTOL, backward_is_deterministic

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
    pytest.mark.skipif(not fused_kernel_available(), reason=f"the fused kernel is {fused_kernel_status()}"),
]


@pytest.mark.parametrize("case", sorted(CASES))
def test_cuda(case):
    CASES[case]("cuda")


@pytest.mark.parametrize("shape", [(2, 8, 16, 33, 65), (2, 64, 512, 97, 97), (1, 32, 256, 128, 256)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_large_shapes_match_torch_backend(shape, dtype):
    check_against_torch_backend("cuda", dtype, shape, rtol=RTOL[dtype], op=fused_criss_cross_attention)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_backward_is_deterministic_at_ccnet_size(dtype):
    backward_is_deterministic("cuda", dtype, shape=(2, 64, 512, 97, 97))


def test_cuda_float32_with_tf32_products(monkeypatch):
    """allow_tf32 switches float32 products to one TF32 product: errors of TF32's 10-bit mantissa."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
    check_against_torch_backend("cuda", torch.float32, (2, 8, 16, 33, 65), rtol=5e-3, op=fused_criss_cross_attention)


def test_cuda_auto_follows_the_verified_kernels(monkeypatch, caplog):
    q, k, v = make_inputs(2, 4, 8, 10, 12, dtype=torch.float32, device="cuda")
    monkeypatch.setattr(criss_cross_module, "GPU_VERIFIED_KERNELS", {})
    monkeypatch.setattr(criss_cross_module, "_fallback_logged", False)
    with caplog.at_level(logging.WARNING):
        torch.testing.assert_close(criss_cross_attention(q, k, v, backend="auto"), criss_cross_attention_torch(q, k, v),
                                   rtol=0, atol=0)
    assert "no kernel has passed its GPU tests" in caplog.text
    monkeypatch.setattr(criss_cross_module, "GPU_VERIFIED_KERNELS", {"fused": ("a GPU", "a date", 3.0)})
    torch.testing.assert_close(criss_cross_attention(q, k, v, backend="auto"), fused_criss_cross_attention(q, k, v),
                               rtol=0, atol=0)
