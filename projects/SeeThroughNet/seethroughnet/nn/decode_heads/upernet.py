"""UPerNet head (Xiao, Liu, Zhou, Jiang, Sun, "Unified Perceptual Parsing for Scene Understanding",
ECCV 2018), Sec. 3.2 / Fig. 3: a PPM (bins 1, 2, 3, 6) on the last stage feeds the top of an FPN;
lateral 1x1 convs on the other stages, top-down addition, a 3x3 conv per level, all levels
up-sampled to stride 4, concatenated and fused by a 3x3 conv, then the classifier (MMSegmentation's
``UPerHead``, ``channels`` = 512). MMSegmentation runs it on an undilated ResNet
(``upernet_r50.py``: res2..res5 at strides 4/8/16/32), which ``upernet_R101_cityscapes.yaml``
reproduces; the top-down path resizes each level to the next finer one."""

from __future__ import annotations

import torch
from torch import nn

from ..layers import ConvNormAct, resize
from .common import DecodeHead, PyramidPooling
from .registry import register_decode_head

__all__ = ["UPerHead"]


@register_decode_head("upernet", pool_scales="POOL_SCALES")
class UPerHead(DecodeHead):
    default_in_features = ("res2", "res3", "res4", "res5")

    def __init__(
        self,
        in_channels,
        num_classes,
        channels=512,
        in_features=(),
        dropout=0.1,
        norm="BN",
        pool_scales=(1, 2, 3, 6),
    ):
        super().__init__(in_channels, num_classes, channels, in_features, dropout, norm)
        top = self.in_channels[-1]
        self.psp = PyramidPooling(top, channels, pool_scales, norm)
        self.psp_bottleneck = ConvNormAct(top + len(pool_scales) * channels, channels, 3, norm=norm)
        self.lateral = nn.ModuleList(
            ConvNormAct(c, channels, 1, norm=norm) for c in self.in_channels[:-1]
        )
        self.fpn = nn.ModuleList(
            ConvNormAct(channels, channels, 3, norm=norm) for _ in self.in_channels[:-1]
        )
        self.fpn_bottleneck = ConvNormAct(len(self.in_channels) * channels, channels, 3, norm=norm)
        self.init_weights()

    def forward(self, features):
        feats = self.inputs(features)
        top = feats[-1]
        laterals = [l(f) for l, f in zip(self.lateral, feats[:-1])]
        laterals.append(self.psp_bottleneck(torch.cat([top] + self.psp(top), dim=1)))
        for i in range(len(laterals) - 1, 0, -1):  # top-down
            laterals[i - 1] = laterals[i - 1] + resize(laterals[i], laterals[i - 1].shape[-2:])
        outs = [self.fpn[i](laterals[i]) for i in range(len(laterals) - 1)] + [laterals[-1]]
        size = outs[0].shape[-2:]
        x = self.fpn_bottleneck(torch.cat([resize(o, size) for o in outs], dim=1))
        return self.cls_seg(x)
