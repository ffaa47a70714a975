"""SeeThroughNet (Han, Yoo, Oh, CVPR 2022), Sections 3.2-3.3, Figure 4, Eqs. 3-7, in plain PyTorch.

One *pass* at image resolution ``r`` (:meth:`SeeThroughNet.forward_single`)::

    F = HRNetV2(image_r)                              # res2..res5, strides 4..32
    decoder(F) -> X_s (coarse), alpha_s, X'_s         # Eq. 3, X'_{16,8,4}
    X_r = OCR(concat_hrnetv2(F), soft regions = X'_4) # final logits of the pass, stride 4
    alpha_r = ScaleAttentionHead(OCR features)        # only where a lower-scale merge needs it

**Training** (Section 3.3): two passes, ``r = 1.0`` and ``r = 0.5`` (bilinearly down-sampled input),
sharing every weight, merged by Eq. 4: ``X = up(alpha_0.5 * X_0.5) + (1 - up(alpha_0.5)) * X_1.0``.
Loss terms (:meth:`SeeThroughNet.losses`, every term returned under its own name):

* Eq. 5, ``loss_rmi``: RMI loss (lambda = 0.5 between its BCE and MI parts, exactly as the RMI
  reference code computes it, :class:`~seethroughnet.nn.rmi_loss.RMILoss`) on the merged ``X``,
  bilinearly up-sampled to the label size.
* Eq. 6, ``loss_cpp_s{16,8,4}_r{1.0,0.5}``: the decoder's auxiliary losses at 1/16, 1/8, 1/4 of
  *both* passes, on the coarse maps ``X_16, X_8, X_4`` (``cpp_on="coarse"``, default: Sec. 3.2
  calls the coarse heads' predictions ``X'_S`` and puts the CPP losses on them) or on the
  aggregated maps of Eq. 3 (``cpp_on="aggregated"``), with CPP targets + KL
  (``aux_loss_kind="cpp_kl"``) or the ablations ``"upsample_ce"`` ("CPP off": MMSeg-style
  up-sampled CE) / ``"nearest_ce"``. A map of the ``r = 0.5`` pass at stride ``s`` has stride
  ``2s`` w.r.t. the full-resolution labels, so its CPP target is taken at ``2s`` (32, 16, 8).
* Eq. 7, ``loss_ce_r1.0`` / ``loss_ce_r0.5``: ``gamma`` (0.05) times a per-pass loss on each
  pass's own prediction ``X_1.0`` and ``X_0.5`` up-sampled to the label size (Tao et al.'s
  per-scale losses): softmax cross-entropy (``per_scale_loss="ce"``, default, the paper's
  ``L_ce``) or the sigmoid BCE that [41]'s code computes there (``"bce"``, RMI with RMI off).

The total loss is the plain sum of the returned terms (each already multiplied by its weight).

**Inference** (:meth:`SeeThroughNet.inference`): any set of scales (paper: {0.5, 1.0, 2.0}) merged
hierarchically with the learnt attention (Tao et al.) or averaged, optional horizontal flip (the
merged results of the plain and flipped image are averaged), optional sliding window per scale.

Where the paper is silent we follow HRNet-OCR / Tao et al.; see ``docs/seethroughnet_model.md``.

The options (``cpp_on``, ``per_scale_loss``, ... above) are the fields of the option groups of
:mod:`seethroughnet.nn.options`, each with its default and config key.
"""

from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .activation_checkpoint import checkpoint_segment, checkpointing_active
from .aux_losses import AuxiliaryLoss, resized_cross_entropy
from .cpp import cpp_targets
from .layers import resize
from .ocr_head import OCRHead, concat_hrnetv2
from .options import (
    CPP_ON_CHOICES,
    MERGE_MODES,
    PER_SCALE_LOSSES,
    ActivationCheckpointing,
    DecoderOptions,
    EncoderOptions,
    InferenceOptions,
    LossOptions,
    OCROptions,
    TrainingScales,
    _pair,
)
from .rmi_loss import RMILoss
from .scale_attention import ScaleAttentionHead, average_merge, hierarchical_merge
from .see_through_decoder import SeeThroughDecoder
from .sliding_window import sliding_window_inference

__all__ = [
    "SeeThroughNet",
    "EncoderOptions",
    "DecoderOptions",
    "OCROptions",
    "TrainingScales",
    "LossOptions",
    "InferenceOptions",
    "ActivationCheckpointing",
    "MERGE_MODES",
    "CPP_ON_CHOICES",
    "PER_SCALE_LOSSES",
]

_AGG_STRIDES = (16, 8, 4)


def _rkey(r: float) -> str:
    return f"r{float(r)}"


class SeeThroughNet(nn.Module):
    """HRNetV2 + SeeThrough decoder + OCR head + two-resolution scale attention.

    Args:
        num_classes: ``K`` (19 for Cityscapes).
        encoder / decoder / ocr / scales / loss / inference: the option groups of
            :mod:`seethroughnet.nn.options` (each documents its fields, the equation it serves and
            the config key of every field); the defaults are the paper's model.
        head_norm: norm of the freshly initialised heads (decoder, OCR, attention), one of
            :data:`~seethroughnet.nn.layers.NORMS` (``MODEL.SEE_THROUGH.HEAD_NORM``).
        align_corners: of every bilinear resize of feature maps / logits.
        checkpointing: activation checkpointing of the training passes (not in the paper; same
            outputs, gradients and BatchNorm statistics, less memory, no state:
            :class:`~seethroughnet.nn.options.ActivationCheckpointing`).

    The groups are kept as ``encoder_options``, ``decoder_options``, ``ocr_options``,
    ``scale_options``, ``loss_options``, ``inference_options`` and ``checkpointing_options``.
    """

    def __init__(
        self,
        num_classes: int = 19,
        encoder: EncoderOptions = EncoderOptions(),
        decoder: DecoderOptions = DecoderOptions(),
        ocr: OCROptions = OCROptions(),
        scales: TrainingScales = TrainingScales(),
        loss: LossOptions = LossOptions(),
        inference: InferenceOptions = InferenceOptions(),
        head_norm: str = "BN",
        align_corners: bool = False,
        checkpointing: ActivationCheckpointing = ActivationCheckpointing(),
    ):
        super().__init__()
        self.encoder_options, self.decoder_options, self.ocr_options = encoder, decoder, ocr
        self.scale_options, self.loss_options, self.inference_options = scales, loss, inference
        self.checkpointing_options = checkpointing
        self.num_classes = num_classes
        self.ignore_value = loss.ignore_value
        self.align_corners = align_corners
        self.train_resolutions = scales.resolutions
        self.encoder = encoder.build()
        self.decoder = SeeThroughDecoder(
            self.encoder.channels,
            num_classes,
            head_channels=decoder.head_channels,
            attention_channels=decoder.attention_channels,
            use_scale_attention=decoder.use_scale_attention,
            norm=head_norm,
            align_corners=align_corners,
        )
        self.ocr = OCRHead(
            sum(self.encoder.channels.values()),
            num_classes,
            mid_channels=ocr.mid_channels,
            key_channels=ocr.key_channels,
            dropout=ocr.dropout,
            norm=head_norm,
        )
        # Tao et al.'s attention head is trained only through Eq. 4; without the r=0.5 pass it
        # would be an unused (DDP-unfriendly), untrained module, so it is not built.
        self.scale_attention: Optional[ScaleAttentionHead] = (
            ScaleAttentionHead(ocr.mid_channels, scales.attention_channels, head_norm)
            if 0.5 in scales.resolutions
            else None
        )
        self.aux_loss = AuxiliaryLoss(
            loss.aux_loss_kind,
            num_classes,
            loss.ignore_value,
            kl_direction=loss.kl_direction,
            ignore_mode=loss.ignore_mode,
        )
        self.rmi_loss = RMILoss(
            num_classes,
            radius=loss.rmi_radius,
            pool=loss.rmi_pool,
            pool_stride=loss.rmi_pool_stride,
            lambda_weight=loss.rmi_lambda,
            class_reduction=loss.rmi_class_reduction,
            ignore_value=loss.ignore_value,
        )
        self.cpp_weights = dict(zip(_AGG_STRIDES, loss.aux_weights))
        self.encoder.checkpoint_activations = "encoder" in checkpointing.parts

    # ------------------------------------------------------------------------------------------
    @property
    def size_divisibility(self) -> int:
        """Training inputs must be multiples of this (32 per pass, 64 with the r=0.5 pass)."""
        return int(round(self.encoder.size_divisibility / min(self.train_resolutions)))

    def forward_single(
        self, images: torch.Tensor, with_scale_attention: bool = False
    ) -> Dict[str, torch.Tensor]:
        """One pass (sizes multiples of 32). Returns the decoder outputs (``coarse_*``, ``attn_*``,
        ``agg_*``, ``soft_regions``), ``logits`` (X of this pass, stride 4), ``ocr_feats`` and, if
        asked, ``scale_attn`` (Tao et al.'s alpha of this pass)."""
        parts = self.checkpointing_options.parts
        feats = self.encoder(images)  # checkpointed per HRNet module if "encoder" in parts
        if checkpointing_active(self, "decoder" in parts):
            names = tuple(feats)
            out = checkpoint_segment(
                lambda *maps: dict(self.decoder(dict(zip(names, maps)))),
                *feats.values(),
                modules=[self.decoder],
            )
        else:
            out = dict(self.decoder(feats))
        if checkpointing_active(self, "ocr" in parts):
            ocr = checkpoint_segment(
                self._ocr, *feats.values(), out["soft_regions"], modules=[self.ocr]
            )
        else:
            ocr = self._ocr(*feats.values(), out["soft_regions"])
        out["logits"] = ocr["logits"]
        out["ocr_feats"] = ocr["feats"]
        if with_scale_attention:
            if self.scale_attention is None:
                raise ValueError(
                    "no scale-attention head: the model was built with "
                    "TrainingScales(resolutions=(1.0,))"
                )
            out["scale_attn"] = self.scale_attention(ocr["feats"])
        return out

    def _ocr(self, *maps: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The OCR head on the HRNetV2 concatenation of the branches ``maps[:-1]`` (res2..res5)
        with the soft object regions ``maps[-1]``."""
        feats = dict(zip(("res2", "res3", "res4", "res5"), maps[:-1]))
        return self.ocr(concat_hrnetv2(feats, align_corners=self.align_corners), maps[-1])

    def forward(self, images: torch.Tensor):
        """Training: ``{"r1.0": pass dict, "r0.5": pass dict, "merged": X (N,K,H/4,W/4)}``
        (``"r0.5"`` only with two training resolutions; its dict holds ``scale_attn``).
        Eval: :meth:`inference` with ``inference_options``, ``(N, K, H, W)`` logits."""
        if not self.training:
            opts = self.inference_options
            crop_size, stride = opts.window
            return self.inference(images, opts.scales, opts.flip, opts.merge, crop_size, stride)
        h, w = images.shape[-2:]
        div = self.size_divisibility
        if h % div or w % div:
            raise ValueError(
                f"training input size {(h, w)} must be a multiple of {div} "
                "(pad images with 0 and labels with the ignore value)"
            )
        outputs: Dict[str, object] = {}
        full = self.forward_single(images)
        outputs[_rkey(1.0)] = full
        if 0.5 in self.train_resolutions:
            half_img = F.interpolate(
                images, size=(h // 2, w // 2), mode="bilinear", align_corners=self.align_corners
            )
            half = self.forward_single(half_img, with_scale_attention=True)
            outputs[_rkey(0.5)] = half
            a = half["scale_attn"]
            size = full["logits"].shape[-2:]
            outputs["merged"] = (
                resize(a * half["logits"], size, self.align_corners)
                + (1.0 - resize(a, size, self.align_corners)) * full["logits"]
            )
        else:
            outputs["merged"] = full["logits"]
        return outputs

    # ------------------------------------------------------------------------------------------
    def losses(
        self, outputs: Mapping[str, object], labels: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        """Named, weighted loss terms (Eqs. 5-7); their sum is the training loss.

        ``labels``: ``(N, H, W)`` at the input resolution, ``ignore_value`` for ignored pixels.
        Keys: ``loss_rmi``; ``loss_cpp_s{16,8,4}_r{1.0,0.5}`` (on ``coarse_s`` or ``agg_s``, see
        ``cpp_on``); ``loss_ce_r{1.0,0.5}`` (softmax CE or BCE, see ``per_scale_loss``); the
        options are ``loss_options`` (:class:`~seethroughnet.nn.options.LossOptions`).
        """
        opts = self.loss_options
        labels = labels.long()
        out: Dict[str, torch.Tensor] = {
            "loss_rmi": opts.rmi_weight * self.rmi_loss(outputs["merged"], labels)
        }
        targets: Dict[int, torch.Tensor] = {}
        if self.aux_loss.needs_cpp_targets:
            strides = sorted(
                {int(round(s / r)) for s in _AGG_STRIDES for r in self.train_resolutions}
            )
            with torch.no_grad():
                maps = cpp_targets(labels, strides, self.num_classes, self.ignore_value)
            targets = dict(zip(strides, maps))
        for r in sorted(self.train_resolutions, reverse=True):
            branch = outputs[_rkey(r)]
            for s in _AGG_STRIDES:
                logits = branch[f"{'coarse' if opts.cpp_on == 'coarse' else 'agg'}_{s}"]
                t = targets.get(int(round(s / r)))
                if t is not None and t.shape[-2:] != logits.shape[-2:]:
                    t = None  # let the loss derive the stride from the shapes
                out[f"loss_cpp_s{s}_{_rkey(r)}"] = self.cpp_weights[s] * self.aux_loss(
                    logits, labels, t
                )
        for r in sorted(self.train_resolutions, reverse=True):
            logits = outputs[_rkey(r)]["logits"]
            if opts.per_scale_loss == "bce":
                per_scale = self.rmi_loss.binary_cross_entropy(logits, labels)
            else:
                per_scale = resized_cross_entropy(logits, labels, self.ignore_value)
            out[f"loss_ce_{_rkey(r)}"] = opts.gamma * per_scale
        return out

    # ------------------------------------------------------------------------------------------
    def _padded_pass(self, images: torch.Tensor, with_attn: bool) -> Dict[str, torch.Tensor]:
        """One pass on an image of any size: zero-pad (bottom/right) to a multiple of 32, run,
        up-sample ``X`` and ``alpha`` to the padded size, crop back to the input size and form
        ``alpha * X`` there: the product at the pass's input resolution, as [41]'s inference does
        (NVIDIA/semantic-segmentation network/ocrnet.py ``MscaleOCR._fwd`` up-samples ``cls_out``
        and ``attn`` to the pass's input size before ``nscale_forward`` multiplies them;
        tools/compare_with_reference.py)."""
        h, w = images.shape[-2:]
        div = self.encoder.size_divisibility
        ph, pw = math.ceil(h / div) * div, math.ceil(w / div) * div
        x = F.pad(images, (0, pw - w, 0, ph - h)) if (ph, pw) != (h, w) else images
        o = self.forward_single(x, with_scale_attention=with_attn)
        res = {"logits": resize(o["logits"], (ph, pw), self.align_corners)[..., :h, :w]}
        if with_attn:
            a = o["scale_attn"]
            res["attn"] = resize(a, (ph, pw), self.align_corners)[..., :h, :w]
            res["weighted"] = res["attn"] * res["logits"]
        return res

    def _predict_scale(self, images, with_attn, crop_size, stride) -> Dict[str, torch.Tensor]:
        """Per-scale dense maps at this scale's full resolution, by sliding window if asked
        (overlaps averaged; :func:`~seethroughnet.nn.sliding_window.sliding_window_inference`)."""
        if crop_size is None:
            return self._padded_pass(images, with_attn)
        ch, cw = _pair(crop_size)
        sh, sw = _pair(stride) if stride is not None else (ch, cw)
        h, w = images.shape[-2:]
        if h <= ch and w <= cw:
            return self._padded_pass(images, with_attn)
        return sliding_window_inference(
            images, lambda window: self._padded_pass(window, with_attn), (ch, cw), (sh, sw)
        )

    @torch.no_grad()
    def inference(
        self,
        images: torch.Tensor,
        scales: Sequence[float] = (1.0,),
        flip: bool = False,
        merge: str = "attention",
        crop_size: Optional[Union[int, Tuple[int, int]]] = None,
        stride: Optional[Union[int, Tuple[int, int]]] = None,
    ) -> torch.Tensor:
        """Full-resolution logits ``(N, K, H, W)`` for normalised ``images`` ``(N, 3, H, W)``.

        Args:
            scales: image scales (paper: ``(0.5, 1.0, 2.0)``); the image is bilinearly resized
                to ``round(s * H) x round(s * W)``.
            flip: also run on the horizontally flipped image and average the two merged results.
            merge: ``"attention"`` (Tao et al.'s hierarchical merge with the learnt per-scale
                attention, highest scale innermost; needs the head, i.e. a model trained with
                ``TrainingScales(resolutions=(0.5, 1.0))``) or ``"average"`` (mean of the
                per-scale logits).
            crop_size / stride: sliding-window inference per scale (windows of ``crop_size``,
                overlaps averaged; ``stride`` defaults to ``crop_size``); ``None``: whole image.
                Any image size is accepted (each pass is zero-padded to a multiple of 32).
        """
        if merge not in MERGE_MODES:
            raise ValueError(f"merge must be one of {MERGE_MODES}, got {merge!r}")
        if not scales:
            raise ValueError("need at least one scale")
        scales = sorted({float(s) for s in scales})
        h, w = images.shape[-2:]
        with_attn = merge == "attention" and len(scales) > 1
        if with_attn and self.scale_attention is None:
            raise ValueError(
                "merge='attention' needs the scale-attention head "
                "(TrainingScales(resolutions=(0.5, 1.0))); use merge='average'"
            )
        result = None
        flips = (False, True) if flip else (False,)
        for do_flip in flips:
            img = images.flip(-1) if do_flip else images
            logits, attns, weighted = {}, {}, {}
            for s in scales:
                size = (max(1, int(round(h * s))), max(1, int(round(w * s))))
                x = (
                    img
                    if size == (h, w)
                    else F.interpolate(
                        img, size=size, mode="bilinear", align_corners=self.align_corners
                    )
                )
                o = self._predict_scale(x, with_attn and s != scales[-1], crop_size, stride)
                logits[s] = o["logits"]
                if "attn" in o:
                    attns[s], weighted[s] = o["attn"], o["weighted"]
            if merge == "average" or len(scales) == 1:
                merged = average_merge(logits, (h, w), self.align_corners)
            else:
                merged = hierarchical_merge(
                    logits, attns, (h, w), self.align_corners, weighted=weighted
                )
            if do_flip:
                merged = merged.flip(-1)
            result = merged if result is None else result + merged
        return result / len(flips)
