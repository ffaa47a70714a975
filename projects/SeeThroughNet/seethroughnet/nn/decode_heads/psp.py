"""PSPNet head (Zhao, Shi, Qi, Wang, Jia, "Pyramid Scene Parsing Network", CVPR 2017), Sec. 3.2 /
Fig. 3: pyramid pooling with bins 1, 2, 3, 6 on the last backbone feature, each branch reduced by a
1x1 conv (MMSegmentation: to ``channels`` = 512 = 2048 / 4, as the paper's "1/N" reduction), the
branches up-sampled and concatenated with the input, a 3x3 conv (``channels``) and the
classifier."""

from __future__ import annotations

import torch

from ..layers import ConvNormAct
from .common import DecodeHead, PyramidPooling
from .registry import register_decode_head

__all__ = ["PSPHead"]


@register_decode_head("psp", pool_scales="POOL_SCALES")
class PSPHead(DecodeHead):
    default_in_features = ("res5",)

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
        cin = self.in_channels[-1]
        self.psp = PyramidPooling(cin, channels, pool_scales, norm)
        self.bottleneck = ConvNormAct(cin + len(pool_scales) * channels, channels, 3, norm=norm)
        self.init_weights()

    def forward(self, features):
        x = self.inputs(features)[-1]
        y = self.bottleneck(torch.cat([x] + self.psp(x), dim=1))
        return self.cls_seg(y)
