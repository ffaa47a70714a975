"""DeepLabV3+ head (Chen, Zhu, Papandreou, Schroff, Adam, "Encoder-Decoder with Atrous Separable
Convolution for Semantic Image Segmentation", ECCV 2018).

* ASPP (DeepLabV3, Sec. 3.3): image pooling branch + 1x1 conv + three 3x3 atrous convs with rates
  (12, 24, 36) at output stride 8 ((6, 12, 18) at 16), each ``channels`` wide, concatenated and
  projected by a 1x1 conv; with ``separable=True`` the atrous convs are depthwise-separable (the
  Xception-style "atrous separable convolution" of DeepLabV3+ Sec. 3.2, as in MMSegmentation's
  ``DepthwiseSeparableASPPHead``).
* Decoder (Sec. 3.1, Fig. 2): the low-level feature (stride 4, ``res2``) projected to 48 channels
  by a 1x1 conv, concatenated after the 4x-up-sampled ASPP output (MMSegmentation's
  ``DepthwiseSeparableASPPHead`` order ``[ASPP, low-level]``, which its checkpoints' first fusion
  conv expects), two 3x3 convs (``channels``), classifier at stride 4.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import ConvNormAct, resize
from .common import DecodeHead
from .registry import register_decode_head

__all__ = ["DeepLabV3PlusHead", "ASPPModule", "SeparableConvNormAct"]


class SeparableConvNormAct(nn.Sequential):
    """Depthwise 3x3 (dilated) conv -> norm -> ReLU -> pointwise 1x1 conv -> norm -> ReLU."""

    def __init__(self, cin, cout, dilation=1, norm="BN"):
        super().__init__(
            ConvNormAct(cin, cin, 3, dilation, norm, groups=cin),
            ConvNormAct(cin, cout, 1, norm=norm),
        )


class ASPPModule(nn.Module):
    def __init__(self, in_channels, channels, dilations=(12, 24, 36), norm="BN", separable=True):
        super().__init__()
        self.image_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), ConvNormAct(in_channels, channels, 1, norm=norm)
        )
        branches = [ConvNormAct(in_channels, channels, 1, norm=norm)]
        for d in dilations:
            branches.append(
                SeparableConvNormAct(in_channels, channels, d, norm)
                if separable
                else ConvNormAct(in_channels, channels, 3, d, norm)
            )
        self.branches = nn.ModuleList(branches)
        self.project = ConvNormAct(
            (len(dilations) + 2) * channels, channels, 3 if separable else 1, norm=norm
        )

    def forward(self, x):
        outs = [resize(self.image_pool(x), x.shape[-2:])] + [b(x) for b in self.branches]
        return self.project(torch.cat(outs, dim=1))


@register_decode_head(
    "deeplabv3plus",
    dilations="ASPP_DILATIONS",
    low_level_channels="LOW_LEVEL_CHANNELS",
    separable="SEPARABLE",
)
class DeepLabV3PlusHead(DecodeHead):
    """``in_features``: (low-level, high-level), default ``("res2", "res5")``."""

    default_in_features = ("res2", "res5")

    def __init__(
        self,
        in_channels,
        num_classes,
        channels=512,
        in_features=(),
        dropout=0.1,
        norm="BN",
        dilations=(12, 24, 36),
        low_level_channels=48,
        separable=True,
    ):
        super().__init__(in_channels, num_classes, channels, in_features, dropout, norm)
        c_low, c_high = self.in_channels[0], self.in_channels[-1]
        self.aspp = ASPPModule(c_high, channels, dilations, norm, separable)
        self.low_proj = ConvNormAct(c_low, low_level_channels, 1, norm=norm)
        block = (
            (lambda i, o: SeparableConvNormAct(i, o, 1, norm))
            if separable
            else (lambda i, o: ConvNormAct(i, o, 3, norm=norm))
        )
        self.fuse = nn.Sequential(
            block(channels + low_level_channels, channels), block(channels, channels)
        )
        self.init_weights()

    def forward(self, features):
        feats = self.inputs(features)
        low, high = feats[0], feats[-1]
        x = resize(self.aspp(high), low.shape[-2:])
        x = self.fuse(torch.cat([x, self.low_proj(low)], dim=1))
        return self.cls_seg(x)
