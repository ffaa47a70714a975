"""HRFPN: the feature pyramid of HRNet's detectors (Wang et al., "High-Resolution
Representations for Labeling Pixels and Regions", arXiv:1904.04514, Sec. 3 "HRNetV2p"; the
neck mmdetection's HRNet detectors use, ``mmdet/models/necks/hrfpn.py``).

Written for this project from that design, as a detectron2 :class:`Backbone`:

1. every branch of the HRNet encoder (strides 4, 8, 16, 32; 48+96+192+384 = 720 channels for
   W48) is up-sampled bilinearly to the resolution of the first (stride-4) branch and the four
   maps are concatenated;
2. a 1x1 convolution reduces the concatenation to ``out_channels`` (256);
3. the reduced map is average-pooled (or max-pooled) with kernel = stride = 2**i,
   i = 0..num_outs-1, giving ``num_outs`` levels;
4. each level goes through its own 3x3 convolution (``conv_stride`` 1, or 2 as in mmdetection's
   HRNet-FCOS, which halves every level once more).

Outputs are named ``p<log2(stride)>``: ``p2..p6`` (strides 4..64) with ``conv_stride`` 1 for
Faster/Mask R-CNN, ``p3..p7`` (strides 8..128) with ``conv_stride`` 2 for FCOS. Unlike
detectron2's FPN there is no top-down path and no lateral convolution per branch: every level
sees all four branches, including the stride-4 one that CPP supervises. Convolutions have a
bias and no norm or activation (mmdetection's defaults), ``norm`` adds one (then no bias); weights
use Caffe2's Xavier fill, biases zero (both as mmdetection's ``init_weights``).
"""

from __future__ import annotations

import math
from typing import Dict, Sequence

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import Backbone
from torch import nn

__all__ = ["HRFPN", "POOLING_TYPES"]

POOLING_TYPES = ("AVG", "MAX")


class HRFPN(Backbone):
    """See the module docstring. ``bottom_up`` is a detectron2 backbone whose ``in_features``
    outputs have strides ``s, 2s, 4s, ...`` (HRNet: ``res2..res5``)."""

    def __init__(
        self,
        bottom_up: Backbone,
        in_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
        out_channels: int = 256,
        num_outs: int = 5,
        pooling: str = "AVG",
        conv_stride: int = 1,
        norm: str = "",
    ):
        super().__init__()
        if pooling not in POOLING_TYPES:
            raise ValueError(f"MODEL.HRFPN.POOLING must be one of {POOLING_TYPES}, got {pooling!r}")
        if conv_stride not in (1, 2):
            raise ValueError(f"MODEL.HRFPN.CONV_STRIDE must be 1 or 2, got {conv_stride!r}")
        if num_outs < 1:
            raise ValueError(f"MODEL.HRFPN.NUM_OUTS must be >= 1, got {num_outs!r}")
        shapes = bottom_up.output_shape()
        missing = [f for f in in_features if f not in shapes]
        if missing:
            raise ValueError(
                f"MODEL.HRFPN.IN_FEATURES {missing} are not outputs of the encoder {list(shapes)}"
            )
        strides = [shapes[f].stride for f in in_features]
        if any(b != 2 * a for a, b in zip(strides, strides[1:])):
            raise ValueError(
                f"HRFPN needs branches whose strides double, got {dict(zip(in_features, strides))}"
            )
        self.bottom_up = bottom_up
        self.in_features = list(in_features)
        self.pooling = pooling
        self.num_outs = int(num_outs)
        self.conv_stride = int(conv_stride)
        in_channels = sum(shapes[f].channels for f in in_features)
        use_bias = norm == ""
        self.reduction_conv = Conv2d(
            in_channels,
            out_channels,
            kernel_size=1,
            bias=use_bias,
            norm=get_norm(norm, out_channels),
        )
        self.output_convs = nn.ModuleList(
            Conv2d(
                out_channels,
                out_channels,
                kernel_size=3,
                stride=conv_stride,
                padding=1,
                bias=use_bias,
                norm=get_norm(norm, out_channels),
            )
            for _ in range(self.num_outs)
        )
        for conv in [self.reduction_conv, *self.output_convs]:
            weight_init.c2_xavier_fill(conv)
        base = strides[0]
        out_strides = [base * 2**i * conv_stride for i in range(self.num_outs)]
        self.feature_names = [f"p{int(math.log2(s))}" for s in out_strides]
        self.feature_strides = dict(zip(self.feature_names, out_strides))
        self.feature_channels = {k: out_channels for k in self.feature_names}
        # Every pooled level covers a whole number of stride-`base` cells and every output
        # convolution halves an even size: padding to the largest output stride keeps the
        # levels exactly at their nominal strides.
        self.divisibility = max(out_strides[-1], getattr(bottom_up, "size_divisibility", 0) or 0)

    @property
    def size_divisibility(self) -> int:
        return self.divisibility

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        feats = self.bottom_up(x)
        first = feats[self.in_features[0]]
        size = first.shape[-2:]
        parts = [first] + [
            F.interpolate(feats[f], size=size, mode="bilinear", align_corners=False)
            for f in self.in_features[1:]
        ]
        reduced = self.reduction_conv(torch.cat(parts, dim=1))
        pool = F.avg_pool2d if self.pooling == "AVG" else F.max_pool2d
        levels = [reduced] + [
            pool(reduced, kernel_size=2**i, stride=2**i) for i in range(1, self.num_outs)
        ]
        return {
            name: conv(level)
            for name, conv, level in zip(self.feature_names, self.output_convs, levels)
        }

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            k: ShapeSpec(channels=self.feature_channels[k], stride=self.feature_strides[k])
            for k in self.feature_names
        }
