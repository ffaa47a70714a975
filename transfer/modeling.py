"""The SeeThroughNet encoder in detectron2 detectors (paper Table 5).

* :func:`build_transfer_backbone`: ``HRNetV2Encoder`` -> ``TransferEncoder`` (a
  :class:`seethroughnet.modeling.backbone.hrnet.HRNetV2Backbone` that can be frozen) -> a neck:
  ``hrfpn`` (:class:`transfer.hrfpn.HRFPN`, HRNet's own pyramid: all four branches at stride 4,
  concatenated, 1x1-reduced, pooled into ``p2..p6`` or, with stride-2 output convs, ``p3..p7``)
  or ``fpn`` (detectron2's ``FPN`` over the branches plus ``LastLevelMaxPool`` or
  ``LastLevelP6P7``). The encoder is initialised from ImageNet, from a SeeThroughNet checkpoint
  (encoder weights only), or randomly; ``backbone.init_report`` says what was loaded.
* ``build_hrnetv2_hrfpn_backbone`` / ``build_hrnetv2_fpn_backbone`` (``BACKBONE_REGISTRY``):
  the same from ``cfg.MODEL.HRNET``, ``cfg.MODEL.HRFPN`` / ``cfg.MODEL.FPN`` and
  ``cfg.MODEL.TRANSFER``.
* ``TransferFCOS`` (``META_ARCH_REGISTRY``): detectron2's ``FCOS`` built from ``cfg.MODEL.FCOS``,
  so that all three detectors run from yaml with the same trainer.
* :func:`freeze_unused_parameters`: ``requires_grad=False`` for parameters that the heads'
  input features do not depend on.
* :func:`recompute_encoder_bn_stats`: re-estimate the encoder's BatchNorm statistics on
  training images (``MODEL.TRANSFER.ENCODER_BN_RECOMPUTE_ITERS``).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Iterable, List, Optional, Sequence

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY, Backbone
from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool, LastLevelP6P7
from detectron2.modeling.meta_arch.fcos import FCOS, FCOSHead
from torch import nn

from seethroughnet.modeling.backbone.hrnet import HRNetV2Backbone
from seethroughnet.nn.hrnet import HRNetV2Encoder
from seethroughnet.nn.layers import short_list
from seethroughnet.nn.options import EncoderOptions

from .config import ENCODER_INITS, NECKS, TOP_BLOCKS
from .encoder_init import EncoderWeightsError, imagenet_report, load_seethroughnet_encoder
from .hrfpn import HRFPN

__all__ = [
    "TransferEncoder",
    "build_transfer_encoder",
    "build_transfer_backbone",
    "build_hrnetv2_fpn_backbone",
    "build_hrnetv2_hrfpn_backbone",
    "TransferFCOS",
    "freeze_unused_parameters",
    "head_in_features",
]

logger = logging.getLogger(__name__)


class TransferEncoder(HRNetV2Backbone):
    """``HRNetV2Backbone`` with the transfer-time training modes of the encoder.

    * ``frozen=True`` (the paper's "En. frozen"): all encoder parameters get
      ``requires_grad=False``, the encoder is kept in eval mode whatever ``train()`` is called
      with (so BatchNorm running statistics never move), and its forward runs under
      ``torch.no_grad()``. Module types and state-dict keys are unchanged.
    * ``norm_eval=True`` (fine-tuning): only the BatchNorm layers are kept in eval mode
      (statistics fixed, affine parameters trained).
    """

    def __init__(
        self,
        encoder: HRNetV2Encoder,
        out_features=("res2", "res3", "res4", "res5"),
        *,
        frozen: bool = False,
        norm_eval: bool = True,
    ):
        super().__init__(encoder, out_features)
        self.frozen = bool(frozen)
        self.norm_eval = bool(norm_eval)
        if self.frozen:
            for p in self.encoder.parameters():
                p.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.encoder.eval()
        elif self.norm_eval:
            for m in self.encoder.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, x):
        if self.frozen:
            with torch.no_grad():
                return super().forward(x)
        return super().forward(x)


def build_transfer_encoder(
    *,
    variant: str = "hrnet_w48",
    encoder_init: str = "imagenet",
    encoder_weights: str = "",
    norm: str = "BN",
    freeze_at: int = 0,
    trust_weights: bool = False,
    fuse_upsample: str = "bilinear",
    fuse_align_corners: bool = False,
):
    """``(HRNetV2Encoder, init_report)``. ``trust_weights``: a weights file holding pickled
    objects beyond tensors / numpy arrays is loaded (runs code from it) instead of refused.
    ``fuse_upsample`` / ``fuse_align_corners``: the encoder's fuse-layer up-sampling
    (``MODEL.HRNET.FUSE_UPSAMPLE`` / ``FUSE_ALIGN_CORNERS``; a SeeThroughNet encoder computes the
    function it was trained with only under its own setting)."""
    # the project's one encoder builder (seethroughnet.nn.options.EncoderOptions.build); only an
    # ImageNet init reads a checkpoint through it, a SeeThroughNet encoder is loaded afterwards
    options = EncoderOptions(
        variant=variant,
        checkpoint=None,
        freeze_at=freeze_at,
        norm=norm,
        trust_checkpoint=trust_weights,
        fuse_upsample=fuse_upsample,
        fuse_align_corners=fuse_align_corners,
    )
    if encoder_init not in ENCODER_INITS:
        raise ValueError(
            f"MODEL.TRANSFER.ENCODER_INIT must be one of {ENCODER_INITS}, got {encoder_init!r}"
        )
    if encoder_init == "imagenet":
        if not encoder_weights:
            raise EncoderWeightsError(
                "MODEL.TRANSFER.ENCODER_INIT 'imagenet' needs a local ImageNet checkpoint in "
                "MODEL.TRANSFER.ENCODER_WEIGHTS (or MODEL.HRNET.CHECKPOINT); nothing is downloaded"
            )
        encoder = dataclasses.replace(options, checkpoint=encoder_weights).build()
        report = imagenet_report(encoder, encoder_weights, trusted=trust_weights)
    elif encoder_init == "seethroughnet":
        if not encoder_weights:
            raise EncoderWeightsError(
                "MODEL.TRANSFER.ENCODER_INIT 'seethroughnet' needs the SeeThroughNet checkpoint "
                "(e.g. output/.../model_final.pth) in MODEL.TRANSFER.ENCODER_WEIGHTS"
            )
        encoder = options.build()
        report = load_seethroughnet_encoder(encoder, encoder_weights, trusted=trust_weights)
    else:
        if encoder_weights:
            raise ValueError(
                f"MODEL.TRANSFER.ENCODER_INIT 'random' with ENCODER_WEIGHTS {encoder_weights!r}: "
                "set ENCODER_INIT to 'imagenet' or 'seethroughnet', or clear ENCODER_WEIGHTS"
            )
        encoder = options.build()
        report = {"init": "random", "path": None, "loaded": 0}
        logger.info("encoder: random initialisation (no weights loaded)")
    return encoder, report


def build_transfer_backbone(
    *,
    variant: str = "hrnet_w48",
    encoder_init: str = "imagenet",
    encoder_weights: str = "",
    norm: str = "BN",
    freeze_at: int = 0,
    freeze_encoder: bool = False,
    norm_eval: bool = True,
    in_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
    out_channels: int = 256,
    fpn_norm: str = "",
    fuse_type: str = "sum",
    top_block: str = "maxpool",
    neck: str = "fpn",
    hrfpn_num_outs: int = 5,
    hrfpn_pooling: str = "AVG",
    hrfpn_conv_stride: int = 1,
    trust_weights: bool = False,
    fuse_upsample: str = "bilinear",
    fuse_align_corners: bool = False,
) -> Backbone:
    """HRNetV2 encoder + a neck; see the module docstring. Usable from LazyConfig too.

    ``neck="fpn"``: detectron2's FPN over ``in_features`` with ``top_block``; ``neck="hrfpn"``:
    :class:`transfer.hrfpn.HRFPN` over ``in_features`` (``hrfpn_*``; ``fpn_norm`` is its norm,
    ``fuse_type``/``top_block`` do not apply)."""
    if neck not in NECKS:
        raise ValueError(f"neck must be one of {NECKS}, got {neck!r}")
    if neck == "fpn" and top_block not in TOP_BLOCKS:
        raise ValueError(f"MODEL.TRANSFER.TOP_BLOCK must be one of {TOP_BLOCKS}, got {top_block!r}")
    encoder, report = build_transfer_encoder(
        variant=variant,
        encoder_init=encoder_init,
        encoder_weights=encoder_weights,
        norm=norm,
        freeze_at=freeze_at,
        trust_weights=trust_weights,
        fuse_upsample=fuse_upsample,
        fuse_align_corners=fuse_align_corners,
    )
    # Statistics of a randomly initialised encoder mean nothing: its BatchNorms always train.
    norm_eval = bool(norm_eval) and encoder_init != "random"
    bottom_up = TransferEncoder(
        encoder, tuple(in_features), frozen=freeze_encoder, norm_eval=norm_eval
    )
    if neck == "hrfpn":
        fpn = HRFPN(
            bottom_up,
            in_features=list(in_features),
            out_channels=out_channels,
            num_outs=hrfpn_num_outs,
            pooling=hrfpn_pooling,
            conv_stride=hrfpn_conv_stride,
            norm=fpn_norm,
        )
    else:
        if top_block == "maxpool":
            top = LastLevelMaxPool()
        elif top_block == "p6p7":
            top = LastLevelP6P7(out_channels, out_channels, in_feature="p5")
        else:
            top = None
        fpn = FPN(
            bottom_up=bottom_up,
            in_features=list(in_features),
            out_channels=out_channels,
            norm=fpn_norm,
            top_block=top,
            fuse_type=fuse_type,
        )
    n_enc = sum(p.numel() for p in encoder.parameters())
    n_trainable = sum(p.numel() for p in encoder.parameters() if p.requires_grad)
    report = dict(report)
    report.update(
        variant=variant,
        frozen=bool(freeze_encoder),
        norm=norm,
        norm_eval=bool(norm_eval) and not freeze_encoder,
        encoder_parameters=n_enc,
        encoder_trainable_parameters=n_trainable,
        neck=neck,
        randomly_initialised=sorted(
            {neck} | ({"encoder"} if report["init"] == "random" else set())
        ),
        fpn_outputs=list(fpn.output_shape()),
    )
    fpn.init_report = report
    logger.info(
        "HRNetV2-%s backbone: %s encoder (%s init, %s), %d/%d encoder parameters trainable, "
        "outputs %s",
        neck.upper(),
        variant,
        report["init"],
        "frozen" if freeze_encoder else "fine-tuned",
        n_trainable,
        n_enc,
        report["fpn_outputs"],
    )
    return fpn


def _encoder_kwargs(cfg, input_shape):
    t = cfg.MODEL.TRANSFER
    weights = t.ENCODER_WEIGHTS
    if t.ENCODER_INIT == "imagenet" and not weights:
        weights = cfg.MODEL.HRNET.CHECKPOINT
    elif cfg.MODEL.HRNET.CHECKPOINT and t.ENCODER_INIT != "imagenet":
        raise ValueError(
            f"MODEL.HRNET.CHECKPOINT ({cfg.MODEL.HRNET.CHECKPOINT!r}) is an ImageNet checkpoint "
            f"but MODEL.TRANSFER.ENCODER_INIT is {t.ENCODER_INIT!r}; clear one of them"
        )
    if input_shape is not None and input_shape.channels not in (None, 3):
        raise ValueError(f"HRNetV2 takes 3-channel images, got input_shape {input_shape}")
    # the encoder's keys are read where SeeThroughNet reads them (EncoderOptions' config keys)
    enc = EncoderOptions.from_cfg(cfg)
    return dict(
        variant=enc.variant,
        encoder_init=t.ENCODER_INIT,
        encoder_weights=weights,
        norm=enc.norm,
        freeze_at=enc.freeze_at,
        freeze_encoder=t.FREEZE_ENCODER,
        norm_eval=t.ENCODER_NORM_EVAL,
        trust_weights=enc.trust_checkpoint,
        fuse_upsample=enc.fuse_upsample,
        fuse_align_corners=enc.fuse_align_corners,
    )


@BACKBONE_REGISTRY.register()
def build_hrnetv2_fpn_backbone(cfg, input_shape: Optional[ShapeSpec] = None):
    """``MODEL.BACKBONE.NAME: build_hrnetv2_fpn_backbone``: the encoder + detectron2's FPN. Reads
    ``MODEL.HRNET.{VARIANT,NORM,CHECKPOINT}``, ``MODEL.BACKBONE.FREEZE_AT``,
    ``MODEL.FPN.{IN_FEATURES,OUT_CHANNELS,NORM,FUSE_TYPE}`` and ``MODEL.TRANSFER.*`` (see
    :mod:`transfer.config`)."""
    return build_transfer_backbone(
        **_encoder_kwargs(cfg, input_shape),
        neck="fpn",
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        fpn_norm=cfg.MODEL.FPN.NORM,
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
        top_block=cfg.MODEL.TRANSFER.TOP_BLOCK,
    )


@BACKBONE_REGISTRY.register()
def build_hrnetv2_hrfpn_backbone(cfg, input_shape: Optional[ShapeSpec] = None):
    """``MODEL.BACKBONE.NAME: build_hrnetv2_hrfpn_backbone``: the encoder + HRFPN
    (:mod:`transfer.hrfpn`). Reads ``MODEL.HRFPN.*`` instead of ``MODEL.FPN.*``
    (``MODEL.TRANSFER.TOP_BLOCK`` does not apply)."""
    h = cfg.MODEL.HRFPN
    return build_transfer_backbone(
        **_encoder_kwargs(cfg, input_shape),
        neck="hrfpn",
        in_features=h.IN_FEATURES,
        out_channels=h.OUT_CHANNELS,
        fpn_norm=h.NORM,
        hrfpn_num_outs=h.NUM_OUTS,
        hrfpn_pooling=h.POOLING,
        hrfpn_conv_stride=h.CONV_STRIDE,
    )


@META_ARCH_REGISTRY.register()
class TransferFCOS(FCOS):
    """detectron2's :class:`FCOS` (unchanged) constructed from ``cfg.MODEL.FCOS`` so that it
    can be trained from yaml like the R-CNNs. Values mirror the model zoo's LazyConfig
    ``COCO-Detection/fcos_R_50_FPN_1x.py``."""

    @configurable
    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    @classmethod
    def from_config(cls, cfg):
        from detectron2.modeling import build_backbone

        f = cfg.MODEL.FCOS
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        missing = [k for k in f.IN_FEATURES if k not in shapes]
        if missing:
            raise ValueError(
                f"MODEL.FCOS.IN_FEATURES {missing} are not backbone outputs {list(shapes)}"
            )
        channels = {shapes[k].channels for k in f.IN_FEATURES}
        if len(channels) != 1:
            raise ValueError(f"FCOS needs equal channels on {list(f.IN_FEATURES)}, got {channels}")
        ch = channels.pop()
        head = FCOSHead(
            input_shape=[shapes[k] for k in f.IN_FEATURES],
            num_classes=f.NUM_CLASSES,
            conv_dims=[ch] * f.NUM_CONVS,
            norm=f.HEAD_NORM,
            prior_prob=f.PRIOR_PROB,
        )
        return {
            "backbone": backbone,
            "head": head,
            "head_in_features": list(f.IN_FEATURES),
            "num_classes": f.NUM_CLASSES,
            "center_sampling_radius": f.CENTER_SAMPLING_RADIUS,
            "focal_loss_alpha": f.FOCAL_LOSS_ALPHA,
            "focal_loss_gamma": f.FOCAL_LOSS_GAMMA,
            "test_score_thresh": f.SCORE_THRESH_TEST,
            "test_topk_candidates": f.TOPK_CANDIDATES_TEST,
            "test_nms_thresh": f.NMS_THRESH_TEST,
            "max_detections_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
        }


def head_in_features(model: nn.Module) -> Optional[List[str]]:
    """Backbone outputs read by the heads of a GeneralizedRCNN / dense detector, or None."""
    if hasattr(model, "head_in_features"):
        return list(model.head_in_features)
    feats = set()
    for part in ("proposal_generator", "roi_heads"):
        m = getattr(model, part, None)
        if m is not None and getattr(m, "in_features", None) is not None:
            feats |= set(m.in_features)
    return sorted(feats) or None


def freeze_unused_parameters(
    backbone: nn.Module, used_features: Iterable[str], size: Optional[int] = None
) -> List[str]:
    """Set ``requires_grad=False`` on backbone parameters that none of ``used_features``
    depends on (found by one backward pass on a zero image in eval mode, so no statistics
    change). Returns their names."""
    used_features = list(used_features)
    params = {n: p for n, p in backbone.named_parameters() if p.requires_grad}
    if not params:
        return []
    size = size or 2 * max(int(getattr(backbone, "size_divisibility", 32) or 32), 32)
    was_training = backbone.training
    saved = {n: p.grad for n, p in params.items()}
    try:
        backbone.eval()
        for p in params.values():
            p.grad = None
        with torch.enable_grad():
            device = next(iter(params.values())).device
            feats = backbone(torch.zeros(1, 3, size, size, device=device))
            missing = [f for f in used_features if f not in feats]
            if missing:
                raise ValueError(f"heads read {missing}, not among backbone outputs {list(feats)}")
            total = sum(feats[f].float().sum() for f in used_features)
            if total.requires_grad:
                total.backward()
        dead = [n for n, p in params.items() if p.grad is None]
    finally:
        for n, p in params.items():
            p.grad = saved[n]
        backbone.train(was_training)
    for n in dead:
        params[n].requires_grad_(False)
    if dead:
        logger.info(
            "%d backbone parameters do not affect the heads' features %s and are frozen: %s",
            len(dead),
            used_features,
            short_list(dead, 6, sort=False),
        )
    return dead


def recompute_encoder_bn_stats(
    encoder: nn.Module, batches: Iterable[torch.Tensor], num_iters: int
) -> int:
    """Replace the running mean/variance of every BatchNorm in ``encoder`` by their cumulative
    average over ``num_iters`` input batches (already normalised image tensors), forwarding the
    encoder alone in train mode under ``no_grad``: no weight changes. In a distributed run the
    statistics are averaged over the processes. The encoder's modes and momenta are restored.
    Returns the number of batches used (raises if there were none)."""
    bns = [
        m
        for m in encoder.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    if not bns or num_iters <= 0:
        return 0
    modes = {m: m.training for m in encoder.modules()}
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: the mean over the batches seen
    n = 0
    try:
        encoder.train()
        with torch.no_grad():
            for x in batches:
                encoder(x)
                n += 1
                if n >= num_iters:
                    break
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        for m, was in modes.items():
            m.training = was
    if n == 0:
        raise ValueError(
            "MODEL.TRANSFER.ENCODER_BN_RECOMPUTE_ITERS > 0 but the data loader gave no batch"
        )
    import detectron2.utils.comm as comm

    if comm.get_world_size() > 1:
        import torch.distributed as dist

        for m in bns:
            for buf in (m.running_mean, m.running_var):
                dist.all_reduce(buf)
                buf.div_(comm.get_world_size())
    logger.info("encoder BatchNorm statistics re-estimated on %d batches (%d layers)", n, len(bns))
    return n
