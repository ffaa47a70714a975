"""Config keys of the CPP plug-in study (SeeThroughNet, CVPR 2022, Table 1 / Table 2 / Figure 5):
any decode head + training-only auxiliary heads with CPP targets, as the meta-architecture
``CPPSegmentor`` (:mod:`seethroughnet.modeling.segmentors`)."""
from detectron2.config import CfgNode as CN

from .config import add_seethroughnet_config

__all__ = ["add_cpp_plugin_config", "build_cpp_config"]


def add_cpp_plugin_config(cfg):
    """Add the project's keys (:func:`add_seethroughnet_config`) and ``MODEL.DECODE_HEAD``,
    ``MODEL.CPP_AUX`` and ``MODEL.RESNETS.BLOCK`` (idempotent)."""
    if not hasattr(cfg.MODEL, "HRNET"):
        add_seethroughnet_config(cfg)
    if hasattr(cfg.MODEL, "CPP_AUX"):
        return cfg
    cfg.MODEL.DECODE_HEAD = CN()
    # psp | deeplabv3plus | upernet | dmnet | ccnet | ann | ocr (seethroughnet.nn.decode_heads)
    cfg.MODEL.DECODE_HEAD.NAME = "psp"
    cfg.MODEL.DECODE_HEAD.IN_FEATURES = []  # [] = the head's default (e.g. psp: res5; deeplabv3plus: res2, res5)
    cfg.MODEL.DECODE_HEAD.CHANNELS = 512  # MMSegmentation's decode-head width
    cfg.MODEL.DECODE_HEAD.DROPOUT = 0.1  # MMSegmentation's dropout_ratio before the classifier
    cfg.MODEL.DECODE_HEAD.NORM = "BN"
    cfg.MODEL.DECODE_HEAD.LOSS_WEIGHT = 1.0  # CE on the up-sampled logits
    # head options (only the chosen head reads its own)
    cfg.MODEL.DECODE_HEAD.POOL_SCALES = [1, 2, 3, 6]  # PSPNet / UPerNet pyramid bins
    cfg.MODEL.DECODE_HEAD.ASPP_DILATIONS = [12, 24, 36]  # DeepLabV3+ at output stride 8
    cfg.MODEL.DECODE_HEAD.LOW_LEVEL_CHANNELS = 48  # DeepLabV3+ decoder projection
    cfg.MODEL.DECODE_HEAD.SEPARABLE = True  # DeepLabV3+ depthwise-separable ASPP/decoder
    cfg.MODEL.DECODE_HEAD.FILTER_SIZES = [1, 3, 5, 7]  # DMNet DCMs
    cfg.MODEL.DECODE_HEAD.RECURRENCE = 2  # CCNet RCCA loops R
    cfg.MODEL.DECODE_HEAD.PROJECT_CHANNELS = 256  # ANN key/query width
    cfg.MODEL.DECODE_HEAD.KEY_POOL_SCALES = [1, 3, 6, 8]  # ANN pyramid sampling
    cfg.MODEL.DECODE_HEAD.KEY_CHANNELS = 256  # OCR key width
    cfg.MODEL.DECODE_HEAD.SOFT_REGION_WEIGHT = 0.4  # OCRNet auxiliary (soft region) CE weight

    cfg.MODEL.CPP_AUX = CN()
    cfg.MODEL.CPP_AUX.ENABLED = True
    # the features that get an auxiliary head (the paper's Table 1: the four stages)
    cfg.MODEL.CPP_AUX.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    # -1: all of IN_FEATURES; n in 0..len(IN_FEATURES): the first n features of ADD_ORDER that are in
    # IN_FEATURES (Figure 5's x axis)
    cfg.MODEL.CPP_AUX.NUM_HEADS = -1
    # the order in which NUM_HEADS adds heads: res4 first (MMSegmentation's single FCN auxiliary head
    # sits on res4, in_index=2), then the others from the deepest down (the paper does not say)
    cfg.MODEL.CPP_AUX.ADD_ORDER = ["res4", "res5", "res3", "res2"]
    cfg.MODEL.CPP_AUX.LOSS = "cpp_kl"  # cpp_kl | upsample_ce | nearest_ce
    # one per head of IN_FEATURES (in that order) or one for all (MMSegmentation aux weight 0.4)
    cfg.MODEL.CPP_AUX.WEIGHTS = [0.4]
    cfg.MODEL.CPP_AUX.HIDDEN_CHANNELS = 256  # MMSegmentation FCN auxiliary head width
    # Dropout2d before the 1x1 classifier of every auxiliary head: 0 = 3x3 conv -> BN -> ReLU -> 1x1
    # conv (the shape of the paper's coarse heads, Sec. 3.2); 0.1 = MMSegmentation's FCNHead dropout_ratio
    cfg.MODEL.CPP_AUX.DROPOUT = 0.0
    cfg.MODEL.CPP_AUX.KL_DIRECTION = "target_to_prediction"
    cfg.MODEL.CPP_AUX.IGNORE_MODE = "renormalize"

    # Dilated ResNet backbone "build_dilated_resnet_backbone" (modeling/segmentors/resnet.py) reads
    # detectron2's MODEL.RESNETS.* and the DeepLab keys (RES4_DILATION, RES5_MULTI_GRID, STEM_TYPE):
    # DEPTH 18/34 (basic blocks) or 50/101/152; RES4_DILATION 2 + RES5_DILATION 4 = output stride 8.
    # Their defaults are left untouched (other models share them); Base-CPP-Plugin.yaml sets OS8.
    # CONTRACT_DILATION: the first block of a dilated stage uses half the dilation (MMSegmentation's
    # ResNetV1c contract_dilation=True); off here (detectron2's behaviour), on in Base-CPP-Plugin.yaml.
    if not hasattr(cfg.MODEL.RESNETS, "CONTRACT_DILATION"):
        cfg.MODEL.RESNETS.CONTRACT_DILATION = False
    # ImageNet initialisation from a local file (modeling/segmentors/imagenet_resnet.py), loaded strictly
    # when the backbone is built (MODEL.WEIGHTS_ALLOW_PARTIAL / MODEL.WEIGHTS_TRUSTED apply to it too).
    # IMAGENET_LAYOUT: auto | torchvision | timm | timm_d (resnet101d) | mmcv_v1c (MMSegmentation's
    # resnet101_v1c). The backbone must be the file's variant: mmcv_v1c / timm_d need STEM_TYPE deeplab
    # (+ STEM_OUT_CHANNELS 64), torchvision / timm need STEM_TYPE basic, timm_d needs AVG_DOWN True.
    if not hasattr(cfg.MODEL.RESNETS, "IMAGENET_CHECKPOINT"):
        cfg.MODEL.RESNETS.IMAGENET_CHECKPOINT = ""
        cfg.MODEL.RESNETS.IMAGENET_LAYOUT = "auto"
        # ResNet-D shortcut: average-pool then 1x1 conv in the strided blocks (timm resnet101d)
        cfg.MODEL.RESNETS.AVG_DOWN = False
    return cfg


def build_cpp_config(config_file=None, opts=(), *, allow_unsafe=False):
    """:func:`seethroughnet.engine.build_config`, which includes the CPP plug-in keys."""
    from .engine import build_config

    return build_config(config_file, opts, allow_unsafe=allow_unsafe)
