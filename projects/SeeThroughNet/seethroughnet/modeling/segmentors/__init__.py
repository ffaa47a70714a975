"""detectron2 glue of the CPP plug-in study: importing this registers the meta-architecture
``CPPSegmentor`` and the backbone ``build_dilated_resnet_backbone``; the decode heads come from the
one registry of :mod:`seethroughnet.nn.decode_heads` (``MODEL.DECODE_HEAD.NAME``)."""

from .cpp_segmentor import CPPSegmentor, build_aux_heads, build_seg_head
from .resnet import DilatedBasicBlock, build_dilated_resnet_backbone

__all__ = [
    "CPPSegmentor",
    "build_seg_head",
    "build_aux_heads",
    "DilatedBasicBlock",
    "build_dilated_resnet_backbone",
]
