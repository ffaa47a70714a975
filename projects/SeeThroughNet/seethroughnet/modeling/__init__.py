"""detectron2 glue: importing this registers the HRNetV2 backbone, the SeeThroughNet
meta-architecture, and the CPP plug-in segmentor (``CPPSegmentor``, its decode heads and the
dilated ResNet backbone) in detectron2's registries."""

from . import segmentors  # noqa: F401  (CPPSegmentor, decode heads, dilated ResNet)
from .backbone.hrnet import HRNetV2Backbone, build_hrnetv2_backbone
from .meta_arch.seethroughnet import SeeThroughNetSegmentor

__all__ = ["HRNetV2Backbone", "build_hrnetv2_backbone", "SeeThroughNetSegmentor"]
