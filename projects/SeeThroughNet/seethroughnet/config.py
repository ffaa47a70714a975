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
    cfg.MODEL.HRNET.CHECKPOINT = ""  # optional local ImageNet checkpoint file (timm layout)
    cfg.MODEL.HRNET.NORM = "BN"  # BN | SyncBN | FrozenBN
    cfg.MODEL.HRNET.OUT_FEATURES = ["res2", "res3", "res4", "res5"]  # strides 4, 8, 16, 32

    cfg.MODEL.SEE_THROUGH = CN()
    # See-Through decoder (Sec. 3.2, Fig. 4, Eq. 3)
    cfg.MODEL.SEE_THROUGH.DECODER_CHANNELS = 0  # hidden width of the coarse heads (0: the branch width)
    cfg.MODEL.SEE_THROUGH.DECODER_ATTENTION_CHANNELS = 256  # hidden width of the attention-mask generators
    cfg.MODEL.SEE_THROUGH.HEAD_NORM = "BN"  # norm of the decoder / OCR / attention heads: BN | SyncBN
    cfg.MODEL.SEE_THROUGH.USE_SCALE_ATTENTION = True  # Table 4: off = sum of up-sampled maps
    # Auxiliary (decoder) loss on the aggregated maps at 1/16, 1/8, 1/4 (Eq. 6):
    # "cpp_kl" (the paper), "upsample_ce" (Table 4 "CPP off" baseline) or "nearest_ce".
    cfg.MODEL.SEE_THROUGH.AUX_LOSS = "cpp_kl"
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
    cfg.MODEL.SEE_THROUGH.RMI_WEIGHT = 1.0  # weight of the RMI term on the merged output
    cfg.MODEL.SEE_THROUGH.RMI_LAMBDA = 0.5  # lambda of Eq. 5 (RMI vs its CE part)
    cfg.MODEL.SEE_THROUGH.RMI_RADIUS = 3
    cfg.MODEL.SEE_THROUGH.RMI_POOL_STRIDE = 4
    cfg.MODEL.SEE_THROUGH.CE_WEIGHT = 0.05  # gamma of Eq. 7 on X_1.0 and up-sampled X_0.5

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
    # Stop training when any loss term is NaN or infinite (naming the term and iteration).
    cfg.SOLVER.CHECK_FINITE_LOSS = True

    # --- Files from elsewhere (issue 15) ------------------------------------------------------
    # Weight / checkpoint files holding pickled Python objects beyond tensors, numpy arrays,
    # numbers, strings and containers are refused (loading them runs code from the file) unless
    # this is True. Only the command line can set it (KEY VALUE or --trust-weights-file): a YAML
    # config file that sets it is refused (seethroughnet/utils/safe_load.py).
    cfg.MODEL.WEIGHTS_TRUSTED = False
