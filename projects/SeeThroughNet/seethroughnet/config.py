"""Every config key of the project, added by one function, and the function that builds a config.

:func:`add_seethroughnet_config` adds, with defaults, the keys of

* SeeThroughNet (``MODEL.HRNET``, ``MODEL.SEE_THROUGH``, ``TEST.SEE_THROUGH``; paper Sec. 3),
* the CPP plug-in study (``MODEL.DECODE_HEAD``, ``MODEL.CPP_AUX``, the dilated ResNet's
  ``MODEL.RESNETS`` extras; paper Tables 1-2, Figure 5),
* checkpoint safety and training guards shared by all of them,

in the manner of detectron2's ``projects/DeepLab/deeplab/config.py``. The detection transfer
(paper Table 5) adds its own keys with ``transfer/config.py``'s ``add_transfer_config``, as
detectron2's PointRend and DeepLab projects do; this package never imports ``transfer``. The YAML
files under ``projects/SeeThroughNet/configs`` set the keys with a comment saying where each value
comes from. :func:`build_config` merges a file and ``KEY VALUE`` overrides into it; an unknown key
is an error naming the file (or the override) and the key.
"""

import logging
import os

import torch
from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

# the meta-architectures, backbones and heads a config of this project can name, registered with
# detectron2 so that build_model(build_config(...)) works wherever the config was built
from . import modeling  # noqa: F401  (registration only)
from .utils.safe_load import merge_config_file

__all__ = ["add_seethroughnet_config", "build_config"]


def add_seethroughnet_config(cfg):
    """Add every key of the project to ``cfg`` (a fresh ``get_cfg()``) and return it."""
    _add_seethroughnet_keys(cfg)
    _add_mmseg_pipeline_keys(cfg)
    _add_nvidia_pipeline_keys(cfg)
    _add_class_uniform_keys(cfg)
    _add_cpp_plugin_keys(cfg)
    _add_safety_keys(cfg)
    return cfg


def build_config(config_file=None, opts=(), *, allow_unsafe=False, extra=()):
    """A config with the project's keys, merged from ``config_file`` and ``KEY VALUE`` opts.

    ``extra``: functions ``f(cfg)`` that add more keys before the merge (a project built on this
    one: ``transfer.config.add_transfer_config`` for the detection transfer's configs).

    The file and its ``_BASE_`` files are read with safe YAML only (``UnsafeConfigError`` for a
    Python tag) unless ``allow_unsafe`` (``--allow-unsafe-config``). On a machine without a GPU a
    ``cuda`` ``MODEL.DEVICE`` becomes ``cpu`` with a warning.
    """
    cfg = add_seethroughnet_config(get_cfg())
    for add_keys in extra:
        add_keys(cfg)
    hint = (
        "see projects/SeeThroughNet/seethroughnet/config.py and detectron2's config/defaults.py "
        "for the keys"
    )
    if config_file:
        if not os.path.isfile(config_file):
            raise FileNotFoundError(f"config file {config_file} does not exist")
        try:
            merge_config_file(cfg, config_file, allow_unsafe=allow_unsafe)
        except KeyError as e:  # "Non-existent config key: X"
            raise KeyError(f"{config_file}: {e.args[0]} ({hint})") from None
    try:
        cfg.merge_from_list(list(opts))
    except AssertionError as e:  # yacs reports an unknown command-line key by an assertion
        raise KeyError(f"command-line override: {e} ({hint})") from None
    if not torch.cuda.is_available() and cfg.MODEL.DEVICE.startswith("cuda"):
        logging.getLogger(__name__).warning("no GPU is available: MODEL.DEVICE set to cpu")
        cfg.MODEL.DEVICE = "cpu"
    return cfg


def _add_seethroughnet_keys(cfg):
    """SeeThroughNet (paper Sec. 3): encoder, See-Through decoder, OCR head, objective,
    inference."""
    # Poly learning-rate schedule and its keys (SOLVER.POLY_LR_POWER, ...), as in detectron2's
    # DeepLab project; also INPUT.CROP.SINGLE_CATEGORY_MAX_AREA and SOLVER.LR_SCHEDULER_NAME.
    from detectron2.projects.deeplab import add_deeplab_config

    add_deeplab_config(cfg)
    # SOLVER.LR_SCHEDULER_NAME "MMEnginePolyLR" (seethroughnet/lr_schedule.py): MMEngine's PolyLR,
    # lr = (BASE_LR - POLY_LR_MIN) * (1 - iter / (MAX_ITER - 1)) ** POLY_LR_POWER + POLY_LR_MIN
    # (MMSegmentation's schedule_*.py: eta_min=1e-4). Read by MMEnginePolyLR only (0 elsewhere).
    cfg.SOLVER.POLY_LR_MIN = 0.0

    # HRNetV2 encoder (timm's HRNet), registered as detectron2 backbone "build_hrnetv2_backbone".
    cfg.MODEL.HRNET = CN()
    cfg.MODEL.HRNET.VARIANT = "hrnet_w48"  # hrnet_w48 (paper) | hrnet_w18 | hrnet_w18_small_v2
    # optional local ImageNet checkpoint file (timm or official HRNet release layout)
    cfg.MODEL.HRNET.CHECKPOINT = ""
    cfg.MODEL.HRNET.NORM = "BN"  # BN | SyncBN | FrozenBN
    cfg.MODEL.HRNET.OUT_FEATURES = ["res2", "res3", "res4", "res5"]  # strides 4, 8, 16, 32
    # Up-sampling of the lower branches in the HRNet fuse layers: "bilinear" = the segmentation
    # HRNet (MMSegmentation mmseg/models/backbones/hrnet.py HRModule; the default, because every
    # model the project trains on this encoder is a segmentation model or, in Table 5, loads one's
    # encoder) | "nearest" = timm's ImageNet classification HRNet unchanged. Same parameters
    # either way; ImageNet checkpoints load into both.
    cfg.MODEL.HRNET.FUSE_UPSAMPLE = "bilinear"
    # align_corners of the bilinear fuse: False = MMSegmentation's HRModule;
    # HRNet-Semantic-Segmentation's HRNet-OCR uses True (its README)
    cfg.MODEL.HRNET.FUSE_ALIGN_CORNERS = False

    cfg.MODEL.SEE_THROUGH = CN()
    # See-Through decoder (Sec. 3.2, Fig. 4, Eq. 3)
    # hidden width of the coarse heads (0: the branch width)
    cfg.MODEL.SEE_THROUGH.DECODER_CHANNELS = 0
    # hidden width of the attention-mask generators
    cfg.MODEL.SEE_THROUGH.DECODER_ATTENTION_CHANNELS = 256
    # norm of the decoder / OCR / attention heads: BN | SyncBN
    cfg.MODEL.SEE_THROUGH.HEAD_NORM = "BN"
    cfg.MODEL.SEE_THROUGH.USE_SCALE_ATTENTION = True  # Table 4: off = sum of up-sampled maps
    # Auxiliary (decoder) losses at 1/16, 1/8, 1/4 of both passes (Eq. 6):
    # "cpp_kl" (the paper), "upsample_ce" (Table 4 "CPP off" baseline) or "nearest_ce".
    cfg.MODEL.SEE_THROUGH.AUX_LOSS = "cpp_kl"
    # Which maps carry them: "coarse" (the coarse heads' X'_S of Sec. 3.2, the paper's notation) or
    # "aggregated" (the maps after the Eq. 3 aggregation). docs/seethroughnet_model.md says why.
    cfg.MODEL.SEE_THROUGH.CPP_ON = "coarse"
    cfg.MODEL.SEE_THROUGH.AUX_LOSS_WEIGHTS = [1.0, 1.0, 1.0]  # at 1/16, 1/8, 1/4
    # "target_to_prediction" or "prediction_to_target" (the literal Eq. 2)
    cfg.MODEL.SEE_THROUGH.KL_DIRECTION = "target_to_prediction"
    cfg.MODEL.SEE_THROUGH.IGNORE_MODE = "renormalize"  # how CPP targets treat the ignore channel
    # OCR head (Yuan et al.), Sec. 3.2
    cfg.MODEL.SEE_THROUGH.OCR_MID_CHANNELS = 512
    cfg.MODEL.SEE_THROUGH.OCR_KEY_CHANNELS = 256
    cfg.MODEL.SEE_THROUGH.OCR_DROPOUT = 0.05
    # Two-resolution training merged by attention (Eq. 4, after Tao et al.)
    cfg.MODEL.SEE_THROUGH.TRAIN_SCALES = [0.5, 1.0]  # or [1.0]: single-resolution training
    # hidden width of Tao et al.'s attention head
    cfg.MODEL.SEE_THROUGH.SCALE_ATTENTION_CHANNELS = 256
    # Objective (Eqs. 5 and 7)
    # Eq. 5: RMI on the merged output, as the RMI reference code computes it (nn/rmi_loss.py).
    # Defaults = NVIDIA/semantic-segmentation's RMILoss, which the paper's recipe [41] trains with;
    # POOL "max" + POOL_STRIDE 3 = ZJULearning/RMI's defaults.
    cfg.MODEL.SEE_THROUGH.RMI = CN()
    cfg.MODEL.SEE_THROUGH.RMI.WEIGHT = 1.0  # weight of the RMI term in the total loss (Eq. 7)
    cfg.MODEL.SEE_THROUGH.RMI.LAMBDA = 0.5  # lambda between the BCE and the RMI parts (Eq. 5)
    cfg.MODEL.SEE_THROUGH.RMI.RADIUS = 3  # R: R x R neighbourhoods
    cfg.MODEL.SEE_THROUGH.RMI.POOL = "avg"  # "avg" | "max": down-sampling before the neighbourhoods
    cfg.MODEL.SEE_THROUGH.RMI.POOL_STRIDE = 4  # pooling kernel = stride (1: none)
    # "sum" (RMI Eq. 16, both references) | "mean"
    cfg.MODEL.SEE_THROUGH.RMI.CLASS_REDUCTION = "sum"
    # Eq. 7: gamma times a per-pass loss on X_1.0 and up-sampled X_0.5
    cfg.MODEL.SEE_THROUGH.CE_WEIGHT = 0.05  # gamma
    # "ce" (softmax, the paper's L_ce) | "bce" ([41]'s code: RMI with RMI off)
    cfg.MODEL.SEE_THROUGH.PER_SCALE_LOSS = "ce"
    # Not in the paper: activation checkpointing of the training passes, any of "encoder" (HRNet,
    # one segment per HRNet module), "decoder" (See-Through decoder), "ocr" (HRNetV2 concatenation
    # + OCR head). Their activations are recomputed in backward: less memory, about one more
    # forward in time; outputs, gradients and BatchNorm statistics unchanged, no state added
    # (nn/activation_checkpoint.py). [] = off.
    cfg.MODEL.SEE_THROUGH.CHECKPOINT_ACTIVATIONS = []

    # Inference (Sec. 4): scales, flip, merge, whole-image or sliding-window
    cfg.TEST.SEE_THROUGH = CN()
    cfg.TEST.SEE_THROUGH.SCALES = [1.0]  # the paper: [0.5, 1.0, 2.0] with flipping
    cfg.TEST.SEE_THROUGH.FLIP = False
    cfg.TEST.SEE_THROUGH.MERGE = "attention"  # "attention" (hierarchical, Tao et al.) | "average"
    cfg.TEST.SEE_THROUGH.MODE = "whole"  # "whole" | "slide"
    cfg.TEST.SEE_THROUGH.CROP_SIZE = [1024, 1024]  # (h, w) of a sliding window
    cfg.TEST.SEE_THROUGH.STRIDE = [512, 512]

    # Dataset mapper
    cfg.INPUT.COLOR_AUG = False  # photometric jitter in training


def _add_mmseg_pipeline_keys(cfg):
    """MMSegmentation 1.x's data pipeline and test modes (the Table 1 models; paper Sec. 4.4: "We
    used the models from MMSegmentation"): ``INPUT.PIPELINE "mmseg"`` replaces detectron2's
    ResizeShortestEdge / crop / flip / colour-jitter recipe (``INPUT.MIN_SIZE_*``,
    ``INPUT.COLOR_AUG``: not read then) by seethroughnet/data/transforms/mmseg_pipeline.py. The
    defaults are MMSegmentation's Cityscapes values (configs/_base_/datasets/cityscapes.py);
    INPUT.CROP.SIZE / SINGLE_CATEGORY_MAX_AREA are its RandomCrop crop_size / cat_max_ratio."""
    # "detectron2" (every config but Table 1's) | "mmseg"
    cfg.INPUT.PIPELINE = "detectron2"
    # RandomResize(scale, ratio_range, keep_ratio=True) in training, Resize(scale, keep_ratio=True)
    # in test: r ~ U[lo, hi) scales both numbers of the scale; the larger bounds the image's longer
    # side, the smaller its shorter side (mmcv imrescale)
    cfg.INPUT.RESIZE = CN()
    cfg.INPUT.RESIZE.TRAIN_SCALE = (2048, 1024)
    cfg.INPUT.RESIZE.RATIO_RANGE = (0.5, 2.0)
    cfg.INPUT.RESIZE.TEST_SCALE = (2048, 1024)
    cfg.INPUT.FLIP_PROB = 0.5  # RandomFlip(prob=0.5), horizontal
    # PhotoMetricDistortion: each step with probability 1/2, contrast first or last (1/2 each)
    cfg.INPUT.PHOTOMETRIC = CN()
    cfg.INPUT.PHOTOMETRIC.ENABLED = True
    cfg.INPUT.PHOTOMETRIC.BRIGHTNESS_DELTA = 32
    cfg.INPUT.PHOTOMETRIC.CONTRAST_RANGE = (0.5, 1.5)
    cfg.INPUT.PHOTOMETRIC.SATURATION_RANGE = (0.5, 1.5)
    cfg.INPUT.PHOTOMETRIC.HUE_DELTA = 18
    # Padding of training images to INPUT.CROP.SIZE (labels with MODEL.SEM_SEG_HEAD.IGNORE_VALUE):
    # "normalized": by the model after normalisation, image value 0 (SegDataPreProcessor
    #   size=crop_size, pad_val=0, seg_pad_val=255; cityscapes / pascal_context);
    # "pixel": by the mapper before normalisation, image value PIXEL_VALUE (mmcv
    #   Pad(size=crop_size), pad_val img=0, seg=255; pascal_voc12_aug.py); "none".
    cfg.INPUT.PAD = CN()
    cfg.INPUT.PAD.MODE = "none"
    cfg.INPUT.PAD.PIXEL_VALUE = 0
    # Test of the CPP plug-in models (MMSegmentation's model test_cfg): "whole" image or "slide"
    # windows of CROP_SIZE (h, w) every STRIDE (h, w), overlaps averaged. SIZE_DIVISIBILITY: each
    # network input (whole image or window) is zero-padded after normalisation to a multiple of it
    # and its logits cropped back (32: the detectron2 convention; 1: none, as MMSegmentation's
    # EncoderDecoder); a backbone's own requirement (HRNet: 32) always applies.
    cfg.TEST.CPP_SEGMENTOR = CN()
    cfg.TEST.CPP_SEGMENTOR.MODE = "whole"
    cfg.TEST.CPP_SEGMENTOR.CROP_SIZE = (480, 480)
    cfg.TEST.CPP_SEGMENTOR.STRIDE = (320, 320)
    cfg.TEST.CPP_SEGMENTOR.SIZE_DIVISIBILITY = 32


def _add_nvidia_pipeline_keys(cfg):
    """Tao et al.'s ([41], NVIDIA/semantic-segmentation) training pipeline, ``INPUT.PIPELINE
    "nvidia"`` (seethroughnet/data/transforms/nvidia_pipeline.py): RandomSizeAndCrop to
    INPUT.CROP.SIZE (padded when smaller) -> flip with INPUT.FLIP_PROB -> ColorJitter -> optional
    Gaussian blur. Defaults: [41]'s train.py defaults."""
    cfg.INPUT.NVIDIA = CN()
    cfg.INPUT.NVIDIA.SCALE_RANGE = (0.5, 2.0)  # train.py --scale_min 0.5 --scale_max 2.0
    cfg.INPUT.NVIDIA.PRE_SIZE = 0  # --pre_size: long edge first resized to it (0: off)
    cfg.INPUT.NVIDIA.PAD_PIXEL_VALUE = 0  # joint_transforms.RandomCrop pad_color (0, 0, 0)
    # ColorJitter (brightness, contrast, saturation, hue): train.py --color_aug 0.25 for all four
    cfg.INPUT.NVIDIA.COLOR_JITTER = (0.25, 0.25, 0.25, 0.25)
    cfg.INPUT.NVIDIA.GAUSSIAN_BLUR = False  # --gblur (train_mapillary.yml: true)


def _add_class_uniform_keys(cfg):
    """Class-uniform sampling of [41] (datasets/uniform.py; seethroughnet/data/class_uniform.py):
    a share PCT of each epoch's samples is drawn class by class, each centred on a centroid of
    its class (one per class per TILE x TILE tile of a label map); needs INPUT.PIPELINE
    "nvidia" and DATALOADER.SAMPLER_TRAIN "TrainingSampler". The centroids are computed once and
    cached in CACHE_DIR ("": $SEETHROUGHNET_CACHE_DIR/class_uniform_centroids, default
    ~/.cache/seethroughnet/class_uniform_centroids), keyed by the label files and TILE."""
    cfg.DATALOADER.CLASS_UNIFORM = CN()
    cfg.DATALOADER.CLASS_UNIFORM.ENABLED = False
    cfg.DATALOADER.CLASS_UNIFORM.PCT = 0.5  # train.py --class_uniform_pct 0.5
    cfg.DATALOADER.CLASS_UNIFORM.TILE = 1024  # train.py --class_uniform_tile 1024
    cfg.DATALOADER.CLASS_UNIFORM.CACHE_DIR = ""


def _add_cpp_plugin_keys(cfg):
    """The CPP plug-in study (paper Tables 1-2, Figure 5): any decode head + training-only
    auxiliary heads with CPP targets, as the meta-architecture ``CPPSegmentor``."""
    cfg.MODEL.DECODE_HEAD = CN()
    # psp | deeplabv3plus | upernet | dmnet | ccnet | ann | ocr (seethroughnet.nn.decode_heads)
    cfg.MODEL.DECODE_HEAD.NAME = "psp"
    # [] = the head's default (e.g. psp: res5; deeplabv3plus: res2, res5)
    cfg.MODEL.DECODE_HEAD.IN_FEATURES = []
    cfg.MODEL.DECODE_HEAD.CHANNELS = 512  # MMSegmentation's decode-head width
    cfg.MODEL.DECODE_HEAD.DROPOUT = 0.1  # MMSegmentation's dropout_ratio before the classifier
    cfg.MODEL.DECODE_HEAD.NORM = "BN"
    cfg.MODEL.DECODE_HEAD.LOSS_WEIGHT = 1.0  # CE on the up-sampled logits
    # how the decode head's CE (and its extra terms, OCRNet's soft-region CE) is averaged:
    # "non_ignored" (PyTorch's mean over non-ignored pixels) | "all_pixels" (MMSegmentation's
    # CrossEntropyLoss avg_non_ignore=False: over all label pixels, ignored and padding included)
    cfg.MODEL.DECODE_HEAD.LOSS_AVERAGE = "non_ignored"
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
    # OCRNet: align_corners of the HRNetV2 branch concatenation (False: MMSegmentation, NVIDIA;
    # True: HRNet-Semantic-Segmentation HRNet-OCR, lib/config/default.py MODEL.ALIGN_CORNERS)
    cfg.MODEL.DECODE_HEAD.ALIGN_CORNERS = False

    cfg.MODEL.CPP_SEGMENTOR = CN()
    # not in the paper (a memory option; same losses and gradients): the parts whose training
    # activations are recomputed in backward, any of "backbone" (dilated ResNet: one segment per
    # block; HRNetV2: one per HRNet module) and "decode_head" (one segment); [] = none
    cfg.MODEL.CPP_SEGMENTOR.CHECKPOINT_ACTIVATIONS = []

    cfg.MODEL.CPP_AUX = CN()
    cfg.MODEL.CPP_AUX.ENABLED = True
    # the features that get an auxiliary head (the paper's Table 1: the four stages)
    cfg.MODEL.CPP_AUX.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    # -1: all of IN_FEATURES; n in 0..len(IN_FEATURES): the first n features of ADD_ORDER that are
    # in IN_FEATURES (Figure 5's x axis)
    cfg.MODEL.CPP_AUX.NUM_HEADS = -1
    # the order in which NUM_HEADS adds heads: res4 first (MMSegmentation's single FCN auxiliary
    # head sits on res4, in_index=2), then the others from the deepest down (the paper does not say)
    cfg.MODEL.CPP_AUX.ADD_ORDER = ["res4", "res5", "res3", "res2"]
    cfg.MODEL.CPP_AUX.LOSS = "cpp_kl"  # cpp_kl | upsample_ce | nearest_ce
    # one per head of IN_FEATURES (in that order) or one for all (MMSegmentation aux weight 0.4)
    cfg.MODEL.CPP_AUX.WEIGHTS = [0.4]
    cfg.MODEL.CPP_AUX.HIDDEN_CHANNELS = 256  # MMSegmentation FCN auxiliary head width
    # Dropout2d before the 1x1 classifier of every auxiliary head: 0 = 3x3 conv -> BN -> ReLU -> 1x1
    # conv (the shape of the paper's coarse heads, Sec. 3.2); 0.1 = MMSegmentation's FCNHead
    # dropout_ratio
    cfg.MODEL.CPP_AUX.DROPOUT = 0.0
    cfg.MODEL.CPP_AUX.KL_DIRECTION = "target_to_prediction"
    cfg.MODEL.CPP_AUX.IGNORE_MODE = "renormalize"
    # the average of the CE auxiliary losses (upsample_ce, nearest_ce; not cpp_kl, which keeps
    # Eq. 2's normalisation): "non_ignored" | "all_pixels" (as MODEL.DECODE_HEAD.LOSS_AVERAGE)
    cfg.MODEL.CPP_AUX.CE_LOSS_AVERAGE = "non_ignored"

    # Dilated ResNet backbone "build_dilated_resnet_backbone" (modeling/segmentors/resnet.py) reads
    # detectron2's MODEL.RESNETS.* and the DeepLab keys (RES4_DILATION, RES5_MULTI_GRID, STEM_TYPE):
    # DEPTH 18/34 (basic blocks) or 50/101/152; RES4_DILATION 2 + RES5_DILATION 4 = output stride 8.
    # Their defaults are left untouched (other models share them); Base-CPP-Plugin.yaml sets OS8.
    # CONTRACT_DILATION: the first block of a dilated stage uses half the dilation (MMSegmentation's
    # ResNetV1c contract_dilation=True); off here (detectron2's behaviour), on in
    # Base-CPP-Plugin.yaml.
    cfg.MODEL.RESNETS.CONTRACT_DILATION = False
    # ImageNet initialisation from a local file (modeling/segmentors/imagenet_resnet.py), loaded
    # strictly when the backbone is built (MODEL.WEIGHTS_ALLOW_PARTIAL / MODEL.WEIGHTS_TRUSTED apply
    # to it too). IMAGENET_LAYOUT: auto | torchvision | timm | timm_d (resnet101d) | mmcv_v1c
    # (MMSegmentation's resnet101_v1c). The backbone must be the file's variant: mmcv_v1c / timm_d
    # need STEM_TYPE deeplab (+ STEM_OUT_CHANNELS 64), torchvision / timm need STEM_TYPE basic,
    # timm_d needs AVG_DOWN True.
    cfg.MODEL.RESNETS.IMAGENET_CHECKPOINT = ""
    cfg.MODEL.RESNETS.IMAGENET_LAYOUT = "auto"
    # ResNet-D shortcut: average-pool then 1x1 conv in the strided blocks (timm resnet101d)
    cfg.MODEL.RESNETS.AVG_DOWN = False


def _add_safety_keys(cfg):
    """Checkpoint strictness and trust, the initialisation guard, renamed keys."""
    # Checkpoints: a file whose keys do not match the model is an error unless this is True.
    cfg.MODEL.WEIGHTS_ALLOW_PARTIAL = False
    # Initialisation guard (seethroughnet.engine.check_pretrained_weights): a config that sets
    # MODEL.REQUIRES_PRETRAINED (the paper-scale configs, whose encoder starts from ImageNet)
    # refuses to start training when no weight file is given, unless MODEL.ALLOW_RANDOM_INIT is
    # True.
    cfg.MODEL.REQUIRES_PRETRAINED = False
    cfg.MODEL.ALLOW_RANDOM_INIT = False

    # Keys renamed by the exact-RMI change: an old config names the new key instead of failing bare.
    for old, new in (
        ("MODEL.SEE_THROUGH.RMI_WEIGHT", "MODEL.SEE_THROUGH.RMI.WEIGHT"),
        ("MODEL.SEE_THROUGH.RMI_LAMBDA", "MODEL.SEE_THROUGH.RMI.LAMBDA"),
        ("MODEL.SEE_THROUGH.RMI_RADIUS", "MODEL.SEE_THROUGH.RMI.RADIUS"),
        ("MODEL.SEE_THROUGH.RMI_POOL_STRIDE", "MODEL.SEE_THROUGH.RMI.POOL_STRIDE"),
    ):
        cfg.register_renamed_key(old, new)
    # Stop training when any loss term is NaN or infinite (naming the term and iteration).
    cfg.SOLVER.CHECK_FINITE_LOSS = True

    # Files from elsewhere.
    # Weight / checkpoint files holding pickled Python objects beyond tensors, numpy arrays,
    # numbers, strings and containers are refused (loading them runs code from the file) unless
    # this is True. Only the command line can set it (KEY VALUE or --trust-weights-file): a YAML
    # config file that sets it is refused (seethroughnet/utils/safe_load.py).
    cfg.MODEL.WEIGHTS_TRUSTED = False
