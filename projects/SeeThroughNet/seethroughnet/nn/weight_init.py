"""MMSegmentation's weight initialisation of decode and auxiliary heads, in plain PyTorch.

What MMSegmentation (mmcv / mmengine) does when it builds a head (pretrained backbones are loaded
separately and are not touched here):

* every ``ConvModule`` (conv -> norm -> activation): ``kaiming_normal_`` with ``mode="fan_out"``,
  ``nonlinearity="relu"`` on the conv weight, bias 0; norm weight 1, bias 0 (mmcv
  ``ConvModule.init_weights``, also for a ConvModule without activation);
* the classifier ``conv_seg``: ``N(0, 0.01)``, bias 0 (``BaseDecodeHead`` ``init_cfg`` Normal,
  std 0.01, override ``conv_seg``);
* plain ``nn.Conv2d`` layers outside a ConvModule (attention value projections, criss-cross
  q/k/v, DMNet's filter generator): PyTorch's default;
* ANN's attention output projection (a plain conv): weight and bias 0
  (``SelfAttentionBlock.init_weights``), applied by
  :class:`~seethroughnet.nn.decode_heads.ann.ANNHead`.

In this project a ConvModule is any ``nn.Sequential`` that starts with an ``nn.Conv2d`` followed by
a normalisation layer (``layers.ConvNormAct``, the auxiliary head's first three layers, the OCR
head's conv-BN-ReLU blocks); :func:`init_conv_modules_` finds them by that shape.
"""

from __future__ import annotations

from torch import nn

__all__ = [
    "NORM_TYPES",
    "init_conv_module_",
    "init_classifier_",
    "init_conv_modules_",
    "zero_init_",
]

NORM_TYPES = (nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm)


def init_conv_module_(conv: nn.Conv2d, norm: nn.Module = None) -> None:
    """Kaiming normal (fan-out, ReLU gain) conv weight, zero bias; norm weight 1, bias 0."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    if norm is not None and getattr(norm, "weight", None) is not None:
        nn.init.ones_(norm.weight)
        nn.init.zeros_(norm.bias)


def init_classifier_(conv: nn.Conv2d, std: float = 0.01) -> None:
    """``N(0, std)`` weight, zero bias (MMSegmentation's ``conv_seg``)."""
    nn.init.normal_(conv.weight, mean=0.0, std=std)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def zero_init_(conv: nn.Conv2d) -> None:
    """Weight and bias 0 (mmengine ``constant_init(module, 0)``)."""
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def init_conv_modules_(module: nn.Module) -> int:
    """:func:`init_conv_module_` on every ``nn.Sequential(conv, norm, ...)`` inside ``module``;
    returns how many were initialised."""
    n = 0
    for m in module.modules():
        if (
            isinstance(m, nn.Sequential)
            and len(m) >= 2
            and isinstance(m[0], nn.Conv2d)
            and isinstance(m[1], NORM_TYPES)
        ):
            init_conv_module_(m[0], m[1])
            n += 1
    return n
