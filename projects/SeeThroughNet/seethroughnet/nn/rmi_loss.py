"""Region Mutual Information loss (Zhao, Wang, Cai, He, "Region Mutual Information Loss for Semantic
Segmentation", NeurIPS 2019), the main loss of SeeThroughNet (Eq. 5: "following [54]", RMI with
lambda = 0.5 on the final, scale-merged output).

The paper says "following [54]", so the reference code of [54] is the specification: the value and
the gradient of :class:`RMILoss` equal those of ``losses/rmi/rmi.py`` + ``rmi_utils.py`` in
ZJULearning/RMI (``forward_sigmoid``) and of ``loss/rmi.py`` in NVIDIA/semantic-segmentation (the
copy that SeeThroughNet's training recipe [41] uses), for the same settings. How this was checked
is in ``docs/seethroughnet_model.md`` (section "RMI, checked against its reference code").

What is computed, for logits ``z`` ``(N, C, H, W)`` and labels ``y`` ``(N, H, W)``:

1. ``valid = y != ignore``; ``Y`` = one-hot(``y``) with ignored pixels set to 0 in every channel.
2. **BCE part**: per-class sigmoid binary cross-entropy of ``z`` against ``Y`` over all ``C``
   channels, summed over valid pixels and channels and divided by ``(#valid pixels + 1)``.
3. **Probabilities** ``P = sigmoid(z) * valid + 1e-6``.
4. ``Y`` and ``P`` are **pooled** with kernel = stride = ``pool_stride`` and padding
   ``pool_stride // 2`` (max pooling, or average pooling counting the zero padding).
5. For every class, every position whose ``R x R`` window fits in the pooled map gives a pair of
   ``d = R^2``-vectors (label, probability). In float64 and after centring (subtracting the mean
   over positions), the **unnormalised** covariances ``S_Y = Y Y^T``, ``S_P = P P^T``,
   ``S_YP = Y P^T`` give the conditional covariance (RMI Eq. 13)

       M = S_Y - S_YP (S_P + a I)^-1 S_YP^T,         a = 5e-4,

   and the per-(image, class) term ``0.5 * log det(M + a I)``, evaluated by Cholesky as
   ``2 * sum(log(diag(L) + 1e-8))``.
6. **RMI part**: mean over the batch, divided by ``d``, summed (RMI Eq. 16, both references) or
   averaged over classes.
7. **Total** ``= lambda * BCE + (1 - lambda) * RMI`` with ``lambda = 0.5``.

Because the covariances are not divided by the number of positions, the RMI part grows with the
image size by ``0.5 * log(#positions)`` per class and is negative for small or trivial inputs
(e.g. ``0.5 * log(a)`` per class when everything is ignored); this is the reference's loss.

Where this module goes beyond the references (none of it changes a value the references compute):

* the computation runs in float32 (float64 inputs stay float64) with autocast disabled, so mixed
  precision never reaches the log-det;
* a matrix whose Cholesky factorisation fails (the reference would raise) falls back to the
  eigenvalues of its symmetric part, clamped at ``a`` (the smallest eigenvalue ``M + a I`` has in
  exact arithmetic, ``M`` being a Schur complement of a positive semi-definite matrix), with a
  warning;
* a pooled map smaller than ``R x R`` (no window fits; the reference divides by zero) gives an RMI
  part of 0;
* labels other than ``0..C-1`` and ``ignore_value`` are an error (the reference treats any label
  ``>= C`` as ignored).
"""

from __future__ import annotations

import warnings
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RMILoss", "log_det_by_cholesky", "POOL_MODES", "CLASS_REDUCTIONS"]

#: ``pool`` choices (RMI reference: ``rmi_pool_way`` 0 = max, 1 = avg).
POOL_MODES = ("avg", "max")
#: ``class_reduction`` choices (both references sum, ``_IS_SUM = 1``).
CLASS_REDUCTIONS = ("sum", "mean")

_PROB_FLOOR = 1e-6  # added to the masked probabilities (the references' _CLIP_MIN)
# added to the Cholesky diagonal before the log (the references' log_det_by_cholesky)
_LOG_EPS = 1e-8


def log_det_by_cholesky(matrices: torch.Tensor, floor: float) -> torch.Tensor:
    """``log det`` of a batch of symmetric positive-definite ``(..., d, d)`` matrices as
    ``2 * sum(log(diag(cholesky) + 1e-8))`` (the RMI reference's formula).

    Matrices whose Cholesky factorisation fails (not positive definite in floating point) are
    evaluated from the eigenvalues of their symmetric part clamped at ``floor``, with a warning.
    """
    chol, info = torch.linalg.cholesky_ex(matrices)
    failed = info != 0
    if not bool(failed.any()):
        return 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1) + _LOG_EPS).sum(-1)
    # Factorise the good matrices only (identity in place of the failed ones, so that neither the
    # value nor the gradient of the result sees the failed factorisation).
    eye = torch.eye(matrices.shape[-1], dtype=matrices.dtype, device=matrices.device)
    mask = failed[..., None, None]
    good = torch.linalg.cholesky(torch.where(mask, eye, matrices))
    out = 2.0 * torch.log(torch.diagonal(good, dim1=-2, dim2=-1) + _LOG_EPS).sum(-1)
    bad = matrices[failed]
    bad = 0.5 * (bad + bad.transpose(-1, -2))
    if bool(torch.isfinite(bad).all()):
        fallback = torch.log(torch.linalg.eigvalsh(bad).clamp_min(floor)).sum(-1)
    else:  # non-finite inputs: let the caller's non-finite-loss check name the term
        fallback = bad.new_full(bad.shape[:-2], float("nan"))
    warnings.warn(
        f"RMI: Cholesky factorisation failed for {int(failed.sum())} of {failed.numel()} "
        f"matrices; their log-det uses eigenvalues clamped at {floor:g}",
        RuntimeWarning,
        stacklevel=3,
    )
    return out.masked_scatter(failed, fallback.to(out.dtype))


class RMILoss(nn.Module):
    """``lambda * BCE + (1 - lambda) * RMI`` (RMI paper Eq. 16; SeeThroughNet Eq. 5), as the RMI
    reference code computes it (see the module docstring).

    Args:
        num_classes: ``C``.
        radius: side ``R`` of the square neighbourhood (3; the references accept 1..10).
        pool: ``"avg"`` (NVIDIA/semantic-segmentation, SeeThroughNet's recipe [41]) or ``"max"``
            (ZJULearning/RMI's default).
        pool_stride: pooling kernel = stride (4 in NVIDIA's recipe, 3 in ZJU's); 1 = no pooling.
        lambda_weight: ``lambda`` between the BCE and the RMI parts (0.5).
        class_reduction: ``"sum"`` (RMI Eq. 16 and both references) or ``"mean"`` over classes.
        ignore_value: label of ignored pixels (255).
        pos_alpha: ``a`` = 5e-4, added before the inverse and the log-det (references' _POS_ALPHA).

    ``RMILoss(C)`` is NVIDIA's setting; ``RMILoss(C, pool="max", pool_stride=3)`` is ZJU's.
    """

    def __init__(
        self,
        num_classes: int,
        radius: int = 3,
        pool: str = "avg",
        pool_stride: int = 4,
        lambda_weight: float = 0.5,
        class_reduction: str = "sum",
        ignore_value: int = 255,
        pos_alpha: float = 5e-4,
    ):
        super().__init__()
        if pool not in POOL_MODES:
            raise ValueError(f"RMI pool must be one of {POOL_MODES}, got {pool!r}")
        if class_reduction not in CLASS_REDUCTIONS:
            raise ValueError(
                f"RMI class_reduction must be one of {CLASS_REDUCTIONS}, got {class_reduction!r}"
            )
        if not 1 <= int(radius) <= 10:
            raise ValueError(f"RMI radius must be in 1..10 (as in the reference), got {radius}")
        if int(pool_stride) < 1:
            raise ValueError(f"RMI pool_stride must be >= 1, got {pool_stride}")
        if not 0.0 <= float(lambda_weight) <= 1.0:
            raise ValueError(f"RMI lambda_weight must be in [0, 1], got {lambda_weight}")
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.radius = int(radius)
        self.pool = pool
        self.pool_stride = int(pool_stride)
        self.lambda_weight = float(lambda_weight)
        self.class_reduction = class_reduction
        self.ignore_value = ignore_value
        self.pos_alpha = float(pos_alpha)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, radius={self.radius}, pool={self.pool!r}, "
            f"pool_stride={self.pool_stride}, lambda_weight={self.lambda_weight}, "
            f"class_reduction={self.class_reduction!r}"
        )

    # ------------------------------------------------------------------------------------------
    def _prepare(self, logits: torch.Tensor, labels: torch.Tensor):
        """Logits in float32 (float64 kept) at the labels' size; the valid mask and masked
        one-hot."""
        if logits.dim() != 4 or labels.dim() != 3 or logits.shape[0] != labels.shape[0]:
            raise ValueError(
                f"RMI needs logits (N, C, h, w) and labels (N, H, W), got {tuple(logits.shape)} "
                f"and {tuple(labels.shape)}"
            )
        if logits.shape[1] != self.num_classes:
            raise ValueError(
                f"RMI built for {self.num_classes} classes got logits with {logits.shape[1]} "
                "channels"
            )
        if logits.dtype != torch.float64:
            logits = logits.float()
        if logits.shape[-2:] != labels.shape[-2:]:
            logits = F.interpolate(
                logits, size=labels.shape[-2:], mode="bilinear", align_corners=False
            )
        labels = labels.long()
        valid = labels != self.ignore_value
        bad = valid & ((labels < 0) | (labels >= self.num_classes))
        if bool(bad.any()):
            raise ValueError(
                f"RMI: labels must be in [0, {self.num_classes}) or the ignore value "
                f"{self.ignore_value}; found {sorted(set(labels[bad].unique().tolist()))[:10]}"
            )
        valid_f = valid.to(logits.dtype).unsqueeze(1)  # (N, 1, H, W)
        onehot = (
            F.one_hot(labels.masked_fill(~valid, 0), self.num_classes)
            .permute(0, 3, 1, 2)
            .to(logits.dtype)
        )
        return logits, valid_f, onehot * valid_f

    def binary_cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The BCE part alone (the references' ``forward(..., do_rmi=False)``, which [41] uses for
        its per-scale losses): sigmoid BCE over all classes, summed over valid pixels, divided by
        ``(#valid pixels + 1)``."""
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits, valid, onehot = self._prepare(logits, labels)
            return self._bce(logits, valid, onehot)

    @staticmethod
    def _bce(logits, valid, onehot):
        per_pixel = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none") * valid
        return per_pixel.sum() / (valid.sum() + 1.0)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        s = self.pool_stride
        if s == 1:
            return x
        if self.pool == "max":
            return F.max_pool2d(x, kernel_size=s, stride=s, padding=s // 2)
        return F.avg_pool2d(x, kernel_size=s, stride=s, padding=s // 2, count_include_pad=True)

    def _windows(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, h, w)`` -> ``(N, C, R*R, (h-R+1)*(w-R+1))``: the ``R x R`` neighbourhood of
        every position where it fits, offsets in row-major order."""
        r = self.radius
        h, w = x.shape[-2] - r + 1, x.shape[-1] - r + 1
        return torch.stack(
            [x[..., i : i + h, j : j + w].flatten(2) for i in range(r) for j in range(r)], dim=2
        )

    def rmi_lower_bound(self, onehot: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """The RMI part from the masked one-hot labels and the masked probabilities (steps 4-6)."""
        y, p = self._pool(onehot), self._pool(probs)
        if y.shape[-2] < self.radius or y.shape[-1] < self.radius:
            return probs.sum() * 0.0  # no R x R window fits in the pooled map
        y = self._windows(y).double()
        p = self._windows(p).double()
        y = y - y.mean(-1, keepdim=True)
        p = p - p.mean(-1, keepdim=True)
        d = y.shape[-2]
        reg = self.pos_alpha * torch.eye(d, dtype=y.dtype, device=y.device)
        s_y = y @ y.transpose(-1, -2)
        s_p = p @ p.transpose(-1, -2)
        s_yp = y @ p.transpose(-1, -2)
        cond = s_y - s_yp @ torch.linalg.solve(s_p + reg, s_yp.transpose(-1, -2))
        per_image_class = 0.5 * log_det_by_cholesky(cond + reg, self.pos_alpha)  # (N, C)
        per_class = per_image_class.mean(0) / d
        out = per_class.sum() if self.class_reduction == "sum" else per_class.mean()
        return out.to(probs.dtype)

    def forward_parts(self, logits: torch.Tensor, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``{"bce": ..., "rmi": ..., "total": lambda * bce + (1 - lambda) * rmi}``.

        ``logits``: ``(N, C, h, w)``, bilinearly resized to the labels' ``(H, W)`` if different;
        ``labels``: ``(N, H, W)`` integer map with ``ignore_value`` for ignored pixels.
        """
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits, valid, onehot = self._prepare(logits, labels)
            bce = self._bce(logits, valid, onehot)
            probs = torch.sigmoid(logits) * valid + _PROB_FLOOR
            rmi = self.rmi_lower_bound(onehot, probs)
            total = self.lambda_weight * bce + (1.0 - self.lambda_weight) * rmi
        return {"bce": bce, "rmi": rmi, "total": total}

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.forward_parts(logits, labels)["total"]
