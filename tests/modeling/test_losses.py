"""OHEM cross-entropy and the category-consistent loss against independent NumPy / loop computations."""
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from ccnet_d2.modeling.losses import CategoryConsistentLoss, OhemCrossEntropy, ohem_keep_mask, phi_var

IGNORE = 255


def _reference_ohem_mask(logits, targets, threshold, min_kept):
    """The official rule in plain NumPy: keep labelled pixels whose true-class probability is at most
    max(threshold, the min(min_kept, n_valid)-th smallest such probability)."""
    logits, targets = logits.double().numpy(), targets.numpy()
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    valid = targets != IGNORE
    true_prob = np.take_along_axis(probs, np.where(valid, targets, 0)[:, None], 1)[:, 0]
    ordered = np.sort(true_prob[valid])
    cut = max(threshold, ordered[min(min_kept, len(ordered)) - 1])
    return valid & (true_prob <= cut)


def _batch(seed, num_classes=5, shape=(2, 13, 11), ignore_fraction=0.2, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn((shape[0], num_classes) + shape[1:], generator=g) * scale
    targets = torch.randint(0, num_classes, shape, generator=g)
    targets[torch.rand(shape, generator=g) < ignore_fraction] = IGNORE
    return logits, targets


@pytest.mark.parametrize("min_kept", [1, 40, 150, 10000])
def test_ohem_mask_matches_the_official_rule(min_kept):
    logits, targets = _batch(0)
    kept = ohem_keep_mask(logits, targets, threshold=0.7, min_kept=min_kept, ignore_index=IGNORE)
    expected = _reference_ohem_mask(logits, targets, 0.7, min_kept)
    assert np.array_equal(kept.numpy(), expected)
    valid = (targets != IGNORE).numpy()
    assert not kept.numpy()[~valid].any(), "an ignored pixel was kept"
    assert kept.sum() >= min(min_kept, valid.sum())


def test_ohem_keeps_only_hard_pixels_when_enough_are_hard():
    logits, targets = _batch(1, scale=4.0)
    probs = F.softmax(logits, 1).gather(1, targets.clamp(max=4).unsqueeze(1)).squeeze(1)
    valid = targets != IGNORE
    hard = valid & (probs <= 0.7)
    assert 20 < hard.sum() < valid.sum(), "the batch should mix easy and hard pixels"
    kept = ohem_keep_mask(logits, targets, threshold=0.7, min_kept=10, ignore_index=IGNORE)
    assert torch.equal(kept, hard)


def test_ohem_raises_the_threshold_to_keep_min_kept_lowest_pixels():
    logits, targets = _batch(2, scale=4.0)
    probs = F.softmax(logits, 1).gather(1, targets.clamp(max=4).unsqueeze(1)).squeeze(1)
    valid = targets != IGNORE
    hard_count = int((valid & (probs <= 0.7)).sum())
    min_kept = hard_count + 25
    kept = ohem_keep_mask(logits, targets, threshold=0.7, min_kept=min_kept, ignore_index=IGNORE)
    assert int(kept.sum()) == min_kept  # continuous random probabilities: no ties
    lowest = probs[valid].sort().values[:min_kept]
    assert torch.equal(probs[kept].sort().values, lowest)


def test_ohem_loss_is_the_mean_cross_entropy_of_the_kept_pixels():
    logits, targets = _batch(3)
    logits.requires_grad_(True)
    loss = OhemCrossEntropy(threshold=0.7, min_kept=60, ignore_index=IGNORE)(logits, targets)
    kept = torch.from_numpy(_reference_ohem_mask(logits.detach(), targets, 0.7, 60))
    flat_logits = logits.detach().permute(0, 2, 3, 1)[kept]
    expected = F.cross_entropy(flat_logits, targets[kept])
    assert torch.allclose(loss, expected, atol=1e-6)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad.abs().sum(1)[~kept] == 0).all(), "pixels OHEM dropped must get no gradient"


def test_ohem_with_min_kept_above_the_labelled_pixels_keeps_all_of_them():
    logits, targets = _batch(4)
    kept = ohem_keep_mask(logits, targets, threshold=0.7, min_kept=10 ** 6, ignore_index=IGNORE)
    assert torch.equal(kept, targets != IGNORE)


# ---------------------------------------------------------------- category-consistent loss

def _reference_ccl(features, labels, num_classes, dv=0.5, dd=1.5):
    """Loops over images, classes and pixels in float64, straight from the paper's formulas."""
    features, labels = features.double(), labels
    var_terms, dis_terms, reg_terms = [], [], []
    for b in range(features.shape[0]):
        f, lab = features[b].flatten(1).t(), labels[b].flatten()
        classes = [c for c in range(num_classes) if (lab == c).any()]
        if not classes:
            continue
        means = {c: f[lab == c].mean(0) for c in classes}
        var = 0.0
        for c in classes:
            total = 0.0
            for h in f[lab == c]:
                d = float(torch.linalg.norm(means[c] - h))
                total += d - dd + (dd - dv) ** 2 if d > dd else (max(d - dv, 0.0) ** 2)
            var += total / int((lab == c).sum())
        var_terms.append(var / len(classes))
        reg_terms.append(sum(float(torch.linalg.norm(means[c])) for c in classes) / len(classes))
        if len(classes) > 1:
            dis = sum(max(2 * dd - float(torch.linalg.norm(means[a] - means[o])), 0.0) ** 2
                      for a in classes for o in classes if a != o)
            dis_terms.append(dis / (len(classes) * (len(classes) - 1)))
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    return mean(var_terms), mean(dis_terms), mean(reg_terms)


def test_phi_var_is_the_papers_piecewise_function():
    d = torch.tensor([0.0, 0.3, 0.5, 1.0, 1.5, 1.5001, 3.0])
    expected = torch.tensor([0.0, 0.0, 0.0, 0.25, 1.0, 1.0001, 2.5])
    assert torch.allclose(phi_var(d, 0.5, 1.5), expected, atol=1e-4)


def test_consistent_loss_matches_a_loop_over_pixels():
    g = torch.Generator().manual_seed(0)
    features = torch.randn(3, 4, 7, 9, generator=g) * 1.2
    labels = torch.randint(0, 5, (3, 7, 9), generator=g)
    labels[torch.rand(3, 7, 9, generator=g) < 0.25] = IGNORE
    labels[2] = IGNORE  # an image without labels takes no part
    labels[1][labels[1] != IGNORE] = 3  # an image with one class: no distance term
    loss = CategoryConsistentLoss(num_classes=5, ignore_index=IGNORE)
    features.requires_grad_(True)
    out = loss(features, labels)
    var, dis, reg = _reference_ccl(features.detach(), labels, 5)
    assert math.isclose(out["loss_ccl_var"].item(), var, rel_tol=1e-5)
    assert math.isclose(out["loss_ccl_dis"].item(), dis, rel_tol=1e-5)
    assert math.isclose(out["loss_ccl_reg"].item(), 0.001 * reg, rel_tol=1e-5)
    assert out["loss_ccl_var"] > 0 and out["loss_ccl_dis"] > 0
    sum(out.values()).backward()
    assert torch.isfinite(features.grad).all()
    assert features.grad[2].abs().sum() == 0, "ignored pixels must get no gradient"


def _clusters(centres, spread, seed=0):
    """Features [1, D, 6, 6]: class c's pixels scattered within ``spread`` of centres[c]."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor(centres, dtype=torch.float32)
    labels = torch.arange(36).view(1, 6, 6) % len(centres)
    noise = torch.randn(1, centres.shape[1], 6, 6, generator=g)
    noise = noise / noise.norm(dim=1, keepdim=True) * spread
    return centres[labels[0]].permute(2, 0, 1).unsqueeze(0) + noise, labels


def test_consistent_loss_is_zero_for_well_separated_compact_clusters():
    features, labels = _clusters([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]], spread=0.2)  # means > 2*1.5 apart
    features.requires_grad_(True)
    out = CategoryConsistentLoss(num_classes=3, ignore_index=IGNORE)(features, labels)
    assert out["loss_ccl_var"].item() == 0.0
    assert out["loss_ccl_dis"].item() == 0.0
    _, _, reg = _reference_ccl(features.detach(), labels, 3)
    assert math.isclose(out["loss_ccl_reg"].item(), 0.001 * reg, rel_tol=1e-5)
    sum(out.values()).backward()
    assert torch.isfinite(features.grad).all()


@pytest.mark.parametrize("centres, spread, positive", [
    ([[0.0, 0.0], [1.0, 0.0], [0.0, 4.0]], 0.2, "loss_ccl_dis"),  # two means closer than 2*delta_d
    ([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]], 0.9, "loss_ccl_var"),  # pixels beyond delta_v of their mean
])
def test_consistent_loss_is_positive_for_close_or_loose_clusters(centres, spread, positive):
    features, labels = _clusters(centres, spread)
    features.requires_grad_(True)
    out = CategoryConsistentLoss(num_classes=3, ignore_index=IGNORE)(features, labels)
    assert out[positive] > 0
    sum(out.values()).backward()
    assert torch.isfinite(features.grad).all() and features.grad.abs().sum() > 0


def test_consistent_loss_gradient_is_finite_when_a_class_has_one_pixel():
    features = torch.randn(1, 3, 4, 4, requires_grad=True)
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, 0, 0] = 1  # a pixel that is its class mean: zero distance
    out = CategoryConsistentLoss(num_classes=2, ignore_index=IGNORE)(features, labels)
    sum(out.values()).backward()
    assert torch.isfinite(features.grad).all()


# ---------------------------------------------------------------- no host synchronisation

def _traces_without_data(fn, *args):
    """True when ``fn`` traces on fake tensors (no values): no ``.item()``, no Python branch on a
    tensor's value, hence no device-to-host synchronisation on a GPU."""
    from torch.fx.experimental.proxy_tensor import make_fx
    try:
        make_fx(fn, tracing_mode="fake")(*args)
    except Exception as error:  # noqa: BLE001  (any data-dependent failure means "no")
        return f"{type(error).__name__}: {error}"
    return True


def test_ohem_and_consistent_loss_need_no_host_synchronisation():
    logits, targets = _batch(5)

    def branches_on_a_value(x, t):
        return x.sum() if x.sum() > 0 else -x.sum()

    assert _traces_without_data(branches_on_a_value, logits, targets) is not True  # the check can fail
    assert _traces_without_data(OhemCrossEntropy(0.7, 50, ignore_index=IGNORE), logits, targets) is True
    features = torch.randn(2, 4, 13, 11)
    assert _traces_without_data(CategoryConsistentLoss(num_classes=5, ignore_index=IGNORE), features, targets) is True
