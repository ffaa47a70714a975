"""Decode heads of the seven Table 1 models of SeeThroughNet (CVPR 2022), in plain PyTorch.

Every head takes ``(in_channels: {feature: channels}, num_classes, channels=512, in_features=(),
dropout, norm, **head options)`` and maps a dict of backbone features to logits at the stride of
its finest input (OCRNet: a dict with the logits and its soft-region output). Select one by name
with :func:`build_decode_head`; :data:`DECODE_HEADS` lists the names.

Each head has the layers, widths and initialisation of MMSegmentation's head of the same name (the
paper, Sec. 4.4: "We used the models from MMSegmentation"); ``tests/test_table1_models.py`` checks
the parameter counts against a per-layer derivation from MMSegmentation's code.
"""
from __future__ import annotations

from .ann import ANNHead
from .ccnet import CCHead
from .common import DecodeHead
from .deeplabv3plus import DeepLabV3PlusHead
from .dmnet import DMHead
from .ocr import OCRNetHead
from .psp import PSPHead
from .upernet import UPerHead

__all__ = ["DECODE_HEADS", "build_decode_head", "DecodeHead", "PSPHead", "DeepLabV3PlusHead", "UPerHead",
           "DMHead", "CCHead", "ANNHead", "OCRNetHead"]

#: name -> class, the names used by ``MODEL.DECODE_HEAD.NAME``.
DECODE_HEADS = {
    "psp": PSPHead,
    "deeplabv3plus": DeepLabV3PlusHead,
    "upernet": UPerHead,
    "dmnet": DMHead,
    "ccnet": CCHead,
    "ann": ANNHead,
    "ocr": OCRNetHead,
}


def build_decode_head(name: str, *args, **kwargs) -> DecodeHead:
    """``DECODE_HEADS[name](*args, **kwargs)``; an unknown name raises ``ValueError`` listing them."""
    if name not in DECODE_HEADS:
        raise ValueError(f"unknown decode head {name!r}; valid choices: {', '.join(DECODE_HEADS)}")
    return DECODE_HEADS[name](*args, **kwargs)
