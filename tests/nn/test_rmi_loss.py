"""RMI loss (SeeThroughNet Eq. 5, RMI paper Eqs. 13 and 16) as its reference code computes it.

The references here are written in the test: a hand-computed one-class case with every covariance
written out, and an independent numpy implementation (explicit loops for pooling and windows) of
what the RMI reference computes. The comparison with the reference code itself is
tools/compare_rmi_reference.py (docs/rmi_reference_check.md)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from seethroughnet.nn.rmi_loss import RMILoss, log_det_by_cholesky

ALPHA = 5e-4


# ----------------------------------------------------------------------------------------------
# independent numpy reference
# ----------------------------------------------------------------------------------------------
def np_pool(x: np.ndarray, s: int, mode: str) -> np.ndarray:
    """kernel = stride = s, padding s // 2 on every side; avg divides by s*s (padding counted),
    max ignores the padding."""
    if s == 1:
        return x
    pad = s // 2
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - s) // s + 1, (w + 2 * pad - s) // s + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            y0, x0 = i * s - pad, j * s - pad
            ys, xs = slice(max(y0, 0), min(y0 + s, h)), slice(max(x0, 0), min(x0 + s, w))
            cell = x[:, :, ys, xs]
            out[:, :, i, j] = cell.sum((2, 3)) / (s * s) if mode == "avg" else cell.max((2, 3))
    return out


def np_rmi_total(
    logits,
    labels,
    num_classes,
    radius=3,
    pool="avg",
    stride=4,
    lam=0.5,
    reduction="sum",
    ignore=255,
):
    z = logits.astype(np.float64)
    valid = (labels != ignore).astype(np.float64)[:, None]
    onehot = np.stack([(labels == c) for c in range(num_classes)], 1).astype(np.float64) * valid
    bce = (np.maximum(z, 0) - z * onehot + np.log1p(np.exp(-np.abs(z)))) * valid
    bce_part = bce.sum() / (valid.sum() + 1.0)
    probs = 1.0 / (1.0 + np.exp(-z)) * valid + 1e-6
    y, p = np_pool(onehot, stride, pool), np_pool(probs, stride, pool)
    n, c, h, w = y.shape
    d = radius * radius
    terms = np.zeros((n, c))
    for b in range(n):
        for k in range(c):
            ys, ps = [], []
            for i in range(h - radius + 1):
                for j in range(w - radius + 1):
                    ys.append(y[b, k, i : i + radius, j : j + radius].reshape(-1))
                    ps.append(p[b, k, i : i + radius, j : j + radius].reshape(-1))
            yv, pv = np.array(ys), np.array(ps)  # (positions, d)
            yv, pv = yv - yv.mean(0), pv - pv.mean(0)
            s_y, s_p, s_yp = yv.T @ yv, pv.T @ pv, yv.T @ pv
            m = s_y - s_yp @ np.linalg.inv(s_p + ALPHA * np.eye(d)) @ s_yp.T
            chol = np.linalg.cholesky(m + ALPHA * np.eye(d))
            terms[b, k] = 0.5 * 2.0 * np.log(np.diag(chol) + 1e-8).sum()
    per_class = terms.mean(0) / d
    rmi_part = per_class.sum() if reduction == "sum" else per_class.mean()
    return lam * bce_part + (1 - lam) * rmi_part, bce_part, rmi_part


def _inputs(n=2, c=4, h=29, w=34, seed=0, ignore=0.15):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, (n, (h + 7) // 8, (w + 7) // 8), generator=g)
    labels = labels.repeat_interleave(8, 1).repeat_interleave(8, 2)[:, :h, :w].clone()
    labels[torch.rand(n, h, w, generator=g) < ignore] = 255
    logits = 2.0 * torch.randn(n, c, h, w, generator=g)
    return logits, labels


# ----------------------------------------------------------------------------------------------
def test_hand_computed_one_class_four_positions():
    """C = 1, R = 1 (d = 1), no pooling: four positions, one ignored; every sum written out."""
    z = [[0.0, 1.0], [2.0, -1.0]]
    labels = torch.tensor([[[0, 255], [0, 0]]])
    loss = RMILoss(1, radius=1, pool="avg", pool_stride=1)
    got = loss.forward_parts(torch.tensor([[z]], dtype=torch.float64), labels)

    sig = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731
    # valid: (0,0), (1,0), (1,1); label 1 (one-hot of class 0) there, 0 at the ignored pixel
    y = [1.0, 0.0, 1.0, 1.0]
    p = [sig(0.0) + 1e-6, 1e-6, sig(2.0) + 1e-6, sig(-1.0) + 1e-6]
    bce = (-math.log(sig(0.0)) - math.log(sig(2.0)) - math.log(sig(-1.0))) / (3 + 1)
    ym, pm = sum(y) / 4, sum(p) / 4
    s_y = sum((a - ym) ** 2 for a in y)  # = 0.75
    s_p = sum((b - pm) ** 2 for b in p)
    s_yp = sum((a - ym) * (b - pm) for a, b in zip(y, p))
    m = s_y - s_yp * s_yp / (s_p + ALPHA)
    rmi = 0.5 * 2.0 * math.log(math.sqrt(m + ALPHA) + 1e-8)  # / d = 1, one class
    assert s_y == pytest.approx(0.75)
    assert float(got["bce"]) == pytest.approx(bce, rel=1e-6)
    assert float(got["rmi"]) == pytest.approx(rmi, rel=1e-5)
    assert float(got["total"]) == pytest.approx(0.5 * bce + 0.5 * rmi, rel=1e-5)


def test_hand_computed_two_dimensional_vectors():
    """C = 1, R = 2 on a 2 x 3 map (no pooling): two positions give the 4-vectors w1, w2 (labels)
    and q1, q2 (probabilities). Centred they are +-u and +-v with u = (w1 - w2) / 2 and
    v = (q1 - q2) / 2, so S_Y = 2uu^T, S_P = 2vv^T, S_YP = 2uv^T, and since
    (2vv^T + aI)^-1 v = v / (2|v|^2 + a):  M = 2a / (2|v|^2 + a) * uu^T, whose one non-zero
    eigenvalue is lam = 2a|u|^2 / (2|v|^2 + a); det(M + aI) = a^3 (a + lam)."""
    z = torch.tensor([[[[0.5, -1.0, 2.0], [1.5, 0.0, -2.0]]]], dtype=torch.float64)
    labels = torch.tensor([[[0, 255, 0], [255, 0, 0]]])
    got = float(RMILoss(1, radius=2, pool="avg", pool_stride=1).forward_parts(z, labels)["rmi"])
    y = (labels[0] != 255).double()
    p = torch.sigmoid(z[0, 0]) * y + 1e-6
    w1, w2 = y[:, 0:2].reshape(-1), y[:, 1:3].reshape(-1)
    q1, q2 = p[:, 0:2].reshape(-1), p[:, 1:3].reshape(-1)
    u2 = float((((w1 - w2) / 2) ** 2).sum())
    v2 = float((((q1 - q2) / 2) ** 2).sum())
    lam = 2 * ALPHA * u2 / (2 * v2 + ALPHA)
    logdet = 3 * math.log(ALPHA) + math.log(ALPHA + lam)
    # 0.5 log det / d, d = 4 (the +1e-8 on the Cholesky diagonal is below the tolerance here)
    assert got == pytest.approx(0.5 * logdet / 4, rel=1e-5)


@pytest.mark.parametrize(
    "pool,stride,radius,reduction",
    [
        ("avg", 4, 3, "sum"),
        ("max", 3, 3, "sum"),
        ("avg", 2, 2, "mean"),
        ("max", 1, 2, "sum"),
        ("avg", 3, 1, "sum"),
    ],
)
def test_equals_independent_numpy_reference(pool, stride, radius, reduction):
    logits, labels = _inputs()
    loss = RMILoss(4, radius=radius, pool=pool, pool_stride=stride, class_reduction=reduction)
    got = loss.forward_parts(logits, labels)
    ref, ref_bce, ref_rmi = np_rmi_total(
        logits.numpy(),
        labels.numpy(),
        4,
        radius=radius,
        pool=pool,
        stride=stride,
        reduction=reduction,
    )
    assert float(got["bce"]) == pytest.approx(ref_bce, rel=1e-5)
    assert float(got["rmi"]) == pytest.approx(ref_rmi, rel=1e-4)
    assert float(got["total"]) == pytest.approx(ref, rel=1e-4)


def test_nvidia_defaults_and_lambda():
    loss = RMILoss(7)
    assert (loss.pool, loss.pool_stride, loss.radius, loss.lambda_weight, loss.class_reduction) == (
        "avg",
        4,
        3,
        0.5,
        "sum",
    )
    logits, labels = _inputs(c=7, h=40, w=40, seed=3)
    parts = RMILoss(7, lambda_weight=0.3).forward_parts(logits, labels)
    assert float(parts["total"]) == pytest.approx(
        0.3 * float(parts["bce"]) + 0.7 * float(parts["rmi"]), rel=1e-6
    )
    # sum over classes = C x mean over classes
    s = float(RMILoss(7, class_reduction="sum").forward_parts(logits, labels)["rmi"])
    m = float(RMILoss(7, class_reduction="mean").forward_parts(logits, labels)["rmi"])
    assert s == pytest.approx(7 * m, rel=1e-6)


def test_float32_and_float64_agree():
    logits, labels = _inputs(seed=5)
    loss = RMILoss(4, pool="avg", pool_stride=2)
    v32 = loss(logits.float(), labels)
    v64 = loss(logits.double(), labels)
    assert v32.dtype == torch.float32 and v64.dtype == torch.float64
    assert float(v32) == pytest.approx(float(v64), rel=1e-5)


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_gradcheck_float64(pool):
    g = torch.Generator().manual_seed(1)
    labels = torch.tensor(
        [
            [
                [0, 1, 1, 0, 2, 2],
                [0, 1, 255, 0, 2, 1],
                [2, 2, 1, 0, 0, 1],
                [1, 0, 0, 2, 255, 1],
                [0, 0, 1, 2, 2, 1],
            ]
        ]
    )
    z = torch.randn(1, 3, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    loss = RMILoss(3, radius=2, pool=pool, pool_stride=2)
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (z,), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_gradient_matches_numpy_finite_differences():
    """The gradient at the NVIDIA setting equals central differences of the numpy reference."""
    logits, labels = _inputs(n=1, c=3, h=24, w=24, seed=7)
    x = logits.double().requires_grad_(True)
    RMILoss(3)(x, labels).backward()
    z = logits.double().numpy()
    rng = np.random.default_rng(0)
    for _ in range(5):
        idx = tuple(int(rng.integers(0, s)) for s in z.shape)
        zp, zm = z.copy(), z.copy()
        zp[idx] += 1e-5
        zm[idx] -= 1e-5
        fd = (
            np_rmi_total(zp, labels.numpy(), 3)[0] - np_rmi_total(zm, labels.numpy(), 3)[0]
        ) / 2e-5
        assert float(x.grad[idx]) == pytest.approx(fd, rel=1e-3, abs=1e-6)


def test_all_ignore_and_absent_classes_are_finite():
    c = 5
    loss = RMILoss(c)
    logits = torch.randn(1, c, 32, 32, requires_grad=True)
    parts = loss.forward_parts(logits, torch.full((1, 32, 32), 255))
    # nothing valid: BCE 0; Y = 0 and P constant, so M = 0 and each class gives log(sqrt(a) + 1e-8)
    assert float(parts["bce"].detach()) == 0.0
    assert float(parts["rmi"].detach()) == pytest.approx(
        c * math.log(math.sqrt(ALPHA) + 1e-8), rel=1e-6
    )
    parts["total"].backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().max() == 0
    # only class 0 present: finite value and gradient
    logits.grad = None
    v = loss(logits, torch.zeros(1, 32, 32, dtype=torch.long))
    v.backward()
    assert torch.isfinite(v) and torch.isfinite(logits.grad).all()


def test_ignored_pixels_carry_no_gradient_and_do_not_change_the_loss():
    logits, labels = _inputs(seed=2)
    labels[:, :3] = 255
    x = logits.clone().requires_grad_(True)
    loss = RMILoss(4, pool_stride=2)
    v = loss(x, labels)
    v.backward()
    assert x.grad[:, :, :3].abs().max() == 0 and x.grad.abs().sum() > 0
    other = logits.clone()
    other[:, :, :3] = 40 * torch.randn_like(other[:, :, :3])
    assert float(loss(other, labels)) == pytest.approx(float(v), rel=1e-6)


def test_map_smaller_than_one_window_gives_zero_rmi_part():
    loss = RMILoss(3)  # 6x6 pooled by 4 (padding 2) -> 2x2 < 3x3
    logits = torch.randn(1, 3, 6, 6, requires_grad=True)
    parts = loss.forward_parts(logits, torch.randint(0, 3, (1, 6, 6)))
    assert float(parts["rmi"]) == 0.0 and torch.isfinite(parts["total"])
    parts["total"].backward()
    assert torch.isfinite(logits.grad).all()


def test_cholesky_failure_falls_back_to_clamped_eigenvalues():
    good = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    bad = torch.tensor([[1.0, 0.0], [0.0, -3.0]], dtype=torch.float64)  # not positive definite
    mats = torch.stack([good, bad, good]).requires_grad_(True)
    with pytest.warns(RuntimeWarning, match="Cholesky factorisation failed for 1 of 3"):
        out = log_det_by_cholesky(mats, floor=ALPHA)
    chol = np.linalg.cholesky(good.numpy())
    expected_good = 2 * np.log(np.diag(chol) + 1e-8).sum()
    assert out[0].item() == pytest.approx(expected_good, rel=1e-12)
    assert out[2].item() == pytest.approx(expected_good, rel=1e-12)
    assert out[1].item() == pytest.approx(math.log(1.0) + math.log(ALPHA), rel=1e-12)
    out.sum().backward()
    assert torch.isfinite(mats.grad).all()
    # positive-definite input: no warning, plain Cholesky formula
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert log_det_by_cholesky(good, ALPHA).item() == pytest.approx(expected_good)


def test_bfloat16_autocast_runs_in_float32():
    logits, labels = _inputs(seed=4)
    loss = RMILoss(4, pool_stride=2)
    ref = loss(logits, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss(logits, labels)
        half = loss(logits.bfloat16(), labels)
    assert got.dtype == torch.float32 and float(got) == pytest.approx(float(ref), rel=1e-6)
    assert torch.isfinite(half)


def test_binary_cross_entropy_alone_is_the_bce_part():
    logits, labels = _inputs(seed=6)
    loss = RMILoss(4)
    assert float(loss.binary_cross_entropy(logits, labels)) == pytest.approx(
        float(loss.forward_parts(logits, labels)["bce"]), rel=1e-7
    )
    # resized logits: the BCE part is taken at the labels' size
    small = logits[..., ::2, ::2]
    assert torch.isfinite(loss.binary_cross_entropy(small, labels))


def test_bad_arguments_and_labels_name_the_problem():
    with pytest.raises(ValueError, match="pool must be one of"):
        RMILoss(3, pool="none")
    with pytest.raises(ValueError, match="class_reduction"):
        RMILoss(3, class_reduction="max")
    with pytest.raises(ValueError, match="radius"):
        RMILoss(3, radius=0)
    with pytest.raises(
        ValueError, match=r"labels must be in \[0, 3\) or the ignore value 255; found \[7\]"
    ):
        RMILoss(3)(torch.randn(1, 3, 16, 16), torch.full((1, 16, 16), 7))
    with pytest.raises(ValueError, match="3 classes got logits with 4 channels"):
        RMILoss(3)(torch.randn(1, 4, 16, 16), torch.zeros(1, 16, 16, dtype=torch.long))
