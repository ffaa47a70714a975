"""detectron2 glue of the CPP plug-in study: importing this registers the meta-architecture
``CPPSegmentor``, the backbone ``build_dilated_resnet_backbone`` and the decode heads in
``SEG_HEAD_REGISTRY``."""
from .cpp_segmentor import SEG_HEAD_REGISTRY, CPPSegmentor, build_aux_heads, build_seg_head
from .resnet import DilatedBasicBlock, build_dilated_resnet_backbone

__all__ = ["CPPSegmentor", "SEG_HEAD_REGISTRY", "build_seg_head", "build_aux_heads", "DilatedBasicBlock",
           "build_dilated_resnet_backbone"]
