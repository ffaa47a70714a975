"""``CPPSegmentor``: backbone + decode head + training-only auxiliary heads (SeeThroughNet, CVPR
2022, Table 1: CPP as a plug-in for any segmentation model).

Training loss = ``LOSS_WEIGHT * CE(up(decode logits), labels)`` (bilinear up-sampling to the label
size, ignore ``MODEL.SEM_SEG_HEAD.IGNORE_VALUE``) + the decode head's own extra terms (OCRNet's soft
region CE, weight 0.4) + ``sum_i w_i * aux_loss_i`` of the auxiliary heads
(:class:`seethroughnet.nn.auxiliary_heads.AuxiliaryHeads`). At inference only the backbone and the
decode head run."""

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from torch import nn

from ...nn.aux_losses import AUX_LOSS_KINDS, resized_cross_entropy
from ...nn.auxiliary_heads import AuxiliaryHeads
from ...nn.decode_heads import DECODE_HEADS
from ..common import check_finite_losses, normalized_images, padded_labels, semantic_outputs

__all__ = ["CPPSegmentor", "build_seg_head", "build_aux_heads", "aux_head_features"]


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
    )


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
        size_divisibility: int = 32,
        test_size_divisibility=None,
        check_finite_loss: bool = True,
    ):
        super().__init__()
        self.backbone = backbone
        self.decode_head = decode_head
        self.aux_heads = aux_heads
        self.ignore_value = ignore_value
        self.loss_weight = loss_weight
        self.size_divisibility = size_divisibility
        # inference pads only what the backbone needs (dilated ResNet: nothing, as MMSegmentation's
        # whole-image test; HRNet: multiples of 32): zero padding changes the logits near the
        # border and the image-level poolings (PSP bin 1, ASPP image pool)
        self.test_size_divisibility = (
            size_divisibility if test_size_divisibility is None else test_size_divisibility
        )
        self.check_finite_loss = check_finite_loss
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

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
            "size_divisibility": max(32, backbone.size_divisibility),
            "test_size_divisibility": backbone.size_divisibility,
            "check_finite_loss": cfg.SOLVER.CHECK_FINITE_LOSS,
        }

    @property
    def device(self):
        return self.pixel_mean.device

    def forward(self, batched_inputs):
        div = self.size_divisibility if self.training else self.test_size_divisibility
        images = normalized_images(batched_inputs, self.pixel_mean, self.pixel_std, div)
        features = self.backbone(images.tensor)
        out = self.decode_head(features)
        logits, extra = (
            (out["logits"], out.get("extra", {})) if isinstance(out, dict) else (out, {})
        )
        if self.training:
            labels = padded_labels(
                batched_inputs, self.size_divisibility, self.ignore_value, self.device
            )
            losses = {
                "loss_sem_seg": self.loss_weight
                * resized_cross_entropy(logits, labels, self.ignore_value)
            }
            for name, (extra_logits, w) in extra.items():
                losses[name] = w * resized_cross_entropy(extra_logits, labels, self.ignore_value)
            losses.update(self.aux_heads(features, labels))
            if self.check_finite_loss:
                check_finite_losses(losses)
            return losses
        logits = F.interpolate(
            logits, size=images.tensor.shape[-2:], mode="bilinear", align_corners=False
        )
        return semantic_outputs(logits, batched_inputs, images.image_sizes)
