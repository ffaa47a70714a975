"""ANN head (Zhu, Xu, Bai, Huang, Bai, "Asymmetric Non-local Neural Networks for Semantic
Segmentation", ICCV 2019), Sec. 3, built as MMSegmentation's ``ANNHead``
(``mmseg/models/decode_heads/ann_head.py``, ``configs/_base_/models/ann_r50-d8.py``).

* Pyramid sampling (Sec. 3.2): keys and values are not all ``HW`` positions but the concatenated
  adaptive-average-pooled maps at sizes 1, 3, 6, 8 (``S = 1 + 9 + 36 + 64 = 110`` anchors).
* Attention (MMSegmentation's ``SelfAttentionBlock`` as ANN configures it): query and key
  projections are ``1x1 conv -> norm -> ReLU`` to ``project_channels`` (256); the value projection
  and the output projection are plain 1x1 convs with bias (``W_v``: key_in -> 256, ``W_o``: 256 ->
  out); energies scaled by ``256^-1/2`` before the softmax over the anchors; ``W_o`` is
  initialised to zero (weight and bias), so each block starts as its skip path.
* AFNB (Sec. 3.3, asymmetric fusion non-local block): queries from the high-level feature (res5),
  keys/values from the low-level feature (res4), separate query and key projections; the attended
  values are concatenated with the high-level feature and fused by ``1x1 conv -> norm`` (no
  activation) back to the high-level width.
* Head: AFNB(res4, res5) -> dropout -> ``3x3 conv -> norm -> ReLU`` to ``channels`` (512) -> APNB
  -> classifier.
* APNB (Sec. 3.4, asymmetric pyramid non-local block): self-attention on one feature with **one**
  projection shared by queries and keys (``share_key_query=True``), output concatenated with the
  input and fused by ``1x1 conv -> norm -> ReLU``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvNormAct
from ..weight_init import zero_init_
from .common import DecodeHead
from .registry import register_decode_head

__all__ = ["ANNHead", "AFNB", "APNB", "AsymmetricAttention", "pyramid_sample"]


def pyramid_sample(x: torch.Tensor, scales=(1, 3, 6, 8)) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, C, S)`` with ``S = sum(s * s)``."""
    n, c = x.shape[:2]
    return torch.cat([F.adaptive_avg_pool2d(x, s).reshape(n, c, -1) for s in scales], dim=2)


class AsymmetricAttention(nn.Module):
    """Queries from all positions, keys/values pyramid-sampled. ``share_key_query``: the query
    projection is the key projection (one module, one set of weights; needs ``query_in ==
    key_in``). ``out`` (``W_o``) is zero-initialised."""

    def __init__(
        self, query_in, key_in, channels, out_channels, norm, scales, share_key_query=False
    ):
        super().__init__()
        if share_key_query and query_in != key_in:
            raise ValueError(
                f"share_key_query needs equal query/key widths, got {query_in} and {key_in}"
            )
        self.scales = tuple(scales)
        self.channels = channels
        self.share_key_query = share_key_query
        self.key = ConvNormAct(key_in, channels, 1, norm=norm)
        self.query = self.key if share_key_query else ConvNormAct(query_in, channels, 1, norm=norm)
        self.value = nn.Conv2d(key_in, channels, 1)
        self.out = nn.Conv2d(channels, out_channels, 1)

    def forward(self, query_feats, key_feats):
        n, _, h, w = query_feats.shape
        q = self.query(query_feats).reshape(n, self.channels, -1)  # (N, C, HW)
        k = pyramid_sample(self.key(key_feats), self.scales)  # (N, C, S)
        v = pyramid_sample(self.value(key_feats), self.scales)  # (N, Cv, S)
        attn = torch.softmax(torch.einsum("ncp,ncs->nps", q, k) * self.channels**-0.5, dim=-1)
        ctx = torch.einsum("nps,ncs->ncp", attn, v).reshape(n, -1, h, w)
        return self.out(ctx)


class AFNB(nn.Module):
    """Asymmetric fusion non-local block: ``fuse([attention(high, low), high])`` with ``fuse`` =
    ``1x1 conv -> norm`` (no activation)."""

    def __init__(self, low_in, high_in, channels, out_channels, norm="BN", scales=(1, 3, 6, 8)):
        super().__init__()
        self.attention = AsymmetricAttention(high_in, low_in, channels, out_channels, norm, scales)
        self.fuse = ConvNormAct(out_channels + high_in, out_channels, 1, norm=norm, act=False)

    def forward(self, low, high):
        return self.fuse(torch.cat([self.attention(high, low), high], dim=1))


class APNB(nn.Module):
    """Asymmetric pyramid non-local block: ``fuse([attention(x, x), x])`` with a shared query/key
    projection and ``fuse`` = ``1x1 conv -> norm -> ReLU``."""

    def __init__(self, in_channels, channels, out_channels, norm="BN", scales=(1, 3, 6, 8)):
        super().__init__()
        self.attention = AsymmetricAttention(
            in_channels, in_channels, channels, out_channels, norm, scales, share_key_query=True
        )
        self.fuse = ConvNormAct(out_channels + in_channels, out_channels, 1, norm=norm)

    def forward(self, x):
        return self.fuse(torch.cat([self.attention(x, x), x], dim=1))


@register_decode_head("ann", project_channels="PROJECT_CHANNELS", key_pool_scales="KEY_POOL_SCALES")
class ANNHead(DecodeHead):
    """``in_features``: (low, high), default ``("res4", "res5")``."""

    default_in_features = ("res4", "res5")

    def __init__(
        self,
        in_channels,
        num_classes,
        channels=512,
        in_features=(),
        dropout=0.1,
        norm="BN",
        project_channels=256,
        key_pool_scales=(1, 3, 6, 8),
    ):
        super().__init__(in_channels, num_classes, channels, in_features, dropout, norm)
        low, high = self.in_channels[0], self.in_channels[-1]
        self.fusion = AFNB(low, high, project_channels, high, norm, key_pool_scales)
        self.bottleneck = ConvNormAct(high, channels, 3, norm=norm)
        self.context = APNB(channels, project_channels, channels, norm, key_pool_scales)
        self.init_weights()

    def init_weights(self) -> None:
        """:meth:`DecodeHead.init_weights`, then the attention output convs to zero
        (MMSegmentation's ``SelfAttentionBlock.init_weights`` for a plain-conv output
        projection)."""
        super().init_weights()
        zero_init_(self.fusion.attention.out)
        zero_init_(self.context.attention.out)

    def forward(self, features):
        feats = self.inputs(features)
        low, high = feats[0], feats[-1]  # any sizes: the keys/values of ``low`` are pyramid-sampled
        x = self.bottleneck(self.dropout(self.fusion(low, high)))
        return self.cls_seg(self.context(x))
