"""CrissCrossAttention, RCCA and RCCAHeadBlock against hand computations built on the loop reference."""
import pytest
import torch

from detectron2.config import get_cfg

from ccnet_d2 import add_ccnet_config
from ccnet_d2.layers import RCCA, CrissCrossAttention, RCCAHeadBlock

from .reference import loop_criss_cross


def _conv1x1(x, conv):
    return torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], x) + conv.bias.view(1, -1, 1, 1)


def _hand_cca(module, x):
    """gamma * CCA(Q(x), K(x), V(x)) + x, with the 1x1 convs written out and the slow reference."""
    q, k, v = (_conv1x1(x, c) for c in (module.query_conv, module.key_conv, module.value_conv))
    return module.gamma * loop_criss_cross(q, k, v)[0] + x


def _randomize(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return module


def test_cca_module_with_nonzero_gamma_matches_hand_computation():
    torch.manual_seed(0)
    module = _randomize(CrissCrossAttention(16, reduction=4).double())
    assert module.gamma.item() != 0 and module.query_conv.out_channels == 4
    x = torch.randn(2, 16, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(module(x), _hand_cca(module, x), rtol=1e-6, atol=1e-6)


def test_cca_module_starts_as_identity_and_gamma_scales_the_attention():
    module = CrissCrossAttention(8).double()
    x = torch.randn(1, 8, 4, 6, dtype=torch.float64)
    torch.testing.assert_close(module(x), x, rtol=0, atol=0)
    with torch.no_grad():
        module.gamma.fill_(1.0)
    delta_one = module(x) - x
    with torch.no_grad():
        module.gamma.fill_(-2.5)
    torch.testing.assert_close(module(x) - x, -2.5 * delta_one, rtol=1e-9, atol=1e-9)
    assert delta_one.abs().max() > 1e-3


def test_cca_module_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r"expected input \[B, 8, H, W\], got \(1, 6, 3, 3\)"):
        CrissCrossAttention(8)(torch.randn(1, 6, 3, 3))


def _head_block(recurrence, seed=1):
    m = RCCAHeadBlock(12, out_channels=10, inner_channels=8, recurrence=recurrence, reduction=2, norm="BN")
    return _randomize(m.double(), seed).eval()


@pytest.mark.parametrize("recurrence", [1, 2, 3])
def test_head_block_applies_the_same_attention_r_times(recurrence):
    module = _head_block(recurrence)
    x = torch.randn(2, 12, 5, 6, dtype=torch.float64)
    y = module.reduce(x)
    for _ in range(recurrence):
        y = _hand_cca(module.rcca.attention, y)
    expected_context = module.post(y)
    torch.testing.assert_close(module.context(x), expected_context, rtol=1e-6, atol=1e-6)
    expected = module.bottleneck(torch.cat([x, expected_context], dim=1))
    torch.testing.assert_close(module(x), expected, rtol=1e-6, atol=1e-6)


def test_head_block_r2_differs_from_r1_with_shared_weights():
    """One module instance serves both loops (no second set of weights) and the second loop matters."""
    r2 = _head_block(2)
    assert sum(isinstance(m, CrissCrossAttention) for m in r2.modules()) == 1
    r1 = _head_block(1)
    r1.load_state_dict(r2.state_dict())
    x = torch.randn(1, 12, 5, 6, dtype=torch.float64)
    assert (r2(x) - r1(x)).abs().max() > 1e-4


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_rcca_refuses_invalid_recurrence(bad):
    with pytest.raises(ValueError, match="recurrence must be an integer >= 1"):
        RCCA(8, recurrence=bad)


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 5e-2), (torch.float16, 5e-3)])
def test_head_block_runs_in_reduced_precision(dtype, tol):
    torch.manual_seed(0)
    module = RCCAHeadBlock(16, out_channels=8, inner_channels=16, recurrence=2, norm="").eval()
    with torch.no_grad():
        module.rcca.attention.gamma.fill_(0.5)
    x = torch.randn(1, 16, 7, 9)
    ref = module(x)
    out = module.to(dtype)(x.to(dtype))
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() <= tol * ref.abs().max()


def test_head_block_gradients_flow_to_gamma_and_convs():
    module = _head_block(2).train()
    x = torch.randn(2, 12, 5, 6, dtype=torch.float64)
    module(x).square().mean().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert module.rcca.attention.gamma.grad.abs() > 0


def test_config_keys_and_from_config():
    cfg = get_cfg()
    add_ccnet_config(cfg)
    assert (cfg.MODEL.CCNET.RECURRENCE, cfg.MODEL.CCNET.REDUCTION, cfg.MODEL.CCNET.BACKEND) == (2, 8, "auto")
    assert "CCNET" not in get_cfg().MODEL, "add_ccnet_config must not touch Detectron2's global defaults"
    cfg.MODEL.CCNET.RECURRENCE = 3
    cfg.MODEL.CCNET.REDUCTION = 4
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 32
    cfg.MODEL.SEM_SEG_HEAD.NORM = "GN"
    module = RCCAHeadBlock(cfg, in_channels=64)
    assert module.rcca.recurrence == 3 and module.out_channels == 32
    assert module.rcca.attention.query_conv.out_channels == 8
    assert isinstance(module.reduce.norm, torch.nn.GroupNorm)
