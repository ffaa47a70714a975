"""ANN head (Zhu, Xu, Bai, Huang, Bai, "Asymmetric Non-local Neural Networks for Semantic
Segmentation", ICCV 2019), Sec. 3.

* Pyramid sampling (Sec. 3.2): keys and values are not all ``HW`` positions but the concatenated
  adaptive-average-pooled maps at sizes 1, 3, 6, 8 (``S = 1 + 9 + 36 + 64 = 110`` anchors).
* AFNB (Sec. 3.3, asymmetric fusion non-local block): queries from the high-level feature (stage
  5), keys/values from the low-level feature (stage 4) sampled by the pyramid; the attended values
  are concatenated with the high-level feature and fused by a 1x1 conv.
* APNB (Sec. 3.4, asymmetric pyramid non-local block): the same self-attention on one feature
  (queries from all positions, keys/values pyramid-sampled), output concatenated with the input and
  fused by a 1x1 conv.
* Head (MMSegmentation ``ANNHead``): AFNB(res4, res5) -> dropout -> 1x1 conv to ``channels`` ->
  APNB -> classifier; key/query width ``project_channels`` = 256; scaled dot-product
  (``C^-1/2``) before the softmax.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import ConvBNReLU, DecodeHead

__all__ = ["ANNHead", "AFNB", "APNB", "pyramid_sample"]


def pyramid_sample(x: torch.Tensor, scales=(1, 3, 6, 8)) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, C, S)`` with ``S = sum(s * s)``."""
    n, c = x.shape[:2]
    return torch.cat([F.adaptive_avg_pool2d(x, s).reshape(n, c, -1) for s in scales], dim=2)


class _AsymmetricAttention(nn.Module):
    """Queries from all positions, keys/values pyramid-sampled; value and output projections are
    plain 1x1 convs (``W_v``, ``W_o``: key_in -> channels -> out_channels, as MMSegmentation)."""

    def __init__(self, query_in, key_in, channels, out_channels, norm, scales):
        super().__init__()
        self.scales = tuple(scales)
        self.channels = channels
        self.query = ConvBNReLU(query_in, channels, 1, norm=norm)
        self.key = ConvBNReLU(key_in, channels, 1, norm=norm)
        self.value = nn.Conv2d(key_in, channels, 1)
        self.out = nn.Conv2d(channels, out_channels, 1)

    def forward(self, query_feats, key_feats):
        n, _, h, w = query_feats.shape
        q = self.query(query_feats).reshape(n, self.channels, -1)  # (N, C, HW)
        k = pyramid_sample(self.key(key_feats), self.scales)  # (N, C, S)
        v = pyramid_sample(self.value(key_feats), self.scales)  # (N, Cv, S)
        attn = torch.softmax(torch.einsum("ncp,ncs->nps", q, k) * self.channels ** -0.5, dim=-1)
        ctx = torch.einsum("nps,ncs->ncp", attn, v).reshape(n, -1, h, w)
        return self.out(ctx)


class AFNB(nn.Module):
    def __init__(self, low_in, high_in, channels, out_channels, norm="BN", scales=(1, 3, 6, 8)):
        super().__init__()
        self.attention = _AsymmetricAttention(high_in, low_in, channels, out_channels, norm, scales)
        self.fuse = ConvBNReLU(out_channels + high_in, out_channels, 1, norm=norm)

    def forward(self, low, high):
        return self.fuse(torch.cat([self.attention(high, low), high], dim=1))


class APNB(nn.Module):
    def __init__(self, in_channels, channels, out_channels, norm="BN", scales=(1, 3, 6, 8)):
        super().__init__()
        self.attention = _AsymmetricAttention(in_channels, in_channels, channels, out_channels, norm, scales)
        self.fuse = ConvBNReLU(out_channels + in_channels, out_channels, 1, norm=norm)

    def forward(self, x):
        return self.fuse(torch.cat([self.attention(x, x), x], dim=1))


class ANNHead(DecodeHead):
    """``in_features``: (low, high), default ``("res4", "res5")``."""

    default_in_features = ("res4", "res5")

    def __init__(self, in_channels, num_classes, channels=512, in_features=(), dropout=0.1, norm="BN",
                 project_channels=256, key_pool_scales=(1, 3, 6, 8)):
        super().__init__(in_channels, num_classes, channels, in_features, dropout, norm)
        low, high = self.in_channels[0], self.in_channels[-1]
        self.fusion = AFNB(low, high, project_channels, high, norm, key_pool_scales)
        self.bottleneck = ConvBNReLU(high, channels, 1, norm=norm)
        self.context = APNB(channels, project_channels, channels, norm, key_pool_scales)

    def forward(self, features):
        feats = self.inputs(features)
        low, high = feats[0], feats[-1]
        if low.shape[-2:] != high.shape[-2:]:
            low = F.interpolate(low, size=high.shape[-2:], mode="bilinear", align_corners=False)
        x = self.bottleneck(self.dropout(self.fusion(low, high)))
        return self.cls_seg(self.context(x))
