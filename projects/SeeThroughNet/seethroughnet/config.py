"""Config keys added by the SeeThroughNet project.

Every hyper-parameter of the model, its losses and its inference lives here with a default,
and the YAML files under ``projects/SeeThroughNet/configs`` set them with a comment saying
where each value comes from. Unknown keys in a YAML file are rejected by detectron2's
``CfgNode.merge_from_file`` with an error naming the key.
"""
from detectron2.config import CfgNode as CN


def add_seethroughnet_config(cfg):
    """Add the SeeThroughNet keys (and detectron2's DeepLab solver keys) to ``cfg``."""
    # Poly learning-rate schedule and its keys (SOLVER.POLY_LR_POWER, ...), as in detectron2's
    # DeepLab project; also INPUT.CROP.SINGLE_CATEGORY_MAX_AREA and SOLVER.LR_SCHEDULER_NAME.
    from detectron2.projects.deeplab import add_deeplab_config

    add_deeplab_config(cfg)

    # HRNetV2 encoder (timm's HRNet), registered as detectron2 backbone "build_hrnetv2_backbone".
    cfg.MODEL.HRNET = CN()
    cfg.MODEL.HRNET.VARIANT = "hrnet_w48"  # hrnet_w48 (paper) | hrnet_w18 | hrnet_w18_small_v2
    cfg.MODEL.HRNET.CHECKPOINT = ""  # optional local ImageNet checkpoint file (timm or official HRNet release layout)
    cfg.MODEL.HRNET.NORM = "BN"  # BN | SyncBN | FrozenBN
    cfg.MODEL.HRNET.OUT_FEATURES = ["res2", "res3", "res4", "res5"]  # strides 4, 8, 16, 32

    cfg.MODEL.SEE_THROUGH = CN()
    # See-Through decoder (Sec. 3.2, Fig. 4, Eq. 3)
    cfg.MODEL.SEE_THROUGH.DECODER_CHANNELS = 0  # hidden width of the coarse heads (0: the branch width)
    cfg.MODEL.SEE_THROUGH.DECODER_ATTENTION_CHANNELS = 256  # hidden width of the attention-mask generators
    cfg.MODEL.SEE_THROUGH.HEAD_NORM = "BN"  # norm of the decoder / OCR / attention heads: BN | SyncBN
    cfg.MODEL.SEE_THROUGH.USE_SCALE_ATTENTION = True  # Table 4: off = sum of up-sampled maps
    # Auxiliary (decoder) losses at 1/16, 1/8, 1/4 of both passes (Eq. 6):
    # "cpp_kl" (the paper), "upsample_ce" (Table 4 "CPP off" baseline) or "nearest_ce".
    cfg.MODEL.SEE_THROUGH.AUX_LOSS = "cpp_kl"
    # Which maps carry them: "coarse" (the coarse heads' X'_S of Sec. 3.2, the paper's notation) or
    # "aggregated" (the maps after the Eq. 3 aggregation). docs/seethroughnet_model.md says why.
    cfg.MODEL.SEE_THROUGH.CPP_ON = "coarse"
    cfg.MODEL.SEE_THROUGH.AUX_LOSS_WEIGHTS = [1.0, 1.0, 1.0]  # at 1/16, 1/8, 1/4
    cfg.MODEL.SEE_THROUGH.KL_DIRECTION = "target_to_prediction"  # or "prediction_to_target" (literal Eq. 2)
    cfg.MODEL.SEE_THROUGH.IGNORE_MODE = "renormalize"  # how CPP targets treat the ignore channel
    # OCR head (Yuan et al.), Sec. 3.2
    cfg.MODEL.SEE_THROUGH.OCR_MID_CHANNELS = 512
    cfg.MODEL.SEE_THROUGH.OCR_KEY_CHANNELS = 256
    cfg.MODEL.SEE_THROUGH.OCR_DROPOUT = 0.05
    # Two-resolution training merged by attention (Eq. 4, after Tao et al.)
    cfg.MODEL.SEE_THROUGH.TRAIN_SCALES = [0.5, 1.0]  # or [1.0]: single-resolution training
    cfg.MODEL.SEE_THROUGH.SCALE_ATTENTION_CHANNELS = 256  # hidden width of Tao et al.'s attention head
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
    cfg.MODEL.SEE_THROUGH.RMI.CLASS_REDUCTION = "sum"  # "sum" (RMI Eq. 16, both references) | "mean"
    # Eq. 7: gamma times a per-pass loss on X_1.0 and up-sampled X_0.5
    cfg.MODEL.SEE_THROUGH.CE_WEIGHT = 0.05  # gamma
    cfg.MODEL.SEE_THROUGH.PER_SCALE_LOSS = "ce"  # "ce" (softmax, the paper's L_ce) | "bce" ([41]'s code: RMI with RMI off)

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

    # Checkpoints: a file whose keys do not match the model is an error unless this is True.
    cfg.MODEL.WEIGHTS_ALLOW_PARTIAL = False
    # Initialisation guard (seethroughnet.engine.check_pretrained_weights): a config that sets
    # MODEL.REQUIRES_PRETRAINED (the paper-scale configs, whose encoder starts from ImageNet) refuses
    # to start training when no weight file is given, unless MODEL.ALLOW_RANDOM_INIT is True.
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

    # --- Files from elsewhere (issue 15) ------------------------------------------------------
    # Weight / checkpoint files holding pickled Python objects beyond tensors, numpy arrays,
    # numbers, strings and containers are refused (loading them runs code from the file) unless
    # this is True. Only the command line can set it (KEY VALUE or --trust-weights-file): a YAML
    # config file that sets it is refused (seethroughnet/utils/safe_load.py).
    cfg.MODEL.WEIGHTS_TRUSTED = False
