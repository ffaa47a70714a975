"""Hierarchical multi-scale attention (Tao, Sapra, Catanzaro, "Hierarchical Multi-Scale Attention
for Semantic Segmentation", 2020), SeeThroughNet Section 3.3, Eq. 4.

**Training (Eq. 4).** The network runs on the image at ``r = 1.0`` and at ``r = 0.5`` (same
weights). An attention head on the ``r = 0.5`` pass predicts a per-pixel weight ``alpha`` and the
two predictions are merged as

    X = up(alpha_0.5 * X_0.5) + (1 - up(alpha_0.5)) * X_1.0

at the resolution of ``X_1.0`` (``up`` = bilinear). This is Tao et al.'s convention: the attention
is predicted by the *lower* scale, weighs the lower scale's (up-sampled) prediction, and the
higher scale receives the complement. The product is taken before up-sampling, as in their
equation ``L_(r=1) = U(L_(r=0.5) * alpha_(r=0.5)) + (1 - U(alpha_(r=0.5))) * L_(r=1)``.

**Attention head** (Tao et al.): (3x3 conv, BN, ReLU) x 2 with 256 channels, 1x1 conv to 1 channel,
sigmoid, on the OCR head's augmented representation (512 channels) of the same pass.

**Inference.** Tao et al. chain the same rule over more scales: starting from the highest scale,
every lower scale ``s`` is merged in with its own attention,
``M <- up(alpha_s * X_s) + (1 - up(alpha_s)) * M``; the highest scale needs no attention. For
``{0.5, 1.0, 2.0}`` this gives
``up(a_.5 X_.5) + (1 - up(a_.5)) * (a_1 X_1 + (1 - a_1) * down(X_2))`` -- the lowest scale's
attention is applied last, outermost. :func:`hierarchical_merge` implements this nested form
(which is what "combining from lowest to highest" means: the lowest scale decides first how
much of the finer result to keep). :func:`average_merge` is the plain-average alternative.
"""

from __future__ import annotations

from typing import Mapping, Optional, Tuple

import torch
from torch import nn

from .layers import ConvNormAct, resize

__all__ = [
    "ScaleAttentionHead",
    "merge_two_scales",
    "hierarchical_merge",
    "average_merge",
]


class ScaleAttentionHead(nn.Module):
    """Tao et al.'s attention head: ``sigmoid(conv1x1(CBR3x3(CBR3x3(x))))``, one channel.

    Args:
        in_channels: input width (the OCR augmented representation, 512).
        mid_channels: hidden width (256).
        norm: ``"BN"`` or ``"SyncBN"``.
    """

    def __init__(self, in_channels: int = 512, mid_channels: int = 256, norm: str = "BN"):
        super().__init__()
        layers = []
        c = in_channels
        for _ in range(2):
            layers += list(ConvNormAct(c, mid_channels, 3, norm=norm))  # flat: net.0, net.1, ...
            c = mid_channels
        layers += [nn.Conv2d(mid_channels, 1, 1, bias=False), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def merge_two_scales(
    low: torch.Tensor,
    alpha_low: torch.Tensor,
    high: torch.Tensor,
    align_corners: bool = False,
) -> torch.Tensor:
    """Eq. 4: ``up(alpha_low * low) + (1 - up(alpha_low)) * high`` at ``high``'s resolution."""
    size = high.shape[-2:]
    return (
        resize(alpha_low * low, size, align_corners)
        + (1.0 - resize(alpha_low, size, align_corners)) * high
    )


def hierarchical_merge(
    logits: Mapping[float, torch.Tensor],
    alphas: Mapping[float, torch.Tensor],
    size: Tuple[int, int],
    align_corners: bool = False,
    weighted: Optional[Mapping[float, torch.Tensor]] = None,
) -> torch.Tensor:
    """Tao et al.'s n-scale merge at output ``size``.

    Args:
        logits: ``{scale: (N, K, h_s, w_s)}`` per-scale predictions.
        alphas: ``{scale: (N, 1, h_s, w_s)}`` attention of every scale but the highest (extra
            entries are ignored).
        size: output resolution.
        weighted: optional precomputed ``{scale: alpha_s * X_s}`` (e.g. formed at the network's
            output resolution and then up-sampled / stitched); default ``alphas[s] * logits[s]``.

    ``M = resize(X_max)``; then for the remaining scales from high to low,
    ``M = resize(alpha_s * X_s) + (1 - resize(alpha_s)) * M``.
    """
    scales = sorted(logits, reverse=True)
    merged = resize(logits[scales[0]], size, align_corners)
    for s in scales[1:]:
        a = alphas[s]
        ax = weighted[s] if weighted is not None and s in weighted else a * logits[s]
        merged = resize(ax, size, align_corners) + (1.0 - resize(a, size, align_corners)) * merged
    return merged


def average_merge(
    logits: Mapping[float, torch.Tensor],
    size: Tuple[int, int],
    align_corners: bool = False,
) -> torch.Tensor:
    """Plain average of the per-scale logits, each resized to ``size``."""
    maps = [resize(x, size, align_corners) for x in logits.values()]
    return torch.stack(maps, 0).mean(0)
