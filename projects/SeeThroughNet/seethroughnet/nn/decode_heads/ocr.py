"""OCRNet head (Yuan, Chen, Wang, "Object-Contextual Representations for Semantic Segmentation",
ECCV 2020), Sec. 3.3 "Architecture": the backbone features (HRNetV2: the four branches up-sampled
to stride 4 and concatenated, :func:`seethroughnet.nn.ocr_head.concat_hrnetv2`; ResNet: the
stride-8 ``res5``) feed (a) the soft object region head -- ``1x1 conv -> norm -> ReLU -> 1x1 conv``
to ``K`` channels (HRNet-OCR), supervised by cross-entropy with weight 0.4 (OCR paper Sec. 3.3:
"the auxiliary loss ... the loss weight is 0.4") -- and (b) the project's
:class:`~seethroughnet.nn.ocr_head.OCRHead` (pixel reps -> object region reps -> object-contextual
reps, mid 512 / key 256) that predicts the final segmentation.

``forward`` returns ``{"logits": final, "extra": {"loss_soft_region": (region logits, 0.4)}}``:
the segmentor adds the extra CE term in training."""

from __future__ import annotations

from torch import nn

from ..layers import ConvNormAct
from ..ocr_head import OCRHead, concat_hrnetv2
from ..weight_init import init_classifier_, init_conv_modules_
from .common import DecodeHead
from .registry import register_decode_head

__all__ = ["OCRNetHead"]


@register_decode_head(
    "ocr",
    key_channels="KEY_CHANNELS",
    soft_region_weight="SOFT_REGION_WEIGHT",
    align_corners="ALIGN_CORNERS",
)
class OCRNetHead(DecodeHead):
    """``in_features``: one feature, or several concatenated at the first one's stride (HRNetV2:
    ``("res2", "res3", "res4", "res5")``). ``channels``: the OCR mid width (512). ``dropout``: the
    ``Dropout2d`` before the OCR classifier (0 = none, MMSegmentation's ``ocrnet_hr18.py``
    ``dropout_ratio=-1``; the HRNet-OCR release uses 0.05). ``align_corners``: of the bilinear
    up-sampling that concatenates the HRNetV2 branches (MMSegmentation and NVIDIA/semantic-
    segmentation: ``False``; HRNet-Semantic-Segmentation's HRNet-OCR: ``True``)."""

    default_in_features = ("res5",)

    def __init__(
        self,
        in_channels,
        num_classes,
        channels=512,
        in_features=(),
        dropout=0.0,
        norm="BN",
        key_channels=256,
        soft_region_channels=0,
        soft_region_weight=0.4,
        align_corners=False,
    ):
        super().__init__(in_channels, num_classes, channels, in_features, 0.0, norm)
        cin = sum(self.in_channels)
        hidden = soft_region_channels or cin  # HRNet-OCR: 720 -> 720 -> K
        self.soft_region = nn.Sequential(
            ConvNormAct(cin, hidden, 1, norm=norm), nn.Conv2d(hidden, num_classes, 1)
        )
        self.ocr = OCRHead(cin, num_classes, channels, key_channels, dropout, norm=norm)
        del self.conv_seg  # the OCRHead has its own classifier
        self.soft_region_weight = soft_region_weight
        self.align_corners = bool(align_corners)
        self.init_weights()

    def init_weights(self) -> None:
        """MMSegmentation's: Kaiming fan-out for the conv-norm-ReLU blocks, ``N(0, 0.01)`` for both
        classifiers (the soft-region ``FCNHead`` and the ``OCRHead`` each have a ``conv_seg``)."""
        init_conv_modules_(self)
        init_classifier_(self.soft_region[-1])
        init_classifier_(self.ocr.classifier)

    def forward(self, features):
        feats = self.inputs(features)
        x = (
            feats[0]
            if len(feats) == 1
            else concat_hrnetv2(features, self.in_features, self.align_corners)
        )
        regions = self.soft_region(x)
        out = self.ocr(x, regions)
        return {
            "logits": out["logits"],
            "extra": {"loss_soft_region": (regions, self.soft_region_weight)},
        }
