"""Object-Contextual Representations head (Yuan, Chen, Wang, "Object-Contextual Representations
for Semantic Segmentation", ECCV 2020), as used by SeeThroughNet (Section 3.2: "we adopt the OCR
head to predict the final segmentation", with the SeeThrough decoder's aggregated map ``X'`` as the
soft object regions).

With pixel representations ``x_i`` and ``K`` soft object regions ``m_k``:

* pixel representations: ``x = ReLU(BN(conv3x3(concat_hrnetv2(F))))`` (720 -> 512 for W48);
* object region representations (OCR paper Eq. 2): ``f_k = sum_i softmax_i(m_ki) x_i`` -- a spatial
  softmax of every region map, then a weighted sum of the pixels;
* pixel-region relation (Eq. 4): ``w_ik = softmax_k(phi(x_i)^T psi(f_k) / sqrt(C_key))`` with
  ``phi``/``psi`` two (1x1 conv, BN, ReLU) each (``C_key`` = 256). The ``1/sqrt(C_key)`` scaling is
  not in the paper's formula but is in the released HRNet-OCR code; we keep it;
* object contextual representation (Eq. 3): ``y_i = rho(sum_k w_ik delta(f_k))`` with ``delta`` a
  (1x1 conv 512->256, BN, ReLU) and ``rho`` a (1x1 conv 256->512, BN, ReLU);
* augmented representation (Eq. 5): ``z_i = g([x_i ; y_i])``, ``g`` = (1x1 conv 1024->512, BN,
  ReLU) followed by ``Dropout2d(0.05)`` (HRNet-OCR);
* classifier: ``X = conv1x1(z)`` (512 -> K).

:func:`concat_hrnetv2` builds the HRNetV2 representation: the four branches bilinearly up-sampled to
stride 4 and concatenated.
"""

from __future__ import annotations

from typing import Dict, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvNormAct, resize

__all__ = ["OCRHead", "concat_hrnetv2"]


def concat_hrnetv2(
    features: Mapping[str, torch.Tensor],
    names: Sequence[str] = ("res2", "res3", "res4", "res5"),
    align_corners: bool = False,
) -> torch.Tensor:
    """HRNetV2 representation: every branch up-sampled to the first's size, concatenated."""
    size = features[names[0]].shape[-2:]
    maps = [resize(features[n], size, align_corners) for n in names]
    return torch.cat(maps, dim=1)


class OCRHead(nn.Module):
    """OCR head: pixel reps, object region reps, object-contextual attention, classifier.

    Args:
        in_channels: channels of the concatenated backbone features (720 for HRNetV2-W48).
        num_classes: ``K``; also the number of soft object regions.
        mid_channels: pixel / augmented representation width (512).
        key_channels: key/query width of the object-contextual attention (256).
        dropout: ``Dropout2d`` rate after the augmentation conv (0.05).
        region_scale: multiplier of the region logits before the spatial softmax (1.0).
        norm: ``"BN"`` or ``"SyncBN"``.
    """

    def __init__(
        self,
        in_channels: int = 720,
        num_classes: int = 19,
        mid_channels: int = 512,
        key_channels: int = 256,
        dropout: float = 0.05,
        region_scale: float = 1.0,
        norm: str = "BN",
    ):
        super().__init__()
        self.num_classes = num_classes
        self.key_channels = key_channels
        self.region_scale = region_scale
        self.pixel_conv = ConvNormAct(in_channels, mid_channels, 3, norm=norm)
        self.query = nn.Sequential(  # phi
            ConvNormAct(mid_channels, key_channels, 1, norm=norm),
            ConvNormAct(key_channels, key_channels, 1, norm=norm),
        )
        self.key = nn.Sequential(  # psi
            ConvNormAct(mid_channels, key_channels, 1, norm=norm),
            ConvNormAct(key_channels, key_channels, 1, norm=norm),
        )
        self.value = ConvNormAct(mid_channels, key_channels, 1, norm=norm)  # delta
        self.out_transform = ConvNormAct(key_channels, mid_channels, 1, norm=norm)  # rho
        self.fuse = nn.Sequential(
            ConvNormAct(2 * mid_channels, mid_channels, 1, norm=norm), nn.Dropout2d(dropout)
        )
        self.classifier = nn.Conv2d(mid_channels, num_classes, 1)

    @staticmethod
    def object_regions(
        pixels: torch.Tensor, regions: torch.Tensor, scale: float = 1.0
    ) -> torch.Tensor:
        """OCR Eq. 2: ``f_k = sum_i softmax_i(scale * m_ki) x_i`` -> ``(N, C, K, 1)``."""
        n, c = pixels.shape[:2]
        k = regions.shape[1]
        weights = F.softmax(scale * regions.reshape(n, k, -1), dim=2)  # (N, K, HW)
        f = torch.bmm(weights, pixels.reshape(n, c, -1).transpose(1, 2))  # (N, K, C)
        return f.transpose(1, 2).unsqueeze(-1)

    def forward(
        self, features: torch.Tensor, soft_regions: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        """``features``: ``(N, C_in, h, w)`` concatenated HRNetV2 features; ``soft_regions``:
        ``(N, K, h', w')`` region logits (resized to ``(h, w)`` if needed).

        Returns ``{"logits": (N,K,h,w), "feats": (N,mid,h,w) augmented reps, "pixels": pixel reps,
        "context": object-contextual reps}``.
        """
        x = self.pixel_conv(features)
        if soft_regions.shape[-2:] != x.shape[-2:]:
            soft_regions = F.interpolate(
                soft_regions, size=x.shape[-2:], mode="bilinear", align_corners=False
            )
        n, _, h, w = x.shape
        f = self.object_regions(x, soft_regions, self.region_scale)  # (N, C, K, 1)
        q = self.query(x).reshape(n, self.key_channels, -1).transpose(1, 2)  # (N, HW, Ck)
        kf = self.key(f).reshape(n, self.key_channels, -1)  # (N, Ck, K)
        v = self.value(f).reshape(n, self.key_channels, -1).transpose(1, 2)  # (N, K, Ck)
        sim = F.softmax(torch.bmm(q, kf) * self.key_channels**-0.5, dim=-1)  # (N, HW, K)
        ctx = torch.bmm(sim, v).transpose(1, 2).reshape(n, self.key_channels, h, w)
        y = self.out_transform(ctx)
        z = self.fuse(torch.cat([y, x], dim=1))
        return {"logits": self.classifier(z), "feats": z, "pixels": x, "context": y}
