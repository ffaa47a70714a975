"""Tests of the auxiliary losses (SeeThroughNet Eq. 2 and the baselines):
seethroughnet.nn.aux_losses.

References are written out here in float64 from the definitions (fractions counted with numpy,
KL summed explicitly) and, for the baselines, from F.interpolate + F.cross_entropy.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from seethroughnet.nn.aux_losses import (
    AUX_LOSS_KINDS,
    IGNORE_MODES,
    KL_DIRECTIONS,
    AuxiliaryLoss,
    cpp_kl_from_targets,
    cpp_kl_loss,
    infer_scale,
    nearest_ce_loss,
    upsample_ce_loss,
)
from seethroughnet.nn.cpp import cpp_targets

IGNORE = 255


def fractions_np(labels, s, K, ignore=IGNORE):
    """(N, K+1, ceil(H/s), ceil(W/s)) class fractions, outside pixels as ignore (numpy, float64)."""
    lab = labels.numpy().astype(np.int64)
    N, H, W = lab.shape
    Ho, Wo = -(-H // s), -(-W // s)
    out = np.zeros((N, K + 1, Ho, Wo))
    for n in range(N):
        for i in range(Ho):
            for j in range(Wo):
                b = lab[n, i * s : (i + 1) * s, j * s : (j + 1) * s].ravel()
                out[n, :, i, j] = np.bincount(np.where(b == ignore, K, b), minlength=K + 1)
                out[n, K, i, j] += s * s - b.size
    return out / (s * s)


def reference_kl(logits, t, direction="target_to_prediction", mode="renormalize", eps=1e-8):
    """Eq. 2 written out cell by cell in float64."""
    lg = logits.detach().double().numpy()
    N, C, h, w = lg.shape
    K = t.shape[1] - 1
    num = den = 0.0
    for n in range(N):
        for i in range(h):
            for j in range(w):
                z = lg[n, :, i, j]
                logp = z - z.max() - math.log(np.exp(z - z.max()).sum())
                cell = t[n, :, i, j]
                if mode == "ignore_channel":
                    q, weight = cell, 1.0
                else:
                    v = cell[:K].sum()
                    if v == 0:
                        continue
                    q, weight = cell[:K] / v, (v if mode == "renormalize" else 1.0)
                if direction == "target_to_prediction":
                    kl = sum(qc * (math.log(qc) - lp) for qc, lp in zip(q, logp) if qc > 0)
                else:
                    qe = (q + eps) / (1 + len(q) * eps)
                    kl = sum(math.exp(lp) * (lp - math.log(qc)) for qc, lp in zip(qe, logp))
                num += weight * kl
                den += weight
    return num / den if den else 0.0


@st.composite
def problems(draw):
    K = draw(st.integers(2, 5))
    s = draw(st.sampled_from([1, 2, 3, 4, 8]))
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    # label sizes that are not multiples of s are allowed (pad policy: ceil sizes)
    H = draw(st.integers((h - 1) * s + 1, h * s))
    W = draw(st.integers((w - 1) * s + 1, w * s))
    n = draw(st.integers(1, 2))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    labels = torch.randint(0, K + 1, (n, H, W), generator=g)
    labels[labels == K] = IGNORE
    logits = 2 * torch.randn(n, K, h, w, generator=g, dtype=torch.float64).float()
    return logits, labels, K, s


@settings(max_examples=40, deadline=None)
@given(problems(), st.sampled_from(KL_DIRECTIONS), st.sampled_from(["renormalize", "unweighted"]))
def test_cpp_kl_matches_reference(problem, direction, mode):
    logits, labels, K, s = problem
    t = fractions_np(labels, infer_scale(logits.shape[-2:], labels.shape[-2:]), K)
    loss = cpp_kl_loss(logits, labels, K, kl_direction=direction, ignore_mode=mode)
    assert math.isfinite(loss.item())
    assert loss.item() == pytest.approx(
        reference_kl(logits, t, direction, mode), rel=1e-4, abs=1e-5
    )


@settings(max_examples=20, deadline=None)
@given(problems(), st.sampled_from(KL_DIRECTIONS))
def test_ignore_channel_mode_matches_reference(problem, direction):
    logits, labels, K, s = problem
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(logits.shape[0], K + 1, *logits.shape[2:], generator=g)
    s = infer_scale(logits.shape[-2:], labels.shape[-2:])
    t = fractions_np(labels, s, K)
    loss = AuxiliaryLoss("cpp_kl", K, kl_direction=direction, ignore_mode="ignore_channel")(
        logits, labels
    )
    assert loss.item() == pytest.approx(
        reference_kl(logits, t, direction, "ignore_channel"), rel=1e-4, abs=1e-5
    )


@settings(max_examples=30, deadline=None)
@given(problems())
def test_finite_kl_zero_iff_prediction_equals_renormalised_target(problem):
    logits, labels, K, s = problem
    s = infer_scale(logits.shape[-2:], labels.shape[-2:])
    t = torch.from_numpy(fractions_np(labels, s, K))
    v = t[:, :K].sum(1, keepdim=True)
    q = torch.where(v > 0, t[:, :K] / v.clamp_min(1e-12), torch.full_like(t[:, :K], 1.0 / K))
    exact = torch.log(q).float()  # -inf where a class is absent: softmax reproduces q exactly
    assert cpp_kl_loss(exact, labels, K).item() == pytest.approx(0.0, abs=1e-6)
    # close but never equal: move 10% of the mass onto the least likely class of every cell
    least = F.one_hot(q.argmin(1), K).permute(0, 3, 1, 2).to(q.dtype)
    smooth = torch.log(0.9 * q + 0.1 * least).float()
    assert cpp_kl_loss(smooth, labels, K).item() > 0 or float(v.sum()) == 0
    assert cpp_kl_loss(logits, labels, K).item() > 0 or float(v.sum()) == 0


@pytest.mark.parametrize("mode", ["renormalize", "unweighted"])
def test_gradient_reaches_logits_not_labels(mode):
    g = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 5, (2, 32, 48), generator=g)
    labels[labels == 4] = IGNORE
    logits = torch.randn(2, 4, 8, 12, generator=g, requires_grad=True)
    targets = cpp_targets(labels, 4, 4)
    assert not targets.requires_grad
    loss = cpp_kl_loss(logits, labels, 4, ignore_mode=mode)
    loss.backward()
    # d loss / d logits = w (p - q) / sum w: the gradient of KL(q || softmax(z)) per cell
    v = targets[:, :4].sum(1, keepdim=True)
    q = targets[:, :4] / v.clamp_min(1e-12)
    w = v if mode == "renormalize" else (v > 0).float()
    expected = w * (torch.softmax(logits.detach(), 1) - q) / w.sum()
    assert torch.allclose(logits.grad, expected, atol=1e-6)
    assert labels.grad is None and not labels.requires_grad
    # with precomputed targets that (wrongly) require grad, nothing flows into them
    t = targets.clone().requires_grad_(True)
    cpp_kl_loss(logits, None, 4, targets=t).backward()
    assert t.grad is None


def test_scale_one_equals_cross_entropy():
    g = torch.Generator().manual_seed(4)
    labels = torch.randint(0, 8, (2, 17, 19), generator=g)
    labels[labels == 7] = IGNORE
    logits = torch.randn(2, 7, 17, 19, generator=g)
    expected = F.cross_entropy(logits, labels, ignore_index=IGNORE)
    assert cpp_kl_loss(logits, labels, 7).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("kind", AUX_LOSS_KINDS)
@pytest.mark.parametrize("direction", KL_DIRECTIONS)
def test_all_ignore_batch_gives_finite_zero(kind, direction):
    labels = torch.full((2, 32, 32), IGNORE, dtype=torch.int64)
    logits = torch.randn(2, 19, 4, 4, requires_grad=True)
    loss = AuxiliaryLoss(kind, 19, kl_direction=direction)(logits, labels)
    assert loss.item() == 0.0 and math.isfinite(loss.item())
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_literal_direction_is_finite_where_classes_are_absent():
    labels = torch.zeros(1, 16, 16, dtype=torch.int64)  # every cell is pure class 0: q has zeros
    labels[0, :8, :8] = 2
    logits = torch.randn(1, 19, 4, 4) * 10
    for eps in (1e-8, 1e-12, 1e-4):
        loss = cpp_kl_loss(logits, labels, 19, kl_direction="prediction_to_target", eps=eps)
        assert math.isfinite(loss.item()) and loss.item() >= 0
        t = fractions_np(labels, 4, 19)
        assert loss.item() == pytest.approx(
            reference_kl(logits, t, "prediction_to_target", eps=eps), rel=1e-4
        )
    very_confident = torch.full((1, 19, 4, 4), -1e4)
    very_confident[:, 5] = 1e4  # all mass on a class that is absent everywhere
    loss = cpp_kl_loss(very_confident, labels, 19, kl_direction="prediction_to_target")
    assert math.isfinite(loss.item()) and loss.item() == pytest.approx(
        -math.log(1e-8 / (1 + 19e-8)), rel=1e-4
    )


def test_precomputed_targets_give_the_same_loss():
    g = torch.Generator().manual_seed(5)
    labels = torch.randint(0, 20, (2, 64, 128), generator=g)
    labels[labels == 19] = IGNORE
    all_targets = cpp_targets(labels, [4, 8, 16, 32], 19)
    loss_fn = AuxiliaryLoss("cpp_kl", 19)
    for s, t in zip([4, 8, 16, 32], all_targets):
        logits = torch.randn(2, 19, 64 // s, 128 // s, generator=g)
        assert torch.equal(loss_fn(logits, labels), loss_fn(logits, labels, targets=t))
        assert torch.equal(loss_fn(logits, labels), cpp_kl_from_targets(logits, t))
    with pytest.raises(ValueError, match="do not match"):
        loss_fn(torch.randn(2, 19, 8, 16), labels, targets=all_targets[0])


# ------------------------------------------------------------------------------------ baselines


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize(
    "shape", [((64, 128), (8, 16)), ((713, 301), (90, 38)), ((33, 33), (33, 33))]
)
def test_upsample_ce_matches_interpolate_plus_cross_entropy(align_corners, shape):
    (H, W), (h, w) = shape
    g = torch.Generator().manual_seed(6)
    labels = torch.randint(0, 20, (2, H, W), generator=g)
    labels[labels == 19] = IGNORE
    logits = torch.randn(2, 19, h, w, generator=g)
    up = F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=align_corners)
    expected = F.cross_entropy(up, labels, ignore_index=IGNORE)
    ours = AuxiliaryLoss("upsample_ce", 19, align_corners=align_corners)(logits, labels)
    assert ours.item() == pytest.approx(expected.item(), rel=1e-5)
    assert upsample_ce_loss(
        logits, labels, 19, align_corners=align_corners
    ).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize(
    "shape", [((64, 128), (8, 16)), ((713, 301), (90, 38)), ((40, 40), (5, 5))]
)
def test_nearest_ce_matches_interpolate_plus_cross_entropy(shape):
    (H, W), (h, w) = shape
    g = torch.Generator().manual_seed(7)
    labels = torch.randint(0, 20, (2, H, W), generator=g)
    labels[labels == 19] = IGNORE
    logits = torch.randn(2, 19, h, w, generator=g)
    small = F.interpolate(labels[:, None].double(), size=(h, w), mode="nearest")[:, 0].long()
    expected = F.cross_entropy(logits, small, ignore_index=IGNORE)
    assert AuxiliaryLoss("nearest_ce", 19)(logits, labels).item() == pytest.approx(
        expected.item(), rel=1e-5
    )
    assert nearest_ce_loss(logits, labels, 19).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device in this environment")
@pytest.mark.parametrize("kind", AUX_LOSS_KINDS)
def test_cuda_agrees_with_cpu(kind):
    g = torch.Generator().manual_seed(8)
    labels = torch.randint(0, 20, (2, 128, 256), generator=g)
    labels[labels == 19] = IGNORE
    logits = torch.randn(2, 19, 16, 32, generator=g)
    fn = AuxiliaryLoss(kind, 19)
    assert fn(logits.cuda(), labels.cuda()).item() == pytest.approx(
        fn(logits, labels).item(), rel=1e-5
    )


# ------------------------------------------------------------------------------------ bad input


def test_infer_scale():
    assert infer_scale((90, 90), (713, 713)) == 8
    assert infer_scale((32, 64), (1024, 2048)) == 32
    assert infer_scale((256, 512), (1024, 2048)) == 4
    assert infer_scale((89, 89), (713, 713), remainder="crop") == 8
    for bad in [((100, 100), (713, 713)), ((33, 64), (1024, 2048)), ((2048, 2048), (1024, 2048))]:
        with pytest.raises(ValueError, match="not an integer fraction"):
            infer_scale(*bad)
    with pytest.raises(ValueError, match="not an integer fraction"):
        infer_scale((90, 90), (713, 713), remainder="error")


@pytest.mark.parametrize("kind", AUX_LOSS_KINDS)
def test_logits_not_an_integer_fraction(kind):
    labels = torch.zeros(1, 64, 64, dtype=torch.int64)
    with pytest.raises(
        ValueError, match="logits size 12x12 is not an integer fraction of the label size 64x64"
    ):
        AuxiliaryLoss(kind, 19)(
            torch.randn(1, 19, 12, 12), labels
        )  # ceil(64/5) = 13, ceil(64/6) = 11


@pytest.mark.parametrize("kind", AUX_LOSS_KINDS)
def test_bad_labels_through_the_loss(kind):
    loss_fn = AuxiliaryLoss(kind, 19)
    logits = torch.randn(1, 19, 4, 4)
    labels = torch.zeros(1, 16, 16, dtype=torch.int64)
    labels[0, 3, 3] = 37
    with pytest.raises(
        ValueError, match="label value 37 is outside \\[0, 19\\) and is not the ignore value 255"
    ):
        loss_fn(logits, labels)
    labels[0, 3, 3] = -1
    with pytest.raises(ValueError, match="label value -1 is outside"):
        loss_fn(logits, labels)
    with pytest.raises(ValueError, match="integer dtype"):
        loss_fn(logits, labels.float())


def test_unknown_options_list_valid_choices():
    with pytest.raises(ValueError, match="upsample_ce, nearest_ce, cpp_kl"):
        AuxiliaryLoss("focal")
    with pytest.raises(ValueError, match="target_to_prediction, prediction_to_target"):
        AuxiliaryLoss(kl_direction="forward")
    with pytest.raises(ValueError, match=", ".join(IGNORE_MODES)):
        AuxiliaryLoss(ignore_mode="zero")
    with pytest.raises(ValueError, match="eps"):
        AuxiliaryLoss(eps=0.0)
    with pytest.raises(ValueError, match="channels"):
        AuxiliaryLoss("cpp_kl", 19)(
            torch.randn(1, 20, 4, 4), torch.zeros(1, 16, 16, dtype=torch.int64)
        )
