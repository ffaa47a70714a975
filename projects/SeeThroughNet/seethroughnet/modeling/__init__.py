"""detectron2 glue: importing this registers the HRNetV2 backbone and the SeeThroughNet
meta-architecture in detectron2's registries."""
from .backbone.hrnet import HRNetV2Backbone, build_hrnetv2_backbone
from .meta_arch.seethroughnet import SeeThroughNetSegmentor

__all__ = ["HRNetV2Backbone", "build_hrnetv2_backbone", "SeeThroughNetSegmentor"]
