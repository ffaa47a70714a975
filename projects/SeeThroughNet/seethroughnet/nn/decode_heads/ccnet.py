"""CCNet head (Huang, Wang, Huang, Huang, Wei, Liu, "CCNet: Criss-Cross Attention for Semantic
Segmentation", ICCV 2019), Sec. 3: a 3x3 conv reduces the last feature to ``channels``, the
recurrent criss-cross attention module (RCCA) applies the same criss-cross attention ``R = 2``
times, a 3x3 conv follows, the result is concatenated with the input feature and fused by a 3x3
conv (MMSegmentation's ``CCHead`` = ``FCNHead(num_convs=2, concat_input=True)`` with RCCA between
the convs), then the classifier.

Criss-cross attention (Sec. 3.2, Eqs. 1-2), written with ``einsum`` (no CUDA kernel): with ``Q, K``
(1x1 convs to ``C/8``) and ``V`` (1x1 conv to ``C``), position ``u = (i, j)`` attends to the
``H + W - 1`` positions of its row and column; the energies ``Q_u . K_v`` over the column (with the
position itself masked, as in the released code, so it is counted once, from the row) and over the
row share one softmax; the output is ``gamma * sum_v A_uv V_v + x_u`` with ``gamma`` initialised to
0."""

from __future__ import annotations

import torch
from torch import nn

from ..layers import ConvNormAct
from .common import DecodeHead
from .registry import register_decode_head

__all__ = ["CCHead", "CrissCrossAttention"]


class CrissCrossAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        inner = max(channels // reduction, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        n, c, h, w = x.shape
        q, k, v = self.query(x), self.key(x), self.value(x)
        e_col = torch.einsum("nchw,ncgw->nhwg", q, k)  # (N, H, W, H): (i, j) -> (g, j)
        eye = torch.eye(h, dtype=torch.bool, device=x.device).view(1, h, 1, h)
        e_col = e_col.masked_fill(eye, float("-inf"))
        e_row = torch.einsum("nchw,nchg->nhwg", q, k)  # (N, H, W, W): (i, j) -> (i, g)
        attn = torch.softmax(torch.cat([e_col, e_row], dim=-1), dim=-1)
        out = torch.einsum("nhwg,ncgw->nchw", attn[..., :h], v) + torch.einsum(
            "nhwg,nchg->nchw", attn[..., h:], v
        )
        return self.gamma * out + x


@register_decode_head("ccnet", recurrence="RECURRENCE")
class CCHead(DecodeHead):
    default_in_features = ("res5",)

    def __init__(
        self,
        in_channels,
        num_classes,
        channels=512,
        in_features=(),
        dropout=0.1,
        norm="BN",
        recurrence=2,
    ):
        super().__init__(in_channels, num_classes, channels, in_features, dropout, norm)
        cin = self.in_channels[-1]
        self.recurrence = recurrence
        self.conva = ConvNormAct(cin, channels, 3, norm=norm)
        self.cca = CrissCrossAttention(channels)
        self.convb = ConvNormAct(channels, channels, 3, norm=norm)
        self.bottleneck = ConvNormAct(cin + channels, channels, 3, norm=norm)
        self.init_weights()

    def forward(self, features):
        x = self.inputs(features)[-1]
        y = self.conva(x)
        for _ in range(self.recurrence):  # RCCA: the same module R times
            y = self.cca(y)
        y = self.convb(y)
        return self.cls_seg(self.bottleneck(torch.cat([x, y], dim=1)))
