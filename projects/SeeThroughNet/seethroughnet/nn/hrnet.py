"""HRNetV2 encoder for SeeThroughNet (paper Section 3.2, Figure 4: "Backbone: HRNetV2-W48").

SeeThroughNet takes the four parallel branches of HRNetV2 (Wang et al., "Deep High-Resolution
Representation Learning for Visual Recognition", TPAMI 2020) at strides 4, 8, 16 and 32. The
SeeThrough decoder puts one coarse semantic head on each branch, and the OCR head takes all four
branches up-sampled to stride 4 and concatenated (the HRNetV2 representation: 48+96+192+384 = 720
channels for W48).

This module wraps the timm implementation (``features_only=True, feature_location=""``, i.e. the raw
branch outputs, not the classification "incre" head) and drops the stem tap. It adds what a
segmentation backbone needs and timm does not give:

* ``checkpoint``: a *local* ImageNet checkpoint file (no download is ever attempted). A timm
  classification ``state_dict`` or the official HRNet ImageNet release (HRNet-Image-Classification
  ``hrnetv2_w48_imagenet_pretrained.pth``; the two name and shape every tensor alike, see
  ``tests/modeling/test_imagenet_init.py``) is accepted: wrapper keys (``state_dict`` / ``model``),
  ``module.`` / ``backbone.`` / ``body.`` prefixes and the classification head (``incre_modules``,
  ``downsamp_modules``, ``final_layer``, ``classifier``) are dropped. Loading is strict unless
  ``allow_partial=True``; a mismatch raises a ``ValueError`` that lists the missing, unexpected and
  wrongly-shaped keys.
* ``norm``: ``"BN"`` (timm's ``BatchNorm2d``), ``"SyncBN"`` (``nn.SyncBatchNorm``) or ``"FrozenBN"``
  (:class:`FrozenBatchNorm2d`, fixed statistics and affine parameters).
* ``freeze_at``: detectron2 ResNet semantics. 0 freezes nothing, 1 the stem (conv1/bn1/conv2/bn2),
  ``k >= 2`` the stem and HRNet stages 1..k-1 (stage 1 = ``layer1``, stage j > 1 =
  ``transition{j-1}`` + ``stage{j}``), so 5 freezes the whole encoder. Frozen parts get
  ``requires_grad=False`` and their BatchNorms become :class:`FrozenBatchNorm2d`, as in detectron2.

* ``fuse_upsample``: how each HRNet module's fuse layers up-sample a lower-resolution branch
  (after its 1x1 conv + BN) before the sum. ``"bilinear"`` is the segmentation HRNet
  (MMSegmentation's ``HRModule``: bilinear, ``align_corners=False``; HRNet-Semantic-Segmentation's
  HRNet-OCR: bilinear with ``align_corners=True``); ``"nearest"`` is timm's classification network
  unchanged. ``fuse_align_corners`` is the bilinear mode's ``align_corners``. The choice changes the
  function, not the parameters: state-dict keys and shapes are the same, so ImageNet (timm or
  official) checkpoints load either way.

HRNet's fuse layers up-sample lower branches by exactly 2, so the input height and width must be
multiples of 32 (:attr:`HRNetV2Encoder.size_divisibility`).
"""

from __future__ import annotations

import logging
import warnings
from typing import Callable, Dict, List, NamedTuple, Optional

import torch
from torch import nn

from .activation_checkpoint import checkpoint_segment, checkpointing_active
from .layers import (  # FrozenBatchNorm2d, convert_norm: re-exported
    FrozenBatchNorm2d,
    check_norm,
    convert_norm,
    short_list,
    strip_wrapper_prefixes,
)

__all__ = [
    "HRNET_VARIANTS",
    "FUSE_UPSAMPLE_MODES",
    "FrozenBatchNorm2d",
    "HRNetV2Encoder",
    "CheckpointReport",
    "convert_norm",
    "WRAPPER_PREFIXES",
]

#: Tested timm variants. W48 is the paper's backbone; the small ones are for tests and demos.
HRNET_VARIANTS = ("hrnet_w48", "hrnet_w18", "hrnet_w18_small_v2")
#: ``fuse_upsample`` choices: segmentation HRNet's bilinear fuse, timm's (classification) nearest
FUSE_UPSAMPLE_MODES = ("bilinear", "nearest")

_FEATURE_NAMES = ("res2", "res3", "res4", "res5")
# Parts of the timm model frozen by ``freeze_at >= i + 1``.
_FREEZE_GROUPS = (
    ("conv1", "bn1", "conv2", "bn2"),  # 1: stem
    ("layer1",),  # 2: + stage 1
    ("transition1", "stage2"),  # 3: + stage 2
    ("transition2", "stage3"),  # 4: + stage 3
    ("transition3", "stage4"),  # 5: + stage 4 (everything)
)
# Prefixes of the ImageNet classification head, absent from the feature model.
_CLASSIFIER_PREFIXES = (
    "incre_modules.",
    "downsamp_modules.",
    "final_layer.",
    "classifier.",
    "fc.",
    "head.",
)
#: prefixes of wrapped checkpoints (DataParallel, detectron2 backbones) removed before loading
WRAPPER_PREFIXES = ("module.", "backbone.", "body.")


def _set_fuse_upsampling(body: nn.Module, mode: str, align_corners: bool) -> int:
    """Replace the parameter-free ``nn.Upsample`` (nearest, scale ``2**(j-i)``) that ends each
    up-sampling path ``fuse_layers[i][j]`` (``j > i``) of timm's HRNet modules by an ``nn.Upsample``
    of the same scale in ``mode``; returns how many were replaced (a timm layout without them is an
    error, not a silent nearest network)."""
    replaced = 0
    for name, module in body.named_modules():
        if not name.endswith("fuse_layers"):
            continue
        for path in module.modules():
            if not isinstance(path, nn.Sequential):
                continue
            for index, layer in enumerate(path):
                if isinstance(layer, nn.Upsample):
                    path[index] = nn.Upsample(
                        scale_factor=layer.scale_factor,
                        mode=mode,
                        align_corners=align_corners if mode == "bilinear" else None,
                    )
                    replaced += 1
    if not replaced:
        raise RuntimeError(
            "no nn.Upsample found in the fuse layers of timm's HRNet: this timm version lays the "
            "network out differently; fuse_upsample cannot be applied"
        )
    return replaced


def _hr_module(module: nn.Module) -> Callable[..., List[torch.Tensor]]:
    """An HRNet module on its branch tensors as separate arguments (timm's module overwrites the
    list it is given, so every call builds a fresh one)."""

    def run(*branches: torch.Tensor) -> List[torch.Tensor]:
        return module(list(branches))

    return run


def _stage_entry(
    transition: nn.ModuleList, module: nn.Module, first: bool
) -> Callable[..., List[torch.Tensor]]:
    """timm's ``HighResolutionNet.stages`` step into a stage: the transition layers (from the one
    stage-1 output for stage 2, else new branch = transition of the last branch, identities
    elsewhere), then the stage's first HRNet module."""

    def run(*branches: torch.Tensor) -> List[torch.Tensor]:
        if first:
            xl = [t(branches[0]) for t in transition]
        else:
            xl = [
                branches[i] if isinstance(t, nn.Identity) else t(branches[-1])
                for i, t in enumerate(transition)
            ]
        return module(xl)

    return run


class CheckpointReport(NamedTuple):
    """What :meth:`HRNetV2Encoder.load_checkpoint` did."""

    loaded: List[str]
    missing: List[str]
    unexpected: List[str]
    mismatched: List[str]
    dropped_classifier: List[str]


class HRNetV2Encoder(nn.Module):
    """HRNetV2 branches at strides 4/8/16/32 as ``{"res2", "res3", "res4", "res5"}``.

    Args:
        variant: timm model name, one of :data:`HRNET_VARIANTS` (``"hrnet_w48"`` is the paper's).
        checkpoint: path of a local ImageNet checkpoint to load, or ``None`` (random init).
        allow_partial: load only the matching tensors of ``checkpoint`` (with a warning) instead
            of raising on missing/unexpected/mismatched keys.
        freeze_at: 0 nothing, 1 the stem, ``k >= 2`` the stem and stages 1..k-1 (max 5).
        norm: ``"BN"``, ``"SyncBN"`` or ``"FrozenBN"``.
        trust_checkpoint: load a ``checkpoint`` holding pickled objects other than tensors,
            numpy arrays, numbers, strings and containers (this runs code from the file;
            ``MODEL.WEIGHTS_TRUSTED``). Off: such a file is refused.
        fuse_upsample: ``"bilinear"`` (the segmentation HRNet, MMSegmentation's ``HRModule``) or
            ``"nearest"`` (timm's classification HRNet): the up-sampling of the fuse layers.
        fuse_align_corners: ``align_corners`` of the bilinear fuse (MMSegmentation: ``False``;
            HRNet-Semantic-Segmentation's HRNet-OCR: ``True``). Must be ``False`` for nearest.

    Attributes:
        channels: ``{"res2": C2, ..., "res5": C5}`` (48/96/192/384 for W48).
        strides: ``{"res2": 4, "res3": 8, "res4": 16, "res5": 32}``.
        size_divisibility: 32; input sizes must be multiples of it.
    """

    size_divisibility = 32

    def __init__(
        self,
        variant: str = "hrnet_w48",
        checkpoint: Optional[str] = None,
        allow_partial: bool = False,
        freeze_at: int = 0,
        norm: str = "BN",
        *,
        trust_checkpoint: bool = False,
        fuse_upsample: str = "bilinear",
        fuse_align_corners: bool = False,
    ):
        super().__init__()
        import timm  # local import: keep ``import seethroughnet.nn`` light

        if fuse_upsample not in FUSE_UPSAMPLE_MODES:
            raise ValueError(
                f"fuse_upsample must be one of {FUSE_UPSAMPLE_MODES} (MODEL.HRNET.FUSE_UPSAMPLE), "
                f"got {fuse_upsample!r}"
            )
        if fuse_align_corners and fuse_upsample != "bilinear":
            raise ValueError(
                "fuse_align_corners (MODEL.HRNET.FUSE_ALIGN_CORNERS) applies to the bilinear fuse "
                f"only; got it True with fuse_upsample {fuse_upsample!r}"
            )

        available = timm.list_models("hrnet_*")
        if variant not in available:
            raise ValueError(
                f"unknown HRNet variant {variant!r} (MODEL.HRNET.VARIANT in a detectron2 config): "
                "use one of "
                f"{', '.join(HRNET_VARIANTS)} (tested; hrnet_w48 is the paper's), or another timm "
                f"HRNet: {', '.join(m for m in available if m not in HRNET_VARIANTS)}"
            )
        check_norm(norm, convertible=True)
        if not 0 <= int(freeze_at) <= len(_FREEZE_GROUPS):
            raise ValueError(f"freeze_at must be in [0, {len(_FREEZE_GROUPS)}], got {freeze_at}")
        self.variant = variant
        self.norm = norm
        self.freeze_at = int(freeze_at)
        self.body = timm.create_model(
            variant,
            pretrained=False,
            features_only=True,
            feature_location="",
            out_indices=(1, 2, 3, 4),
        )
        self.fuse_upsample = fuse_upsample
        self.fuse_align_corners = bool(fuse_align_corners)
        if fuse_upsample != "nearest":
            _set_fuse_upsampling(self.body, fuse_upsample, self.fuse_align_corners)
        chans = self.body.feature_info.channels()
        reds = self.body.feature_info.reduction()
        self.channels: Dict[str, int] = dict(zip(_FEATURE_NAMES, chans))
        self.strides: Dict[str, int] = dict(zip(_FEATURE_NAMES, reds))
        if checkpoint is not None:
            rep = self.load_checkpoint(
                checkpoint, allow_partial=allow_partial, trusted=trust_checkpoint
            )
            logging.getLogger(__name__).info(
                "HRNet ImageNet checkpoint %s: %d tensors loaded, %d missing, %d unexpected, %d "
                "wrongly shaped, %d classification-head tensors dropped",
                checkpoint,
                len(rep.loaded),
                len(rep.missing),
                len(rep.unexpected),
                len(rep.mismatched),
                len(rep.dropped_classifier),
            )
        self.body = convert_norm(self.body, norm)
        self._freeze(self.freeze_at)
        #: activation checkpointing of the training forward (nn/activation_checkpoint.py): a plain
        #: attribute, no state; SeeThroughNet sets it from ``ActivationCheckpointing``
        self.checkpoint_activations = False

    # ------------------------------------------------------------------------------------------
    def _freeze(self, freeze_at: int) -> None:
        for group in _FREEZE_GROUPS[:freeze_at]:
            for name in group:
                part = getattr(self.body, name)
                for p in part.parameters():
                    p.requires_grad_(False)
                setattr(self.body, name, FrozenBatchNorm2d.convert_frozen_batchnorm(part))

    def load_checkpoint(
        self, path: str, allow_partial: bool = False, trusted: bool = False
    ) -> CheckpointReport:
        """Load a local ImageNet checkpoint (timm classification names or feature-model names).

        Raises ``ValueError`` listing missing / unexpected / shape-mismatched keys unless
        ``allow_partial``. BatchNorm ``num_batches_tracked`` buffers may be absent. The file is
        read by :func:`seethroughnet.nn.weights.load_state_dict_file` (``torch.load`` with
        ``weights_only=True``; other pickled objects refused unless ``trusted``).
        """
        from .weights import load_state_dict_file

        state = strip_wrapper_prefixes(
            load_state_dict_file(path, trusted=trusted), WRAPPER_PREFIXES
        )
        dropped = [k for k in state if k.startswith(_CLASSIFIER_PREFIXES)]
        state = {k: v for k, v in state.items() if k not in set(dropped)}
        own = self.body.state_dict()
        missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
        unexpected = [k for k in state if k not in own]
        mismatched = [
            f"{k} (checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)})"
            for k in state
            if k in own and state[k].shape != own[k].shape
        ]
        if (missing or unexpected or mismatched) and not allow_partial:
            raise ValueError(
                f"checkpoint {path!r} does not match timm {self.variant!r} "
                f"({len(missing)} missing, {len(unexpected)} unexpected, {len(mismatched)} "
                f"wrongly shaped keys; pass allow_partial=True to load the rest).\n"
                f"  missing: {short_list(missing, 25)}\n  unexpected: "
                f"{short_list(unexpected, 25)}\n  mismatched: {short_list(mismatched, 25)}"
            )
        loadable = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
        self.body.load_state_dict(loadable, strict=False)
        if missing or unexpected or mismatched:
            warnings.warn(
                f"partial load of {path!r}: {len(loadable)} tensors loaded; missing: "
                f"{short_list(missing, 10)}; unexpected: {short_list(unexpected, 10)}; mismatched: "
                f"{short_list(mismatched, 10)}",
                stacklevel=2,
            )
        return CheckpointReport(sorted(loadable), missing, unexpected, mismatched, dropped)

    # ------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``x``: ``(N, 3, H, W)`` normalised images, ``H`` and ``W`` multiples of 32."""
        h, w = x.shape[-2:]
        if h % self.size_divisibility or w % self.size_divisibility:
            raise ValueError(
                f"HRNet input size {(h, w)} must be a multiple of {self.size_divisibility} "
                "(its fuse layers up-sample by exactly 2); pad the batch first"
            )
        if checkpointing_active(self, self.checkpoint_activations):
            return dict(zip(_FEATURE_NAMES, self._checkpointed_body(x)))
        return dict(zip(_FEATURE_NAMES, self.body(x)))

    def _checkpointed_body(self, x: torch.Tensor) -> List[torch.Tensor]:
        """timm's ``HighResolutionNetFeatures.forward`` (stem, ``layer1``, then per stage its
        transition and its HRNet modules) with one checkpointed segment for the stem + stage 1
        and one per HRNet module (the transition into a stage goes with its first module); the
        same function as ``self.body(x)``."""
        b = self.body
        if getattr(b, "incre_modules", None) is not None:
            raise RuntimeError(
                "activation checkpointing of the HRNet encoder expects timm's raw branch outputs "
                "(feature_location=''); this body has incre_modules"
            )
        stem = [getattr(b, n) for n in ("conv1", "bn1", "act1", "conv2", "bn2", "act2", "layer1")]

        def run_stem(t):
            for layer in stem:
                t = layer(t)
            return t

        y = checkpoint_segment(run_stem, x, modules=stem)
        ys: List[torch.Tensor] = [y]
        for j in (2, 3, 4):
            transition = getattr(b, f"transition{j - 1}")
            for index, module in enumerate(getattr(b, f"stage{j}")):
                parts = [module, transition] if index == 0 else [module]
                fn = _stage_entry(transition, module, j == 2) if index == 0 else _hr_module(module)
                ys = list(checkpoint_segment(fn, *ys, modules=parts))
        return ys
