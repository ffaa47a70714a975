"""Decode heads of the seven Table 1 models of SeeThroughNet (CVPR 2022), in plain PyTorch.

Every head takes ``(in_channels: {feature: channels}, num_classes, channels=512, in_features=(),
dropout, norm, **head options)`` and maps a dict of backbone features to logits at the stride of
its finest input (OCRNet: a dict with the logits and its soft-region output). Select one by name
with :func:`build_decode_head`; :data:`DECODE_HEADS` lists the names. Each head registers itself,
and the config keys of its options, with :func:`register_decode_head` where it is defined.

Each head has the layers, widths and initialisation of MMSegmentation's head of the same name (the
paper, Sec. 4.4: "We used the models from MMSegmentation");
``tests/modeling/test_table1_models.py`` checks the parameter counts against a per-layer
derivation from MMSegmentation's code.
"""

from __future__ import annotations

from .ann import ANNHead
from .ccnet import CCHead
from .common import DecodeHead
from .deeplabv3plus import DeepLabV3PlusHead
from .dmnet import DMHead
from .ocr import OCRNetHead
from .psp import PSPHead
from .registry import DECODE_HEADS, build_decode_head, register_decode_head
from .upernet import UPerHead

__all__ = [
    "DECODE_HEADS",
    "build_decode_head",
    "register_decode_head",
    "DecodeHead",
    "PSPHead",
    "DeepLabV3PlusHead",
    "UPerHead",
    "DMHead",
    "CCHead",
    "ANNHead",
    "OCRNetHead",
]
