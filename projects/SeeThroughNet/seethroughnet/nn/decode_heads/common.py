"""Building blocks shared by the decode heads (plain PyTorch)."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from ..layers import ConvNormAct, resize
from ..weight_init import init_classifier_, init_conv_modules_

__all__ = ["DecodeHead", "PyramidPooling"]


class DecodeHead(nn.Module):
    """Base class: ``in_channels`` maps feature names to channels, ``in_features`` picks the
    inputs (in the order the head expects), the classifier is ``Dropout2d -> 1x1 conv``
    (MMSegmentation's ``BaseDecodeHead.cls_seg``). ``forward(features: dict)`` returns logits at
    the stride of the head's finest input (or a dict with ``"logits"`` and extra outputs).

    Subclasses call :meth:`init_weights` at the end of their ``__init__``: MMSegmentation's
    initialisation (:mod:`seethroughnet.nn.weight_init`)."""

    default_in_features: Sequence[str] = ("res5",)

    def __init__(
        self,
        in_channels: Mapping[str, int],
        num_classes: int,
        channels: int = 512,
        in_features: Sequence[str] = (),
        dropout: float = 0.1,
        norm: str = "BN",
    ):
        super().__init__()
        self.in_features = list(in_features) or list(self.default_in_features)
        missing = [f for f in self.in_features if f not in in_channels]
        if missing:
            raise ValueError(
                f"{type(self).__name__}: features {missing} not among {sorted(in_channels)}"
            )
        self.in_channels = [int(in_channels[f]) for f in self.in_features]
        self.channels = channels
        self.num_classes = num_classes
        self.norm = norm
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def init_weights(self) -> None:
        """Kaiming fan-out for every conv-norm(-ReLU) block, ``N(0, 0.01)`` for the classifier;
        other plain convs keep PyTorch's default (as MMSegmentation)."""
        init_conv_modules_(self)
        init_classifier_(self.conv_seg)

    def cls_seg(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_seg(self.dropout(x))

    def inputs(self, features: Mapping[str, torch.Tensor]):
        return [features[f] for f in self.in_features]


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling module (Zhao et al., CVPR 2017, Sec. 3.2): adaptive average
    pooling to ``b x b`` bins, ``1x1 conv -> norm -> ReLU`` to ``channels``, bilinear up-sampling.
    Returns the list of up-sampled branch outputs (the caller concatenates them with the input)."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        bins=(1, 2, 3, 6),
        norm: str = "BN",
        align_corners: bool = False,
    ):
        super().__init__()
        self.bins = tuple(bins)
        self.align_corners = align_corners
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), ConvNormAct(in_channels, channels, 1, norm=norm))
            for b in self.bins
        )

    def forward(self, x: torch.Tensor):
        size = x.shape[-2:]
        return [resize(stage(x), size, self.align_corners) for stage in self.stages]
