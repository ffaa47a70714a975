"""The detection transfer's config keys (paper Table 5), added by :func:`add_transfer_config` in
the manner of detectron2's PointRend and DeepLab projects (``add_pointrend_config``,
``add_deeplab_config``), and :func:`build_transfer_config`, the config of a Table 5 detector.

The keys: ``MODEL.TRANSFER`` (how the HRNetV2 encoder enters a detector), ``MODEL.HRFPN`` (the
neck, transfer/hrfpn.py), ``MODEL.FCOS`` (the FCOS meta-architecture ``TransferFCOS``) and
``DATASETS.CITYSCAPES_*`` (the converted Cityscapes instances). The encoder's own keys
(``MODEL.HRNET``) are SeeThroughNet's (``seethroughnet.config``). ``transfer/configs/*.yaml``
set them with a comment saying where each value comes from.
"""

from detectron2.config import CfgNode as CN

__all__ = ["ENCODER_INITS", "TOP_BLOCKS", "NECKS", "add_transfer_config", "build_transfer_config"]

# Allowed values of MODEL.TRANSFER.ENCODER_INIT, MODEL.TRANSFER.TOP_BLOCK and the transfer neck.
ENCODER_INITS = ("imagenet", "seethroughnet", "random")
TOP_BLOCKS = ("maxpool", "p6p7", "none")
NECKS = ("hrfpn", "fpn")


def build_transfer_config(config_file=None, opts=(), *, allow_unsafe=False):
    """:func:`seethroughnet.config.build_config` with the transfer keys
    (:func:`add_transfer_config`): a Table 5 detector config from ``config_file`` and
    ``KEY VALUE`` ``opts``, its backbones and meta-architectures registered with detectron2
    (transfer/modeling.py)."""
    from seethroughnet.config import build_config

    from . import modeling  # noqa: F401  (registration only)

    return build_config(config_file, opts, allow_unsafe=allow_unsafe, extra=(add_transfer_config,))


def add_transfer_config(cfg):
    """Add the detection transfer's keys to ``cfg`` (a config with the SeeThroughNet keys, e.g.
    ``add_seethroughnet_config(get_cfg())``) and return it."""
    cfg.MODEL.TRANSFER = CN()
    # "imagenet": ENCODER_WEIGHTS (or MODEL.HRNET.CHECKPOINT) is a timm/official HRNet ImageNet
    #   classification checkpoint, loaded strictly by HRNetV2Encoder.
    # "seethroughnet": ENCODER_WEIGHTS is a checkpoint written by
    #   projects/SeeThroughNet/train_net.py (with or without CPP); only its encoder weights are
    #   taken, found under whatever prefix.
    # "random": no weights (timm's initialisation).
    cfg.MODEL.TRANSFER.ENCODER_INIT = "imagenet"
    cfg.MODEL.TRANSFER.ENCODER_WEIGHTS = ""
    # The paper's "En. frozen": every encoder parameter has requires_grad=False and the encoder
    # stays in eval mode (BatchNorm statistics fixed) even under model.train().
    cfg.MODEL.TRANSFER.FREEZE_ENCODER = False
    # When fine-tuning: keep the encoder's BatchNorm layers in eval mode (running statistics
    # fixed, affine parameters trained), as mmdetection's HRNet detectors (norm_eval=True) do;
    # detection batches (2 images per GPU) are too small for BN statistics. False: BN trains.
    # Ignored (BN trains) for ENCODER_INIT "random", whose statistics mean nothing.
    cfg.MODEL.TRANSFER.ENCODER_NORM_EVAL = True
    # FPN level above p5: "maxpool" (Faster/Mask R-CNN: p6 for the RPN), "p6p7" (FCOS/RetinaNet:
    # p6, p7 by stride-2 convs from p5, as in detectron2's FCOS), "none".
    cfg.MODEL.TRANSFER.TOP_BLOCK = "maxpool"
    # Parameters that cannot receive a gradient because the heads do not read the features
    # they feed (e.g. p2 and the stride-4 branch for an FCOS head on p3-p7) get
    # requires_grad=False at build time, so that DistributedDataParallel does not need
    # find_unused_parameters. They are listed in the log.
    cfg.MODEL.TRANSFER.FREEZE_UNUSED = True
    # Re-estimate the encoder's BatchNorm running statistics on this many training batches
    # before the first iteration (cumulative average, encoder forward only, no weight changes;
    # averaged over processes). 0 = keep the checkpoint's statistics. Meant for the ImageNet
    # rows, whose statistics otherwise stay ImageNet's under ENCODER_NORM_EVAL / FREEZE_ENCODER
    # while the SeeThroughNet rows carry Cityscapes statistics (transfer/README.md). Not run when
    # a run resumes from its own checkpoint (the statistics are in it).
    cfg.MODEL.TRANSFER.ENCODER_BN_RECOMPUTE_ITERS = 0

    # HRFPN (transfer/hrfpn.py), the neck of mmdetection's HRNet detectors; defaults are
    # mmdetection's HRFPN defaults (mmdet/models/necks/hrfpn.py).
    cfg.MODEL.HRFPN = CN()
    cfg.MODEL.HRFPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.HRFPN.OUT_CHANNELS = 256
    cfg.MODEL.HRFPN.NUM_OUTS = 5
    cfg.MODEL.HRFPN.POOLING = "AVG"  # AVG | MAX
    # 2 in mmdetection's HRNet-FCOS configs (levels at strides 8..128)
    cfg.MODEL.HRFPN.CONV_STRIDE = 1
    cfg.MODEL.HRFPN.NORM = ""  # mmdetection: norm_cfg=None (conv with bias)

    # FCOS as a yaml meta-architecture ("TransferFCOS"); values from detectron2's model zoo.
    cfg.MODEL.FCOS = CN()
    cfg.MODEL.FCOS.NUM_CLASSES = 80
    cfg.MODEL.FCOS.IN_FEATURES = ["p3", "p4", "p5", "p6", "p7"]
    cfg.MODEL.FCOS.NUM_CONVS = 4  # conv_dims=[256] * 4 in common/models/retinanet.py
    cfg.MODEL.FCOS.HEAD_NORM = "GN"  # common/models/fcos.py
    cfg.MODEL.FCOS.PRIOR_PROB = 0.01
    cfg.MODEL.FCOS.CENTER_SAMPLING_RADIUS = 1.5
    cfg.MODEL.FCOS.FOCAL_LOSS_ALPHA = 0.25
    cfg.MODEL.FCOS.FOCAL_LOSS_GAMMA = 2.0
    # test thresholds: the standard COCO-evaluation ones (mmdetection's FCOS test_cfg score_thr
    # 0.05, nms iou_threshold 0.5; detectron2's ROI_HEADS defaults), not the FCOS LazyConfig's
    # 0.2 / 0.6, so that every Table 5 detector is evaluated alike
    cfg.MODEL.FCOS.SCORE_THRESH_TEST = 0.05
    cfg.MODEL.FCOS.TOPK_CANDIDATES_TEST = 1000
    cfg.MODEL.FCOS.NMS_THRESH_TEST = 0.5

    # Converted Cityscapes (transfer/convert_cityscapes_to_coco.py). "" =
    # $DETECTRON2_DATASETS/cityscapes (default datasets/cityscapes) and <root>/annotations.
    cfg.DATASETS.CITYSCAPES_ROOT = ""
    cfg.DATASETS.CITYSCAPES_COCO_JSON_DIR = ""
    return cfg
