"""DMNet head (He, Deng, Qiao, "Dynamic Multi-scale Filters for Semantic Segmentation", ICCV 2019),
Sec. 3: parallel Dynamic Convolutional Modules (DCMs) with filter sizes 1, 3, 5, 7. In a DCM of size
``k`` the input is (a) adaptively average-pooled to ``k x k`` and mapped by a 1x1 conv to
``channels`` -- a content-dependent ``k x k`` filter per channel and per image -- and (b) reduced by
a 1x1 conv (norm, ReLU) to ``channels``; (b) is convolved depth-wise with (a) (padding keeps the
size), then norm + ReLU (and an optional 1x1 fusion conv, MMSegmentation ``fusion=False``). The DCM
outputs are concatenated with the input and fused by a 3x3 conv before the classifier
(MMSegmentation's ``DMHead``: the filter generator is a plain 1x1 conv with bias, PyTorch's
default initialisation; the conv-norm-ReLU blocks are Kaiming-initialised)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvNormAct, norm_layer
from .common import DecodeHead
from .registry import register_decode_head

__all__ = ["DMHead", "DynamicConvModule", "dynamic_depthwise_conv"]


def dynamic_depthwise_conv(x: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """Depth-wise conv of ``x (N, C, H, W)`` with per-image filters ``(N, C, k, k)``; same size out
    (zero padding). For even ``k`` the extra row/column of padding goes to the top/left: ``k // 2``
    before, ``(k - 1) // 2`` after, as MMSegmentation's ``DCM`` pads."""
    n, c, h, w = x.shape
    k = filters.shape[-1]
    before, after = k // 2, (k - 1) // 2
    x = F.pad(x, (before, after, before, after))
    y = F.conv2d(
        x.reshape(1, n * c, h + k - 1, w + k - 1), filters.reshape(n * c, 1, k, k), groups=n * c
    )
    return y.reshape(n, c, h, w)


class DynamicConvModule(nn.Module):
    def __init__(self, filter_size, in_channels, channels, norm="BN", fusion=False):
        super().__init__()
        self.filter_size = filter_size
        self.filter_gen = nn.Conv2d(in_channels, channels, 1)
        self.input_redu = ConvNormAct(in_channels, channels, 1, norm=norm)
        self.post = nn.Sequential(norm_layer(norm, channels), nn.ReLU(inplace=True))
        self.fusion = ConvNormAct(channels, channels, 1, norm=norm) if fusion else nn.Identity()

    def forward(self, x):
        filters = self.filter_gen(F.adaptive_avg_pool2d(x, self.filter_size))
        y = dynamic_depthwise_conv(self.input_redu(x), filters)
        return self.fusion(self.post(y))


@register_decode_head("dmnet", filter_sizes="FILTER_SIZES")
class DMHead(DecodeHead):
    default_in_features = ("res5",)

    def __init__(
        self,
        in_channels,
        num_classes,
        channels=512,
        in_features=(),
        dropout=0.1,
        norm="BN",
        filter_sizes=(1, 3, 5, 7),
        fusion=False,
    ):
        super().__init__(in_channels, num_classes, channels, in_features, dropout, norm)
        cin = self.in_channels[-1]
        self.dcms = nn.ModuleList(
            DynamicConvModule(k, cin, channels, norm, fusion) for k in filter_sizes
        )
        self.bottleneck = ConvNormAct(cin + len(filter_sizes) * channels, channels, 3, norm=norm)
        self.init_weights()

    def forward(self, features):
        x = self.inputs(features)[-1]
        y = self.bottleneck(torch.cat([x] + [m(x) for m in self.dcms], dim=1))
        return self.cls_seg(y)
