"""A dilated ResNet backbone for the CPP plug-in models: detectron2's ``ResNet`` with
``MODEL.RESNETS.RES4_DILATION`` / ``RES5_DILATION`` for every depth, i.e. also the basic-block
ResNet-18/34 (detectron2's ``BasicBlock`` has no dilation). With dilations (2, 4) the output
stride is 8 (the "dilated ResNet" of PSPNet / DeepLab / MMSegmentation's ``-d8`` models), (1, 2)
gives 16, (1, 1) 32 (MMSegmentation's UPerNet: strides 4/8/16/32).

* ``STEM_TYPE: deeplab`` with ``STEM_OUT_CHANNELS: 64`` is the ResNetV1c deep stem of
  MMSegmentation (three 3x3 convs 32-32-64).
* ``MODEL.RESNETS.CONTRACT_DILATION: True`` is MMSegmentation's ``contract_dilation`` (ResNetV1c in
  every ``configs/_base_/models/*_r50*.py``; torchvision's ``replace_stride_with_dilation`` does the
  same): the first block of a stage with dilation ``d > 1`` uses ``d // 2``, the other blocks ``d``.
  A ``RES5_MULTI_GRID`` other than all ones replaces it for res5 (MMSegmentation: a multi-grid sets
  every block's dilation, the first included).
* ``MODEL.RESNETS.AVG_DOWN: True``: the ResNet-D shortcut (:class:`AvgDownShortcut`), needed by
  timm's ``resnet101d`` ImageNet weights; off for torchvision / timm ``resnet101`` / MMCV ``v1c``.
* ``MODEL.RESNETS.IMAGENET_CHECKPOINT``: a local ImageNet file loaded (strictly) at build time by
  :func:`~seethroughnet.modeling.segmentors.imagenet_resnet.load_imagenet_resnet`;
  ``IMAGENET_LAYOUT`` ``auto`` | ``torchvision`` | ``timm`` | ``timm_d`` | ``mmcv_v1c``.
* The basic block (ResNet-18/34) dilates only its first 3x3 conv, the second keeps dilation 1, as
  MMSegmentation's ``BasicBlock``.
"""

import logging
from typing import Dict

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from detectron2.layers import Conv2d, get_norm
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone.resnet import BasicStem, BottleneckBlock, CNNBlockBase, ResNet

from ...nn.activation_checkpoint import checkpoint_segment

try:  # detectron2's DeepLab project (installed with this project)
    from detectron2.projects.deeplab.resnet import DeepLabStem
except ImportError:  # pragma: no cover - same stem, for a detectron2 without the projects

    class DeepLabStem(CNNBlockBase):
        """Three 3x3 convs (out/2, out/2, out; the first with stride 2) + 3x3 max-pool, stride 4."""

        def __init__(self, in_channels=3, out_channels=128, norm="BN"):
            super().__init__(in_channels, out_channels, 4)
            self.conv1 = Conv2d(
                in_channels,
                out_channels // 2,
                3,
                stride=2,
                padding=1,
                bias=False,
                norm=get_norm(norm, out_channels // 2),
            )
            self.conv2 = Conv2d(
                out_channels // 2,
                out_channels // 2,
                3,
                padding=1,
                bias=False,
                norm=get_norm(norm, out_channels // 2),
            )
            self.conv3 = Conv2d(
                out_channels // 2,
                out_channels,
                3,
                padding=1,
                bias=False,
                norm=get_norm(norm, out_channels),
            )

        def forward(self, x):
            x = F.relu_(self.conv3(F.relu_(self.conv2(F.relu_(self.conv1(x))))))
            return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


__all__ = [
    "AvgDownShortcut",
    "DilatedBasicBlock",
    "build_dilated_resnet_backbone",
    "stage_dilations",
]


class AvgDownShortcut(Conv2d):
    """The shortcut of a strided block in a ResNet-D (timm ``resnet101d``, MMCV ``ResNetV1d``;
    ``MODEL.RESNETS.AVG_DOWN``): ``stride x stride`` average pooling (``ceil_mode``, padding not
    counted), then a 1x1 conv with stride 1 and its norm. A block with stride 1 (res2, and the
    dilated res4/res5) has no pooling, as MMSegmentation's ``ResLayer(avg_down=True)``. The
    parameter names are a strided ``Conv2d`` shortcut's (``shortcut.weight``,
    ``shortcut.norm.*``)."""

    avg_down = True

    def __init__(self, in_channels, out_channels, stride, norm="BN"):
        super().__init__(
            in_channels, out_channels, 1, stride=1, bias=False, norm=get_norm(norm, out_channels)
        )
        self.pool_stride = stride
        weight_init.c2_msra_fill(self)

    def forward(self, x):
        if self.pool_stride > 1:
            x = F.avg_pool2d(
                x, self.pool_stride, self.pool_stride, ceil_mode=True, count_include_pad=False
            )
        return super().forward(x)


class DilatedBasicBlock(CNNBlockBase):
    """ResNet basic block (two 3x3 convs) whose first conv has a stride and a dilation; the second
    conv is undilated (MMSegmentation's ``BasicBlock``)."""

    def __init__(self, in_channels, out_channels, *, stride=1, dilation=1, norm="BN"):
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = None
        if in_channels != out_channels or stride != 1:
            self.shortcut = Conv2d(
                in_channels,
                out_channels,
                1,
                stride=stride,
                bias=False,
                norm=get_norm(norm, out_channels),
            )
        self.conv1 = Conv2d(
            in_channels,
            out_channels,
            3,
            stride=stride,
            padding=dilation,
            dilation=dilation,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        self.conv2 = Conv2d(
            out_channels, out_channels, 3, padding=1, bias=False, norm=get_norm(norm, out_channels)
        )

    def forward(self, x):
        out = self.conv2(F.relu_(self.conv1(x)))
        return F.relu_(out + (x if self.shortcut is None else self.shortcut(x)))


def stage_dilations(dilation, multi_grid, contract_dilation):
    """Dilation of every block of one stage: ``dilation * g`` for the multi-grid factors ``g``;
    with ``contract_dilation`` and no multi-grid (all ``g == 1``) the first block of a dilated
    stage (``dilation > 1``) gets ``dilation // 2`` (MMSegmentation's ``ResLayer``)."""
    dils = [dilation * g for g in multi_grid]
    if contract_dilation and dilation > 1 and all(g == 1 for g in multi_grid):
        dils[0] = dilation // 2
    return dils


def checkpointed_resnet_features(resnet: ResNet, x: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The features of detectron2's ``ResNet.forward(x)`` (``stem``, ``res2``.. as its
    ``output_shape()`` names them) with activation checkpointing: the stem and every residual
    block are one segment each (:func:`seethroughnet.nn.activation_checkpoint.checkpoint_segment`:
    BatchNorm statistics updated once). Only the segments' inputs are kept for backward."""
    names = set(resnet.output_shape())
    outputs = {}
    x = checkpoint_segment(resnet.stem, x, modules=[resnet.stem])
    if "stem" in names:
        outputs["stem"] = x
    for name, stage in zip(resnet.stage_names, resnet.stages):
        for block in stage:
            x = checkpoint_segment(block, x, modules=[block])
        if name in names:
            outputs[name] = x
    return outputs


@BACKBONE_REGISTRY.register()
def build_dilated_resnet_backbone(cfg, input_shape):
    r = cfg.MODEL.RESNETS
    norm = r.NORM
    if r.STEM_TYPE == "deeplab":
        stem = DeepLabStem(input_shape.channels, r.STEM_OUT_CHANNELS, norm=norm)
    elif r.STEM_TYPE == "basic":
        stem = BasicStem(input_shape.channels, r.STEM_OUT_CHANNELS, norm=norm)
    else:
        raise ValueError(f"MODEL.RESNETS.STEM_TYPE {r.STEM_TYPE!r}; valid choices: basic, deeplab")
    blocks = {
        18: [2, 2, 2, 2],
        34: [3, 4, 6, 3],
        50: [3, 4, 6, 3],
        101: [3, 4, 23, 3],
        152: [3, 8, 36, 3],
    }
    if r.DEPTH not in blocks:
        raise ValueError(f"MODEL.RESNETS.DEPTH {r.DEPTH}; valid choices: {sorted(blocks)}")
    basic = r.DEPTH in (18, 34)
    if basic and r.RES2_OUT_CHANNELS != 64:
        raise ValueError("ResNet-18/34 need MODEL.RESNETS.RES2_OUT_CHANNELS 64")
    in_ch, out_ch = r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS
    bottleneck = r.NUM_GROUPS * r.WIDTH_PER_GROUP
    max_stage = max({"res2": 2, "res3": 3, "res4": 4, "res5": 5}[f] for f in r.OUT_FEATURES)
    stages = []
    for idx, stage in enumerate(range(2, max_stage + 1)):
        dilation = {4: r.RES4_DILATION, 5: r.RES5_DILATION}.get(stage, 1)
        n = blocks[r.DEPTH][idx]
        first_stride = 1 if idx == 0 or dilation > 1 else 2
        kw = dict(
            num_blocks=n,
            stride_per_block=[first_stride] + [1] * (n - 1),
            in_channels=in_ch,
            out_channels=out_ch,
            norm=norm,
        )
        grid = list(r.RES5_MULTI_GRID) if stage == 5 else [1] * n
        if len(grid) != n:
            raise ValueError(f"MODEL.RESNETS.RES5_MULTI_GRID needs {n} values, got {grid}")
        kw["dilation_per_block"] = stage_dilations(dilation, grid, r.CONTRACT_DILATION)
        if basic:
            kw["block_class"] = DilatedBasicBlock
        else:
            kw.update(
                block_class=BottleneckBlock,
                bottleneck_channels=bottleneck,
                stride_in_1x1=r.STRIDE_IN_1X1,
                num_groups=r.NUM_GROUPS,
            )
            bottleneck *= 2
        blocks_ = ResNet.make_stage(**kw)
        if getattr(r, "AVG_DOWN", False):
            for b in blocks_:
                if b.shortcut is not None:
                    b.shortcut = AvgDownShortcut(b.in_channels, b.out_channels, b.stride, norm)
        stages.append(blocks_)
        in_ch, out_ch = out_ch, out_ch * 2
    model = ResNet(stem, stages, out_features=r.OUT_FEATURES)
    path = getattr(r, "IMAGENET_CHECKPOINT", "")
    if path:  # a local ImageNet file (imagenet_resnet.py): torchvision / timm / MMCV names, strict
        from .imagenet_resnet import load_imagenet_resnet

        report = load_imagenet_resnet(
            model,
            path,
            getattr(r, "IMAGENET_LAYOUT", "auto"),
            allow_partial=cfg.MODEL.WEIGHTS_ALLOW_PARTIAL,
            trusted=cfg.MODEL.WEIGHTS_TRUSTED,
        )
        logging.getLogger(__name__).info(
            "MODEL.RESNETS.IMAGENET_CHECKPOINT %s: %s", path, report.summary()
        )
    return model.freeze(cfg.MODEL.BACKBONE.FREEZE_AT)
