"""HRNetV2 as a detectron2 backbone: the four branch outputs of
:class:`seethroughnet.nn.hrnet.HRNetV2Encoder` as named features ``res2..res5`` (strides
4, 8, 16, 32) with their ``ShapeSpec``."""

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone

from ...nn.hrnet import HRNetV2Encoder
from ...nn.options import EncoderOptions

__all__ = ["HRNetV2Backbone", "build_hrnetv2_backbone"]


class HRNetV2Backbone(Backbone):
    def __init__(self, encoder: HRNetV2Encoder, out_features=("res2", "res3", "res4", "res5")):
        super().__init__()
        self.encoder = encoder
        unknown = [f for f in out_features if f not in encoder.channels]
        if unknown:
            raise ValueError(
                f"MODEL.HRNET.OUT_FEATURES: unknown {unknown}; valid: {sorted(encoder.channels)}"
            )
        self.feature_names = list(out_features)
        self.feature_channels = {k: encoder.channels[k] for k in self.feature_names}
        self.feature_strides = {k: encoder.strides[k] for k in self.feature_names}

    def forward(self, x):
        features = self.encoder(x)
        return {k: features[k] for k in self.feature_names}

    def output_shape(self):
        return {
            k: ShapeSpec(channels=self.feature_channels[k], stride=self.feature_strides[k])
            for k in self.feature_names
        }

    @property
    def size_divisibility(self):
        return 32


@BACKBONE_REGISTRY.register()
def build_hrnetv2_backbone(cfg, input_shape=None):
    """``MODEL.BACKBONE.NAME: build_hrnetv2_backbone``: the encoder of
    :class:`~seethroughnet.nn.options.EncoderOptions` (``MODEL.HRNET.*``,
    ``MODEL.BACKBONE.FREEZE_AT``, ``MODEL.WEIGHTS_TRUSTED``), as SeeThroughNet builds it."""
    options = EncoderOptions.from_cfg(cfg)
    return HRNetV2Backbone(options.build(), options.out_features)
