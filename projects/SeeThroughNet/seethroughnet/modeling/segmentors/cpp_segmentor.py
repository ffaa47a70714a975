"""``CPPSegmentor``: backbone + decode head + training-only auxiliary heads (SeeThroughNet, CVPR
2022, Table 1: CPP as a plug-in for any segmentation model).

Training loss = ``LOSS_WEIGHT * CE(up(decode logits), labels)`` (bilinear up-sampling to the label
size, ignore ``MODEL.SEM_SEG_HEAD.IGNORE_VALUE``) + the decode head's own extra terms (OCRNet's soft
region CE, weight 0.4) + ``sum_i w_i * aux_loss_i`` of the auxiliary heads. The cross entropies are
averaged as ``MODEL.DECODE_HEAD.LOSS_AVERAGE`` says (``all_pixels``: MMSegmentation's
``avg_non_ignore=False``; the auxiliary CE baselines: ``MODEL.CPP_AUX.CE_LOSS_AVERAGE``)
(:class:`seethroughnet.nn.auxiliary_heads.AuxiliaryHeads`). At inference only the backbone and the
decode head run: on the whole image or on sliding windows (``TEST.CPP_SEGMENTOR``, MMSegmentation's
``test_cfg`` ``mode='whole'`` / ``'slide'``), the logits up-sampled to the network input and resized
to the image's original size. ``INPUT.PAD.MODE "normalized"`` pads each training image (after
normalisation, value 0) and label (ignore value) to ``INPUT.CROP.SIZE``, as MMSegmentation's
``SegDataPreProcessor(size=crop_size)``."""

import math

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from torch import nn

from ...nn.activation_checkpoint import checkpoint_segment, checkpointing_active
from ...nn.aux_losses import AUX_LOSS_KINDS, CE_AVERAGES, resized_cross_entropy
from ...nn.auxiliary_heads import AuxiliaryHeads
from ...nn.decode_heads import DECODE_HEADS
from ...nn.sliding_window import sliding_window_inference
from ..backbone.hrnet import HRNetV2Backbone
from ..common import check_finite_losses, normalized_images, padded_labels, semantic_outputs
from .resnet import ResNet, checkpointed_resnet_features

__all__ = [
    "CPPSegmentor",
    "build_seg_head",
    "build_aux_heads",
    "aux_head_features",
    "TEST_MODES",
    "pad_bottom_right",
]

#: values of TEST.CPP_SEGMENTOR.MODE
TEST_MODES = ("whole", "slide")
#: what MODEL.CPP_SEGMENTOR.CHECKPOINT_ACTIVATIONS can name
CHECKPOINT_PARTS = ("backbone", "decode_head")


def pad_bottom_right(x: torch.Tensor, size, value) -> torch.Tensor:
    """``x`` (..., H, W) padded at the bottom and right with ``value`` to at least ``size``."""
    ph, pw = max(int(size[0]) - x.shape[-2], 0), max(int(size[1]) - x.shape[-1], 0)
    return F.pad(x, (0, pw, 0, ph), value=value) if ph or pw else x


def _test_config(cfg):
    t = cfg.TEST.CPP_SEGMENTOR
    if t.MODE not in TEST_MODES:
        raise ValueError(
            f"TEST.CPP_SEGMENTOR.MODE: {t.MODE!r}; valid choices: {', '.join(TEST_MODES)}"
        )
    for key in ("CROP_SIZE", "STRIDE"):
        v = t[key]
        if not (len(v) == 2 and all(isinstance(x, int) and x > 0 for x in v)):
            raise ValueError(
                f"TEST.CPP_SEGMENTOR.{key}: {v!r} must be two positive integers (h, w)"
            )
    if not (isinstance(t.SIZE_DIVISIBILITY, int) and t.SIZE_DIVISIBILITY >= 1):
        raise ValueError(
            f"TEST.CPP_SEGMENTOR.SIZE_DIVISIBILITY: {t.SIZE_DIVISIBILITY!r} must be an integer >= 1"
        )
    pad = cfg.INPUT.PAD.MODE
    if pad == "normalized" and not (cfg.INPUT.CROP.ENABLED and cfg.INPUT.CROP.TYPE == "absolute"):
        raise ValueError(
            "INPUT.PAD.MODE 'normalized' pads to INPUT.CROP.SIZE: it needs INPUT.CROP.ENABLED True "
            "and INPUT.CROP.TYPE 'absolute'"
        )
    return {
        "test_mode": t.MODE,
        "test_crop_size": tuple(t.CROP_SIZE),
        "test_stride": tuple(t.STRIDE),
        "test_size_divisibility": t.SIZE_DIVISIBILITY,
        "train_pad_size": tuple(cfg.INPUT.CROP.SIZE) if pad == "normalized" else None,
    }


def _checkpoint_parts(cfg, backbone):
    parts = tuple(cfg.MODEL.CPP_SEGMENTOR.CHECKPOINT_ACTIVATIONS)
    key = "MODEL.CPP_SEGMENTOR.CHECKPOINT_ACTIVATIONS"
    bad = [p for p in parts if p not in CHECKPOINT_PARTS]
    if bad or len(set(parts)) != len(parts):
        raise ValueError(
            f"{key}: {list(parts)}; valid: distinct names out of {', '.join(CHECKPOINT_PARTS)}"
        )
    if "backbone" in parts and not isinstance(backbone, (ResNet, HRNetV2Backbone)):
        raise ValueError(
            f"{key}: 'backbone' needs the dilated ResNet or the HRNetV2 backbone, not "
            f"{type(backbone).__name__} ({cfg.MODEL.BACKBONE.NAME}); remove 'backbone'"
        )
    return parts


def _config_value(value):
    return tuple(value) if isinstance(value, list) else value


def build_seg_head(cfg, input_shape):
    """The decode head named by ``MODEL.DECODE_HEAD.NAME`` from the one decode-head registry
    (:data:`seethroughnet.nn.decode_heads.DECODE_HEADS`), with the shared ``MODEL.DECODE_HEAD`` keys
    and the option keys the head declared in its ``@register_decode_head``."""
    d = cfg.MODEL.DECODE_HEAD
    if d.NAME not in DECODE_HEADS:
        raise ValueError(
            f"MODEL.DECODE_HEAD.NAME: unknown decode head {d.NAME!r}; valid choices: "
            f"{', '.join(sorted(DECODE_HEADS))}"
        )
    head = DECODE_HEADS[d.NAME]
    options = {arg: _config_value(d[key]) for arg, key in head.config_keys.items()}
    return head(
        {k: v.channels for k, v in input_shape.items()},
        cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
        channels=d.CHANNELS,
        in_features=list(d.IN_FEATURES),
        norm=d.NORM,
        dropout=d.DROPOUT,
        **options,
    )


def aux_head_features(cfg):
    """The features that get an auxiliary head: all of ``MODEL.CPP_AUX.IN_FEATURES`` for
    ``NUM_HEADS -1``; for ``NUM_HEADS n`` the first ``n`` of ``ADD_ORDER`` (default res4 -- the
    position of MMSegmentation's single auxiliary head -- then res5, res3, res2), returned in
    ``IN_FEATURES`` order. ``[]`` when ``ENABLED`` is False."""
    a = cfg.MODEL.CPP_AUX
    feats = list(a.IN_FEATURES) if a.ENABLED else []
    if not a.ENABLED or a.NUM_HEADS < 0:
        return feats
    order = list(a.ADD_ORDER)
    if len(set(order)) != len(order):
        raise ValueError(f"MODEL.CPP_AUX.ADD_ORDER {order} lists a feature twice")
    missing = [f for f in feats if f not in order]
    if missing:
        raise ValueError(
            f"MODEL.CPP_AUX.ADD_ORDER {order} misses {missing} of MODEL.CPP_AUX.IN_FEATURES "
            f"{feats}; it must list every feature of IN_FEATURES"
        )
    if a.NUM_HEADS > len(feats):
        raise ValueError(
            f"MODEL.CPP_AUX.NUM_HEADS {a.NUM_HEADS} > len(MODEL.CPP_AUX.IN_FEATURES) {len(feats)}; "
            f"valid choices: -1 (all) or 0..{len(feats)}"
        )
    chosen = set([f for f in order if f in feats][: a.NUM_HEADS])
    return [f for f in feats if f in chosen]


def build_aux_heads(cfg, input_shape):
    a = cfg.MODEL.CPP_AUX
    if a.LOSS not in AUX_LOSS_KINDS:
        raise ValueError(
            f"MODEL.CPP_AUX.LOSS: unknown auxiliary loss {a.LOSS!r}; valid choices: "
            f"{', '.join(AUX_LOSS_KINDS)}"
        )
    feats = aux_head_features(cfg)
    weights = list(a.WEIGHTS)
    if len(weights) == 1:
        weights = weights * len(feats)
    elif len(weights) == len(
        a.IN_FEATURES
    ):  # one per IN_FEATURES entry: pick the chosen ones by name
        by_name = dict(zip(a.IN_FEATURES, weights))
        weights = [by_name[f] for f in feats]
    else:
        raise ValueError(
            f"MODEL.CPP_AUX.WEIGHTS has {len(weights)} values; valid: 1 (for all heads) or one per "
            f"MODEL.CPP_AUX.IN_FEATURES entry ({len(a.IN_FEATURES)})"
        )
    return AuxiliaryHeads(
        {k: v.channels for k, v in input_shape.items()},
        cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
        feats,
        loss_kind=a.LOSS,
        weights=weights,
        hidden_channels=a.HIDDEN_CHANNELS,
        ignore_value=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
        kl_direction=a.KL_DIRECTION,
        ignore_mode=a.IGNORE_MODE,
        norm=cfg.MODEL.DECODE_HEAD.NORM,
        dropout=a.DROPOUT,
        ce_average=_ce_average(a.CE_LOSS_AVERAGE, "MODEL.CPP_AUX.CE_LOSS_AVERAGE"),
    )


def _ce_average(value, key):
    if value not in CE_AVERAGES:
        raise ValueError(
            f"{key}: unknown average {value!r}; valid choices: {', '.join(CE_AVERAGES)}"
        )
    return value


@META_ARCH_REGISTRY.register()
class CPPSegmentor(nn.Module):
    """``MODEL.META_ARCHITECTURE: CPPSegmentor``. Training output: dict of named losses
    (``loss_sem_seg``, ``loss_aux_<feature>``, head extras); inference:
    ``[{"sem_seg": (K, H, W)}]``."""

    @configurable
    def __init__(
        self,
        *,
        backbone,
        decode_head,
        aux_heads,
        pixel_mean,
        pixel_std,
        ignore_value: int,
        loss_weight: float = 1.0,
        loss_average: str = "non_ignored",
        size_divisibility: int = 32,
        check_finite_loss: bool = True,
        train_pad_size=None,
        test_mode: str = "whole",
        test_crop_size=(480, 480),
        test_stride=(320, 320),
        test_size_divisibility: int = 32,
        backbone_size_divisibility: int = 1,
        checkpoint_parts=(),
    ):
        """``checkpoint_parts``: not in the paper, a memory option: any of
        :data:`CHECKPOINT_PARTS` whose training activations are recomputed in backward
        (:mod:`seethroughnet.nn.activation_checkpoint`; same losses, gradients and BatchNorm
        statistics). ``"backbone"``: one segment per residual block of a detectron2 ``ResNet``
        (and its stem), or per HRNet module of :class:`HRNetV2Backbone`; ``"decode_head"``: the
        decode head as one segment."""
        super().__init__()
        self.backbone = backbone
        self.decode_head = decode_head
        self.aux_heads = aux_heads
        self.ignore_value = ignore_value
        self.loss_weight = loss_weight
        self.loss_average = loss_average
        self.size_divisibility = size_divisibility
        self.check_finite_loss = check_finite_loss
        self.train_pad_size = tuple(train_pad_size) if train_pad_size is not None else None
        self.test_mode = test_mode
        self.test_crop_size = tuple(test_crop_size)
        self.test_stride = tuple(test_stride)
        self.test_size_divisibility = max(test_size_divisibility, backbone_size_divisibility, 1)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        self.checkpoint_parts = tuple(checkpoint_parts)
        if isinstance(backbone, HRNetV2Backbone):  # checkpointed per HRNet module by the encoder
            backbone.encoder.checkpoint_activations = "backbone" in self.checkpoint_parts

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        shape = backbone.output_shape()
        return {
            "backbone": backbone,
            "decode_head": build_seg_head(cfg, shape),
            "aux_heads": build_aux_heads(cfg, shape),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "ignore_value": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            "loss_weight": cfg.MODEL.DECODE_HEAD.LOSS_WEIGHT,
            "loss_average": _ce_average(
                cfg.MODEL.DECODE_HEAD.LOSS_AVERAGE, "MODEL.DECODE_HEAD.LOSS_AVERAGE"
            ),
            "size_divisibility": max(32, backbone.size_divisibility),
            "check_finite_loss": cfg.SOLVER.CHECK_FINITE_LOSS,
            "backbone_size_divisibility": backbone.size_divisibility,
            "checkpoint_parts": _checkpoint_parts(cfg, backbone),
            **_test_config(cfg),
        }

    @property
    def device(self):
        return self.pixel_mean.device

    def forward(self, batched_inputs):
        if not self.training:
            return self.inference(batched_inputs)
        images = normalized_images(
            batched_inputs, self.pixel_mean, self.pixel_std, self.size_divisibility
        )
        if self.train_pad_size is not None:  # SegDataPreProcessor(size=crop_size): 0 after norm.
            images.tensor = pad_bottom_right(images.tensor, self.train_pad_size, 0.0)
        features = self._training_features(images.tensor)
        logits, extra = self._training_decode(features)
        labels = padded_labels(
            batched_inputs, self.size_divisibility, self.ignore_value, self.device
        )
        labels = pad_bottom_right(labels, images.tensor.shape[-2:], self.ignore_value)
        ce = {"average": self.loss_average}
        losses = {
            "loss_sem_seg": self.loss_weight
            * resized_cross_entropy(logits, labels, self.ignore_value, **ce)
        }
        for name, (extra_logits, w) in extra.items():
            losses[name] = w * resized_cross_entropy(extra_logits, labels, self.ignore_value, **ce)
        losses.update(self.aux_heads(features, labels))
        if self.check_finite_loss:
            check_finite_losses(losses)
        return losses

    def _training_features(self, images: torch.Tensor):
        if isinstance(self.backbone, ResNet) and checkpointing_active(
            self, "backbone" in self.checkpoint_parts
        ):
            return checkpointed_resnet_features(self.backbone, images)
        return self.backbone(images)  # HRNetV2Backbone checkpoints itself when asked

    def _training_decode(self, features):
        if not checkpointing_active(self, "decode_head" in self.checkpoint_parts):
            return self._decode(features)
        names = sorted(features)

        def decode(*tensors):
            return self._decode(dict(zip(names, tensors)))

        return checkpoint_segment(decode, *[features[n] for n in names], modules=[self.decode_head])

    def _decode(self, features):
        out = self.decode_head(features)
        return (out["logits"], out.get("extra", {})) if isinstance(out, dict) else (out, {})

    def encode_decode(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, K, H, W)`` of normalised ``images`` ``(N, 3, H, W)`` at their own size
        (MMSegmentation's ``encode_decode``): zero-padded to a multiple of the test size
        divisibility, decode-head logits bilinearly up-sampled to the padded size, cropped."""
        h, w = images.shape[-2:]
        div = self.test_size_divisibility
        ph, pw = math.ceil(h / div) * div, math.ceil(w / div) * div
        logits, _ = self._decode(self.backbone(pad_bottom_right(images, (ph, pw), 0.0)))
        logits = F.interpolate(logits, size=(ph, pw), mode="bilinear", align_corners=False)
        return logits[..., :h, :w]

    def inference(self, batched_inputs):
        """``[{"sem_seg": (K, height, width)}]``: whole-image or sliding-window logits
        (``TEST.CPP_SEGMENTOR``) resized to each input's ``height`` x ``width``."""
        images = normalized_images(batched_inputs, self.pixel_mean, self.pixel_std, 1)
        if self.test_mode == "slide":
            logits = sliding_window_inference(
                images.tensor, self.encode_decode, self.test_crop_size, self.test_stride
            )
        else:
            logits = self.encode_decode(images.tensor)
        return semantic_outputs(logits, batched_inputs, images.image_sizes)
