"""Region Mutual Information loss (Zhao, Wang, Cai, He, "Region Mutual Information Loss for Semantic
Segmentation", NeurIPS 2019), the main loss of SeeThroughNet (Eq. 5: RMI with lambda = 0.5 on the
final, scale-merged output).

Every pixel is represented, per class ``c``, by the ``d = R x R`` values of its ``R x R``
neighbourhood (radius ``R = 3`` -> ``d = 9``) in the one-hot ground truth ``Y`` and in the predicted
probabilities ``P``. Treating the two ``d``-vectors as jointly Gaussian, the RMI paper (Eqs. 8-13)
lower-bounds ``I(Y; P)`` through the conditional covariance

    Sigma_{Y|P} = Sigma_Y - Sigma_{YP} (Sigma_P + a I)^{-1} Sigma_{YP}^T,
    I_l(Y; P) = const - 1/2 log det(Sigma_{Y|P} + a I),

and the total loss (RMI Eq. 16) is ``lambda * L_ce + (1 - lambda) * L_rmi`` with ``lambda = 0.5``.

Implementation choices (documented in ``docs/seethroughnet_model.md``):

* **Down-sampling** before building the neighbourhoods: pooling with kernel = stride = 4 (``"avg"``
  default, ``"max"`` or ``"none"``), applied to both the (masked) one-hot labels and the
  probabilities, as the RMI reference code does to save memory and widen the region.
* **Probabilities**: ``"bce"`` mode (default, as in the RMI paper/reference) uses per-class sigmoid
  probabilities and a per-class binary cross-entropy part (summed over classes, averaged over valid
  pixels); ``"ce"`` mode uses softmax probabilities and a softmax cross-entropy part.
* **Ignore label**: ignored pixels are zeroed in *both* the one-hot labels and the probabilities
  (so they agree there and carry no mutual-information signal) and excluded from the CE part.
* **Covariances** are proper (divided by the number of neighbourhood samples) so the loss does not
  scale with image size, and are computed in float64; ``a = 5e-4`` regularises both inverse and
  log-det. The log-det goes through a Cholesky factorisation (``cholesky_ex`` with increasing jitter
  as fallback).
* **Offset**: ``L_rmi = 1/(2d) * log det(I + Sigma_{Y|P} / a)`` per class, i.e. the reference's
  ``1/(2d) log det(Sigma_{Y|P} + a I)`` shifted by the constant ``-1/2 log a``. The gradient is
  unchanged and the term is >= 0. (For a perfect prediction the regularised Schur complement
  still has eigenvalues ``lambda a / (lambda + a) ~ a``, so the term bottoms out near
  ``1/2 log 2`` per present class rather than at 0; only the CE part reaches 0.) Classes are averaged
  (``class_reduction="mean"``, the reference default) or summed (``"sum"``, RMI Eq. 16).
"""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RMILoss"]


def _logdet_pd(m: torch.Tensor) -> torch.Tensor:
    """log det of a batch of symmetric positive-definite matrices (Cholesky, jitter on failure)."""
    eye = torch.eye(m.shape[-1], dtype=m.dtype, device=m.device)
    jitter = 0.0
    for _ in range(6):
        chol, info = torch.linalg.cholesky_ex(m + jitter * eye)
        if not bool((info != 0).any()):
            return 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        jitter = 1e-10 if jitter == 0.0 else jitter * 100.0
    return torch.linalg.slogdet(m + jitter * eye)[1]


class RMILoss(nn.Module):
    """``lambda * CE + (1 - lambda) * RMI`` (RMI paper Eq. 16; SeeThroughNet Eq. 5).

    Args:
        num_classes: ``K``.
        radius: neighbourhood side ``R`` (3).
        pool: ``"avg"``, ``"max"`` or ``"none"``: down-sampling before the neighbourhoods.
        pool_stride: pooling kernel and stride (4).
        lambda_weight: ``lambda`` (0.5).
        ce_mode: ``"bce"`` (sigmoid probabilities + binary CE, reference) or ``"ce"``
            (softmax probabilities + softmax CE).
        class_reduction: ``"mean"`` or ``"sum"`` of the per-class RMI terms.
        ignore_value: label of ignored pixels.
        pos_alpha: ``a``, the diagonal added before the inverse and the log-det.
    """

    def __init__(
        self,
        num_classes: int = 19,
        radius: int = 3,
        pool: str = "avg",
        pool_stride: int = 4,
        lambda_weight: float = 0.5,
        ce_mode: str = "bce",
        class_reduction: str = "mean",
        ignore_value: int = 255,
        pos_alpha: float = 5e-4,
    ):
        super().__init__()
        if pool not in ("avg", "max", "none"):
            raise ValueError(f"pool must be 'avg', 'max' or 'none', got {pool!r}")
        if ce_mode not in ("bce", "ce"):
            raise ValueError(f"ce_mode must be 'bce' or 'ce', got {ce_mode!r}")
        if class_reduction not in ("mean", "sum"):
            raise ValueError(f"class_reduction must be 'mean' or 'sum', got {class_reduction!r}")
        if radius < 1 or pool_stride < 1 or not 0.0 <= lambda_weight <= 1.0:
            raise ValueError("need radius >= 1, pool_stride >= 1 and 0 <= lambda_weight <= 1")
        self.num_classes = num_classes
        self.radius = radius
        self.pool = pool
        self.pool_stride = pool_stride
        self.lambda_weight = lambda_weight
        self.ce_mode = ce_mode
        self.class_reduction = class_reduction
        self.ignore_value = ignore_value
        self.pos_alpha = pos_alpha

    # ------------------------------------------------------------------------------------------
    def _ce_part(self, logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, onehot: torch.Tensor):
        n_valid = valid.sum().clamp_min(1.0)
        if self.ce_mode == "ce":
            ce = F.cross_entropy(logits, labels.masked_fill(valid == 0, 0), reduction="none")
            return (ce * valid).sum() / n_valid
        bce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none").sum(1)
        return (bce * valid).sum() / n_valid

    def _downsample(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool == "none" or self.pool_stride == 1:
            return x
        s = self.pool_stride
        if self.pool == "max":
            return F.max_pool2d(x, kernel_size=s, stride=s)
        return F.avg_pool2d(x, kernel_size=s, stride=s)

    def _neighbourhoods(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, K, H, W)`` -> ``(N, K, R*R, (H-R+1)*(W-R+1))``."""
        r = self.radius
        h, w = x.shape[-2] - r + 1, x.shape[-1] - r + 1
        parts = [x[..., i:i + h, j:j + w].flatten(2) for i in range(r) for j in range(r)]
        return torch.stack(parts, dim=2)

    def rmi_part(self, probs: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """Mean over the batch, mean/sum over classes of ``1/(2d) log det(I + Sigma_{Y|P}/a)``."""
        y = self._downsample(onehot)
        p = self._downsample(probs)
        r = self.radius
        if y.shape[-2] < r or y.shape[-1] < r:
            return probs.sum() * 0.0  # too small for one neighbourhood
        y = self._neighbourhoods(y).double()
        p = self._neighbourhoods(p).double()
        d, n = y.shape[-2], y.shape[-1]
        y = y - y.mean(-1, keepdim=True)
        p = p - p.mean(-1, keepdim=True)
        eye = torch.eye(d, dtype=y.dtype, device=y.device)
        cov_y = y @ y.transpose(-1, -2) / n
        cov_p = p @ p.transpose(-1, -2) / n
        cov_yp = y @ p.transpose(-1, -2) / n
        cond = cov_y - cov_yp @ torch.linalg.solve(cov_p + self.pos_alpha * eye, cov_yp.transpose(-1, -2))
        cond = 0.5 * (cond + cond.transpose(-1, -2))
        logdet = _logdet_pd(eye + cond / self.pos_alpha)  # (N, K)
        per_class = (0.5 / d) * logdet.mean(0)
        out = per_class.mean() if self.class_reduction == "mean" else per_class.sum()
        return out.to(probs.dtype)

    def forward_parts(self, logits: torch.Tensor, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``{"ce": ..., "rmi": ..., "total": lambda*ce + (1-lambda)*rmi}``.

        ``logits``: ``(N, K, h, w)``, bilinearly resized to the labels' ``(H, W)`` if different;
        ``labels``: ``(N, H, W)`` integer map with ``ignore_value`` for ignored pixels.
        """
        if logits.shape[-2:] != labels.shape[-2:]:
            logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
        logits = logits.float()
        labels = labels.long()
        valid = (labels != self.ignore_value).to(logits.dtype)  # (N, H, W)
        safe = labels.masked_fill(labels == self.ignore_value, 0)
        if bool(((safe < 0) | (safe >= self.num_classes)).any()):
            raise ValueError(f"labels must be in [0, {self.num_classes}) or {self.ignore_value}")
        onehot = F.one_hot(safe, self.num_classes).permute(0, 3, 1, 2).to(logits.dtype)
        onehot = onehot * valid.unsqueeze(1)
        ce = self._ce_part(logits, labels, valid, onehot)
        probs = torch.sigmoid(logits) if self.ce_mode == "bce" else F.softmax(logits, dim=1)
        probs = probs * valid.unsqueeze(1)
        rmi = self.rmi_part(probs, onehot)
        total = self.lambda_weight * ce + (1.0 - self.lambda_weight) * rmi
        return {"ce": ce, "rmi": rmi, "total": total}

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.forward_parts(logits, labels)["total"]
