"""Auxiliary-head losses: the CPP + KL loss of SeeThroughNet and the baselines it is compared with.

SeeThroughNet (Han, Yoo, Oh, CVPR 2022), Section 3.1, Eq. 2: an auxiliary head at output stride
``s`` predicts ``p = softmax(logits)`` on an ``h x w`` grid and is trained against the CPP target
``q`` of the same grid (Eq. 1, :func:`seethroughnet.nn.cpp.cpp_targets`) with a KL divergence
averaged over the grid:

.. math::

    \\mathcal{L}_{aux} = \\frac{1}{HW} \\sum_{i,j} D_{KL}\\big(p(i,j) \\,\\|\\, q(i,j)\\big).

Three kinds, behind one interface (:class:`AuxiliaryLoss`, switched by ``kind``):

* ``"upsample_ce"`` -- the paper's *Baseline* (MMSegmentation's auxiliary loss): the logits are
  up-sampled bilinearly to the label size and trained with pixel-wise cross-entropy.
* ``"nearest_ce"`` -- the labels are down-sampled to the logits' size by nearest-neighbour
  sampling and the logits trained with cross-entropy.
* ``"cpp_kl"`` -- CPP targets + KL divergence (Eq. 2).

The two cross-entropy kinds and :func:`resized_cross_entropy` (the decode heads' loss) average in
one of two ways (``average``, one of :data:`CE_AVERAGES`):

* ``"non_ignored"`` (default): the sum over pixels divided by the number of non-ignored pixels
  (PyTorch's ``F.cross_entropy(ignore_index=...)``).
* ``"all_pixels"``: the same sum divided by the number of ALL label pixels, ignored ones and crop
  padding included -- MMSegmentation's ``CrossEntropyLoss`` with its default
  ``avg_non_ignore=False`` (mmseg/models/losses/cross_entropy_loss.py: ``avg_factor =
  label.numel()``), as its decode and auxiliary heads use it on logits resized to the label size
  (mmseg/models/decode_heads/decode_head.py ``loss_by_feat``).

The CPP KL loss keeps Eq. 2's normalisation (``ignore_mode``); ``average`` does not apply to it.

Choices made for ``cpp_kl`` (see ``docs/cpp_pooling.md``):

* **Direction** (``kl_direction``). Eq. 2 as printed is ``D_KL(p || q) = sum_c p_c log(p_c / q_c)``
  with ``p`` the prediction, which is infinite wherever a class is absent from a cell
  (``q_c = 0 < p_c``) -- i.e. almost everywhere. The default, ``"target_to_prediction"``, is the
  finite ``KL(q || p) = sum_c q_c (log q_c - log p_c)`` with ``0 log 0 = 0``: cross-entropy
  against the soft target minus the target's entropy, whose gradient w.r.t. the logits is
  ``p - q``; with one-hot targets (``s = 1``) it equals the usual cross-entropy.
  ``"prediction_to_target"`` keeps the printed direction with the target smoothed as
  ``q_eps = (q + eps) / (1 + K eps)`` so that it stays finite.
* **Ignore** (``ignore_mode``). The target has ``K + 1`` channels (the last one is the ignored
  fraction), the prediction ``K``. With ``v = sum_{c<K} q_c`` the valid fraction of a cell:

  - ``"renormalize"`` (default): drop the ignore channel, renormalise ``q_c / v``, weight every
    cell by ``v`` and divide by ``sum v`` over the batch. Without ignored pixels this is exactly
    the mean of Eq. 2 over cells and images; an all-ignore cell contributes 0; at ``s = 1`` it is
    ``F.cross_entropy(..., ignore_index=ignore_value)``.
  - ``"unweighted"``: as above but every cell with ``v > 0`` weighs 1 (mean over such cells).
  - ``"ignore_channel"``: the head predicts ``K + 1`` channels and is trained against the full
    ``K + 1``-channel target, mean over all cells (Eq. 2 read literally).

Every loss returns a finite 0 (still attached to the graph) when no pixel is valid.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .cpp import REMAINDER_POLICIES, cpp_targets, nearest_downsample, validate_labels

__all__ = [
    "resized_cross_entropy",
    "AUX_LOSS_KINDS",
    "CE_AVERAGES",
    "KL_DIRECTIONS",
    "IGNORE_MODES",
    "AuxiliaryLoss",
    "cpp_kl_loss",
    "cpp_kl_from_targets",
    "upsample_ce_loss",
    "nearest_ce_loss",
    "infer_scale",
]

#: ``kind`` choices of :class:`AuxiliaryLoss`.
AUX_LOSS_KINDS = ("upsample_ce", "nearest_ce", "cpp_kl")
#: ``average`` choices of the cross-entropy losses: PyTorch's mean over non-ignored pixels, or
#: MMSegmentation's mean over all label pixels (``CrossEntropyLoss(avg_non_ignore=False)``).
CE_AVERAGES = ("non_ignored", "all_pixels")
#: ``kl_direction`` choices: the finite default ``KL(q||p)`` and the literal Eq. 2 ``KL(p||q)``.
KL_DIRECTIONS = ("target_to_prediction", "prediction_to_target")
#: ``ignore_mode`` choices of the CPP KL loss.
IGNORE_MODES = ("renormalize", "unweighted", "ignore_channel")


def _choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(choices)}")


def infer_scale(
    pred_size: Tuple[int, int], label_size: Tuple[int, int], remainder: str = "pad"
) -> int:
    """The integer stride ``s`` that maps a ``label_size`` map onto a ``pred_size`` grid.

    ``"pad"``: the smallest ``s`` with ``ceil(H/s) = h`` and ``ceil(W/s) = w`` (``713 -> 90`` gives
    8); ``"crop"``/``"error"``: ``s = H // h`` with ``floor`` sizes (``"error"``: exact division).
    Raises ``ValueError`` if there is no such ``s``.
    """
    _choice("remainder policy", remainder, REMAINDER_POLICIES)
    (h, w), (H, W) = tuple(int(x) for x in pred_size), tuple(int(x) for x in label_size)
    msg = (
        f"logits size {h}x{w} is not an integer fraction of the label size {H}x{W} "
        f"(remainder={remainder!r})"
    )
    if h <= 0 or w <= 0 or h > H or w > W:
        raise ValueError(msg)
    if remainder == "pad":
        s = max(-(-H // h), -(-W // w))
        ok = -(-H // s) == h and -(-W // s) == w
    else:
        s = H // h
        ok = H // s == h and W // s == w
        if remainder == "error":
            ok = ok and H == s * h and W == s * w
    if not ok:
        raise ValueError(msg)
    return s


def _check_logits_labels(logits: Tensor, labels: Optional[Tensor]) -> None:
    if not isinstance(logits, Tensor) or logits.dim() != 4:
        raise ValueError(
            f"logits must have shape (N, K, h, w), got {getattr(logits, 'shape', logits)}"
        )
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point, got {logits.dtype}")
    if labels is not None:
        if not isinstance(labels, Tensor) or labels.dim() != 3:
            raise ValueError(
                f"labels must have shape (N, H, W), got {getattr(labels, 'shape', labels)}"
            )
        if labels.shape[0] != logits.shape[0]:
            raise ValueError(
                f"batch size of logits ({logits.shape[0]}) and labels ({labels.shape[0]}) differ"
            )


def _check_channels(logits: Tensor, expected: int, what: str) -> None:
    if logits.shape[1] != expected:
        raise ValueError(f"logits have {logits.shape[1]} channels, expected {expected} ({what})")


def _zero_like_graph(logits: Tensor) -> Tensor:
    # a finite 0 that keeps the autograd graph (and device/dtype) of the logits
    return logits.sum() * 0.0


def _masked_ce(
    logits: Tensor, labels: Tensor, ignore_value: int, average: str = "non_ignored"
) -> Tensor:
    """Pixel-wise cross-entropy (ignored pixels contribute 0) summed and divided by the number of
    non-ignored pixels (``average="non_ignored"``) or of all label pixels (``"all_pixels"``,
    MMSegmentation's ``avg_non_ignore=False``); a graph-attached 0 if no pixel is valid."""
    _choice("cross-entropy average", average, CE_AVERAGES)
    labels = labels.long()
    total = F.cross_entropy(logits.float(), labels, ignore_index=ignore_value, reduction="sum")
    count = (labels != ignore_value).sum()
    if int(count) == 0:
        return _zero_like_graph(logits)
    if average == "all_pixels":
        return total / labels.numel()
    return total / count


def resized_cross_entropy(
    logits: Tensor,
    labels: Tensor,
    ignore_value: int = 255,
    *,
    align_corners: bool = False,
    average: str = "non_ignored",
) -> Tensor:
    """Cross-entropy of ``logits`` bilinearly resized to the label size (no resize if the sizes
    match), averaged over non-ignored pixels (``average="non_ignored"``) or over all label pixels
    (``"all_pixels"``: MMSegmentation's decode-head loss, ``loss_by_feat`` with
    ``CrossEntropyLoss(avg_non_ignore=False)``); a graph-attached 0 if no pixel is valid. The main
    segmentation losses and the up-sampled auxiliary baseline all use it."""
    with torch.autocast(
        device_type=logits.device.type, enabled=False
    ):  # float32 under mixed precision
        logits = logits.float()
        if tuple(logits.shape[-2:]) != tuple(labels.shape[-2:]):
            logits = F.interpolate(
                logits, size=tuple(labels.shape[-2:]), mode="bilinear", align_corners=align_corners
            )
        return _masked_ce(logits, labels, ignore_value, average)


def upsample_ce_loss(
    logits: Tensor,
    labels: Tensor,
    num_classes: int,
    ignore_value: int = 255,
    *,
    align_corners: bool = False,
    remainder: str = "pad",
    average: str = "non_ignored",
) -> Tensor:
    """Baseline auxiliary loss (MMSegmentation's): bilinear up-sampling to ``(H, W)`` +
    cross-entropy.

    Mean of ``-log softmax(up(logits))[y]`` over non-ignored pixels (``average="non_ignored"``) or
    over all label pixels with 0 at the ignored ones (``"all_pixels"``: MMSegmentation's auxiliary
    FCN head, ``CrossEntropyLoss(avg_non_ignore=False)``).
    """
    _check_logits_labels(logits, labels)
    _check_channels(logits, num_classes, "one per class")
    infer_scale(logits.shape[-2:], labels.shape[-2:], remainder)
    validate_labels(labels, num_classes, ignore_value)
    return resized_cross_entropy(
        logits, labels, ignore_value, align_corners=align_corners, average=average
    )


def nearest_ce_loss(
    logits: Tensor,
    labels: Tensor,
    num_classes: int,
    ignore_value: int = 255,
    *,
    remainder: str = "pad",
    average: str = "non_ignored",
) -> Tensor:
    """Nearest-neighbour down-sampled labels + cross-entropy at the logits' resolution.

    The label of cell ``(i, j)`` is ``labels[floor(i H / h), floor(j W / w)]``
    (``F.interpolate(mode="nearest")`` sampling); mean over non-ignored cells
    (``average="non_ignored"``) or over all cells (``"all_pixels"``).
    """
    _check_logits_labels(logits, labels)
    _check_channels(logits, num_classes, "one per class")
    infer_scale(logits.shape[-2:], labels.shape[-2:], remainder)
    validate_labels(labels, num_classes, ignore_value)
    small = nearest_downsample(labels, tuple(logits.shape[-2:]))
    return _masked_ce(logits, small, ignore_value, average)


def cpp_kl_from_targets(
    logits: Tensor,
    targets: Tensor,
    *,
    kl_direction: str = "target_to_prediction",
    ignore_mode: str = "renormalize",
    eps: float = 1e-8,
) -> Tensor:
    """Eq. 2 given CPP targets ``(N, K+1, h, w)`` (last channel = ignored fraction).

    See the module docstring for ``kl_direction`` and ``ignore_mode``.
    """
    _choice("kl_direction", kl_direction, KL_DIRECTIONS)
    _choice("ignore_mode", ignore_mode, IGNORE_MODES)
    _check_logits_labels(logits, None)
    if not isinstance(targets, Tensor) or targets.dim() != 4:
        raise ValueError(
            f"targets must have shape (N, K+1, h, w), got {getattr(targets, 'shape', targets)}"
        )
    N, C1, h, w = targets.shape
    K = C1 - 1
    if (logits.shape[0], logits.shape[2], logits.shape[3]) != (N, h, w):
        raise ValueError(
            f"targets {tuple(targets.shape)} do not match logits {tuple(logits.shape)} "
            f"(expected (N, K+1, h, w) on the logits' grid)"
        )
    if ignore_mode == "ignore_channel":
        _check_channels(logits, K + 1, "ignore_mode='ignore_channel' predicts K+1 channels")
    else:
        _check_channels(logits, K, f"targets have {K}+1 channels")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")

    t = targets.detach().to(device=logits.device, dtype=torch.float32)
    log_p = F.log_softmax(logits.float(), dim=1)
    if ignore_mode == "ignore_channel":
        q = t
        weight = None
    else:
        v = t[:, :K].sum(dim=1, keepdim=True)  # valid fraction of every cell
        q = torch.where(
            v > 0,
            t[:, :K] / v.clamp_min(torch.finfo(torch.float32).tiny),
            torch.zeros_like(t[:, :K]),
        )
        weight = v[:, 0] if ignore_mode == "renormalize" else (v[:, 0] > 0).to(torch.float32)

    if kl_direction == "target_to_prediction":
        # KL(q || p) with 0 log 0 = 0 (also where a logit is -inf and q = 0)
        kl = (torch.xlogy(q, q) - torch.where(q > 0, q * log_p, torch.zeros_like(q))).sum(dim=1)
    else:
        k = q.shape[1]
        log_q = torch.log((q + eps) / (1.0 + k * eps))
        p = log_p.exp()
        kl = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(
            dim=1
        )  # KL(p || q_eps)

    if weight is None:
        return kl.mean()
    total = weight.sum()
    if float(total) == 0.0:
        return _zero_like_graph(logits)
    return (weight * kl).sum() / total


def cpp_kl_loss(
    logits: Tensor,
    labels: Tensor,
    num_classes: int,
    ignore_value: int = 255,
    *,
    kl_direction: str = "target_to_prediction",
    ignore_mode: str = "renormalize",
    eps: float = 1e-8,
    remainder: str = "pad",
    targets: Optional[Tensor] = None,
) -> Tensor:
    """CPP auxiliary loss (Eqs. 1-2): the stride is derived from the shapes of ``logits`` and
    ``labels``.

    ``targets``, if given, are precomputed ``cpp_targets(labels, s, num_classes)`` for this
    head's stride (e.g. from one ``cpp_targets(labels, [4, 8, 16, 32], K)`` call shared by several
    heads); ``labels`` are then not read and may be ``None``.
    """
    if targets is None:
        _check_logits_labels(logits, labels)
        s = infer_scale(logits.shape[-2:], labels.shape[-2:], remainder)
        with torch.no_grad():
            targets = cpp_targets(labels, s, num_classes, ignore_value, remainder=remainder)
    elif targets.shape[1] != num_classes + 1:
        raise ValueError(
            f"targets have {targets.shape[1]} channels, expected num_classes + 1 = "
            f"{num_classes + 1}"
        )
    return cpp_kl_from_targets(
        logits, targets, kl_direction=kl_direction, ignore_mode=ignore_mode, eps=eps
    )


class AuxiliaryLoss(torch.nn.Module):
    """Loss of one auxiliary head, selected by ``kind`` (one of :data:`AUX_LOSS_KINDS`).

    ``forward(logits, labels, targets=None)``: ``logits`` ``(N, K, h, w)`` (``K + 1`` channels
    for ``ignore_mode="ignore_channel"``), ``labels`` ``(N, H, W)`` at full resolution, with
    ``(h, w)`` an integer fraction of ``(H, W)`` (see :func:`infer_scale`); returns a scalar.
    ``targets`` (``cpp_kl`` only; ignored by the other kinds) are precomputed CPP targets for
    this head's grid. ``kl_direction``, ``ignore_mode`` and ``eps`` only affect ``cpp_kl``;
    ``align_corners`` only ``upsample_ce``; ``ce_average`` (one of :data:`CE_AVERAGES`) only the
    two cross-entropy kinds.
    """

    def __init__(
        self,
        kind: str = "cpp_kl",
        num_classes: int = 19,
        ignore_value: int = 255,
        kl_direction: str = "target_to_prediction",
        ignore_mode: str = "renormalize",
        eps: float = 1e-8,
        remainder: str = "pad",
        align_corners: bool = False,
        ce_average: str = "non_ignored",
    ):
        super().__init__()
        _choice("auxiliary loss kind", kind, AUX_LOSS_KINDS)
        _choice("cross-entropy average", ce_average, CE_AVERAGES)
        _choice("kl_direction", kl_direction, KL_DIRECTIONS)
        _choice("ignore_mode", ignore_mode, IGNORE_MODES)
        _choice("remainder policy", remainder, REMAINDER_POLICIES)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.kind = kind
        self.num_classes = num_classes
        self.ignore_value = ignore_value
        self.kl_direction = kl_direction
        self.ignore_mode = ignore_mode
        self.eps = eps
        self.remainder = remainder
        self.align_corners = align_corners
        self.ce_average = ce_average

    @property
    def needs_cpp_targets(self) -> bool:
        """Whether ``forward`` can use precomputed CPP targets (only ``kind == "cpp_kl"``)."""
        return self.kind == "cpp_kl"

    def forward(self, logits: Tensor, labels: Tensor, targets: Optional[Tensor] = None) -> Tensor:
        # Mixed precision: the targets, the resizing and the loss itself run in float32.
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return self._forward(logits.float(), labels, targets)

    def _forward(self, logits: Tensor, labels: Tensor, targets: Optional[Tensor]) -> Tensor:
        if self.kind == "cpp_kl":
            return cpp_kl_loss(
                logits,
                labels,
                self.num_classes,
                self.ignore_value,
                kl_direction=self.kl_direction,
                ignore_mode=self.ignore_mode,
                eps=self.eps,
                remainder=self.remainder,
                targets=targets,
            )
        if self.kind == "upsample_ce":
            return upsample_ce_loss(
                logits,
                labels,
                self.num_classes,
                self.ignore_value,
                align_corners=self.align_corners,
                remainder=self.remainder,
                average=self.ce_average,
            )
        return nearest_ce_loss(
            logits,
            labels,
            self.num_classes,
            self.ignore_value,
            remainder=self.remainder,
            average=self.ce_average,
        )

    def extra_repr(self) -> str:
        s = f"kind={self.kind!r}, num_classes={self.num_classes}, ignore_value={self.ignore_value}"
        if self.kind == "cpp_kl":
            s += (
                f", kl_direction={self.kl_direction!r}, ignore_mode={self.ignore_mode!r}, "
                f"eps={self.eps}"
            )
        else:
            s += f", ce_average={self.ce_average!r}"
        return s
