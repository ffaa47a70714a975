"""SeeThroughNet's option groups, one frozen dataclass per part of the paper it serves.

Each field carries its default and, in ``metadata["cfg"]``, the detectron2 config key that sets it
(``None``: a plain-PyTorch option with no key). ``Group.from_cfg(cfg)`` reads those keys from any
object with attribute access (a detectron2 ``CfgNode``; nothing here imports detectron2), so an
option is added in one place: a field here (with its key) and the key with its comment in
``seethroughnet/config.py``. ``tests/modeling/test_seethroughnet_options_config.py`` checks that
every key of ``MODEL.SEE_THROUGH`` / ``TEST.SEE_THROUGH`` / ``MODEL.HRNET`` is read by exactly one
field.

=================  ===============================================================================
group              serves
=================  ===============================================================================
EncoderOptions     HRNetV2-W48 backbone (Sec. 3.2, Fig. 4)
DecoderOptions     See-Through decoder, Eq. 3; ``use_scale_attention`` is Table 4's switch
OCROptions         OCR head on the HRNetV2 representation (Sec. 3.2, Yuan et al.)
TrainingScales     two-resolution training merged by attention, Eq. 4 (Tao et al.)
LossOptions        Eqs. 5-7: RMI on the merged output, CPP losses, gamma-weighted per-pass losses
InferenceOptions   multi-scale + flip inference (Sec. 4), hierarchical attention merge (Tao et al.)
ActivationCheck-   not in the paper: activation checkpointing of the training forward (memory for
pointing           time; same model, same gradients)
=================  ===============================================================================
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from .activation_checkpoint import CHECKPOINT_PARTS
from .hrnet import HRNetV2Encoder

__all__ = [
    "EncoderOptions",
    "DecoderOptions",
    "OCROptions",
    "TrainingScales",
    "LossOptions",
    "InferenceOptions",
    "ActivationCheckpointing",
    "CHECKPOINT_PARTS",
    "MERGE_MODES",
    "CPP_ON_CHOICES",
    "PER_SCALE_LOSSES",
    "TEST_MODES",
    "config_keys",
]

#: ``merge`` choices of inference: Tao et al.'s learnt attention or the mean of the scales.
MERGE_MODES = ("attention", "average")
#: which decoder maps carry the Eq. 6 losses: the coarse heads' ``X_s`` or the aggregated ``X'_s``.
CPP_ON_CHOICES = ("coarse", "aggregated")
#: the per-pass losses of Eq. 7: softmax cross-entropy or the RMI reference's sigmoid BCE.
PER_SCALE_LOSSES = ("ce", "bce")
#: whole-image inference or sliding windows.
TEST_MODES = ("whole", "slide")


def _opt(default: Any, cfg: Optional[str]) -> Any:
    """A field with ``default`` set by config key ``cfg`` (``None``: no key)."""
    return field(default=default, metadata={"cfg": cfg})


def config_keys(group) -> Dict[str, str]:
    """``{field name: config key}`` of an option group (class or instance); fields without a key
    are left out."""
    return {f.name: f.metadata["cfg"] for f in dataclasses.fields(group) if f.metadata.get("cfg")}


def _lookup(cfg, key: str):
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return tuple(node) if isinstance(node, list) else node


class _Options:
    """``from_cfg`` and the validation helpers shared by the groups."""

    @classmethod
    def from_cfg(cls, cfg):
        """The group with every field that has a config key read from ``cfg``."""
        return cls(**{name: _lookup(cfg, key) for name, key in config_keys(cls).items()})

    def _where(self, name: str) -> str:
        key = config_keys(self).get(name)
        return f" ({key})" if key else ""

    def _check_choice(self, name: str, choices: Tuple[str, ...]) -> None:
        value = getattr(self, name)
        if value not in choices:
            raise ValueError(f"{name} must be one of {choices}, got {value!r}{self._where(name)}")

    def _set(self, name: str, value: Any) -> None:  # normalise a field of a frozen group
        object.__setattr__(self, name, value)


@dataclass(frozen=True)
class EncoderOptions(_Options):
    """The HRNetV2 encoder (Sec. 3.2, Fig. 4: "Backbone: HRNetV2-W48"); the arguments of
    :class:`~seethroughnet.nn.hrnet.HRNetV2Encoder`, which documents each. :meth:`build` is the
    one way the project builds the encoder from options (SeeThroughNet and the detectron2
    backbone ``build_hrnetv2_backbone``)."""

    variant: str = _opt("hrnet_w48", "MODEL.HRNET.VARIANT")
    checkpoint: Optional[str] = _opt(None, "MODEL.HRNET.CHECKPOINT")  # "" = None
    allow_partial: bool = _opt(False, None)
    trust_checkpoint: bool = _opt(False, "MODEL.WEIGHTS_TRUSTED")
    freeze_at: int = _opt(0, "MODEL.BACKBONE.FREEZE_AT")
    norm: str = _opt("BN", "MODEL.HRNET.NORM")
    fuse_upsample: str = _opt("bilinear", "MODEL.HRNET.FUSE_UPSAMPLE")
    fuse_align_corners: bool = _opt(False, "MODEL.HRNET.FUSE_ALIGN_CORNERS")
    out_features: Tuple[str, ...] = _opt(
        ("res2", "res3", "res4", "res5"), "MODEL.HRNET.OUT_FEATURES"
    )  # read by the detectron2 backbone only; SeeThroughNet uses all four branches

    def __post_init__(self):
        self._set("checkpoint", self.checkpoint or None)
        self._set("out_features", tuple(self.out_features))

    def build(self) -> HRNetV2Encoder:
        return HRNetV2Encoder(
            self.variant,
            self.checkpoint,
            self.allow_partial,
            self.freeze_at,
            self.norm,
            trust_checkpoint=self.trust_checkpoint,
            fuse_upsample=self.fuse_upsample,
            fuse_align_corners=self.fuse_align_corners,
        )


@dataclass(frozen=True)
class DecoderOptions(_Options):
    """The See-Through decoder (Sec. 3.2, Fig. 4): a coarse head per HRNet branch and the
    multi-scale attention masks of Eq. 3, ``X'_s = up(alpha * X'_{s+1}) + (1 - up(alpha)) * X_s``.
    ``use_scale_attention=False`` is Table 4's "scale attention off" (sum of up-sampled maps)."""

    head_channels: Optional[int] = _opt(None, "MODEL.SEE_THROUGH.DECODER_CHANNELS")  # 0 = None:
    # the branch width
    attention_channels: int = _opt(256, "MODEL.SEE_THROUGH.DECODER_ATTENTION_CHANNELS")
    use_scale_attention: bool = _opt(True, "MODEL.SEE_THROUGH.USE_SCALE_ATTENTION")

    def __post_init__(self):
        self._set("head_channels", self.head_channels or None)


@dataclass(frozen=True)
class OCROptions(_Options):
    """The OCR head (Sec. 3.2, Yuan et al.) on the HRNetV2 representation, with the decoder's
    ``X'_4`` as soft object regions; 512 / 256 / 0.05 are HRNet-OCR's sizes."""

    mid_channels: int = _opt(512, "MODEL.SEE_THROUGH.OCR_MID_CHANNELS")
    key_channels: int = _opt(256, "MODEL.SEE_THROUGH.OCR_KEY_CHANNELS")
    dropout: float = _opt(0.05, "MODEL.SEE_THROUGH.OCR_DROPOUT")


@dataclass(frozen=True)
class TrainingScales(_Options):
    """Two-resolution training merged by attention (Sec. 3.3, Eq. 4, after Tao et al.):
    ``X = up(alpha_0.5 * X_0.5) + (1 - up(alpha_0.5)) * X_1.0``. ``resolutions=(1.0,)`` trains
    one pass (no attention head is built; the main loss goes on ``X_1.0``).
    ``attention_channels``: hidden width of Tao et al.'s attention head."""

    resolutions: Tuple[float, ...] = _opt((0.5, 1.0), "MODEL.SEE_THROUGH.TRAIN_SCALES")
    attention_channels: int = _opt(256, "MODEL.SEE_THROUGH.SCALE_ATTENTION_CHANNELS")

    def __post_init__(self):
        res = tuple(sorted(float(r) for r in self.resolutions))
        if res not in ((1.0,), (0.5, 1.0)):
            raise ValueError(
                f"train resolutions must be (0.5, 1.0) or (1.0,), got {res}"
                f"{self._where('resolutions')}"
            )
        self._set("resolutions", res)


@dataclass(frozen=True)
class LossOptions(_Options):
    """The objective, Eqs. 5-7, each term returned under its own name by ``SeeThroughNet.losses``.

    * Eq. 5: ``rmi_weight`` times the RMI loss on the merged output (:class:`RMILoss`:
      ``rmi_lambda`` between its BCE and MI parts, ``rmi_radius``, ``rmi_pool``,
      ``rmi_pool_stride``, ``rmi_class_reduction``).
    * Eq. 6: the decoder's auxiliary losses at strides 16, 8, 4 of every pass, weighted by
      ``aux_weights``: ``aux_loss_kind`` ``"cpp_kl"`` (CPP on), ``"upsample_ce"`` (Table 4's CPP
      off) or ``"nearest_ce"``; ``kl_direction`` / ``ignore_mode`` go to :class:`AuxiliaryLoss`;
      ``cpp_on`` ``"coarse"`` (the coarse heads' maps) or ``"aggregated"`` (after Eq. 3).
    * Eq. 7: ``gamma`` times a per-pass loss on ``X_1.0`` and ``X_0.5``: ``per_scale_loss``
      ``"ce"`` (the paper's ``L_ce``) or ``"bce"`` (the RMI reference's BCE, as [41]'s code).
    """

    aux_loss_kind: str = _opt("cpp_kl", "MODEL.SEE_THROUGH.AUX_LOSS")
    kl_direction: str = _opt("target_to_prediction", "MODEL.SEE_THROUGH.KL_DIRECTION")
    ignore_mode: str = _opt("renormalize", "MODEL.SEE_THROUGH.IGNORE_MODE")
    cpp_on: str = _opt("coarse", "MODEL.SEE_THROUGH.CPP_ON")
    aux_weights: Tuple[float, float, float] = _opt(
        (1.0, 1.0, 1.0), "MODEL.SEE_THROUGH.AUX_LOSS_WEIGHTS"
    )  # at strides 16, 8, 4
    rmi_weight: float = _opt(1.0, "MODEL.SEE_THROUGH.RMI.WEIGHT")
    rmi_lambda: float = _opt(0.5, "MODEL.SEE_THROUGH.RMI.LAMBDA")
    rmi_radius: int = _opt(3, "MODEL.SEE_THROUGH.RMI.RADIUS")
    rmi_pool: str = _opt("avg", "MODEL.SEE_THROUGH.RMI.POOL")
    rmi_pool_stride: int = _opt(4, "MODEL.SEE_THROUGH.RMI.POOL_STRIDE")
    rmi_class_reduction: str = _opt("sum", "MODEL.SEE_THROUGH.RMI.CLASS_REDUCTION")
    gamma: float = _opt(0.05, "MODEL.SEE_THROUGH.CE_WEIGHT")
    per_scale_loss: str = _opt("ce", "MODEL.SEE_THROUGH.PER_SCALE_LOSS")
    ignore_value: int = _opt(255, "MODEL.SEM_SEG_HEAD.IGNORE_VALUE")

    def __post_init__(self):
        self._check_choice("cpp_on", CPP_ON_CHOICES)
        self._check_choice("per_scale_loss", PER_SCALE_LOSSES)
        weights = tuple(float(w) for w in self.aux_weights)
        if len(weights) != 3:
            raise ValueError(
                f"aux_weights needs 3 values (strides 16, 8, 4), got {list(weights)}"
                f"{self._where('aux_weights')}"
            )
        self._set("aux_weights", weights)


@dataclass(frozen=True)
class InferenceOptions(_Options):
    """What ``SeeThroughNet.forward`` does in eval mode (Sec. 4: scales {0.5, 1.0, 2.0} with
    flipping), see ``SeeThroughNet.inference``: the image at each of ``scales``, ``merge``
    ``"attention"`` (Tao et al.'s hierarchical merge with the learnt attention) or ``"average"``,
    ``flip`` averaging the plain and flipped results; ``mode`` ``"slide"``: windows of
    ``crop_size`` every ``stride`` pixels per scale (both ``(h, w)``), ``"whole"``: none."""

    scales: Tuple[float, ...] = _opt((1.0,), "TEST.SEE_THROUGH.SCALES")
    flip: bool = _opt(False, "TEST.SEE_THROUGH.FLIP")
    merge: str = _opt("attention", "TEST.SEE_THROUGH.MERGE")
    mode: str = _opt("whole", "TEST.SEE_THROUGH.MODE")
    crop_size: Tuple[int, int] = _opt((1024, 1024), "TEST.SEE_THROUGH.CROP_SIZE")
    stride: Tuple[int, int] = _opt((512, 512), "TEST.SEE_THROUGH.STRIDE")

    def __post_init__(self):
        self._check_choice("merge", MERGE_MODES)
        self._check_choice("mode", TEST_MODES)
        self._set("scales", tuple(float(s) for s in self.scales))
        self._set("crop_size", _pair(self.crop_size))
        self._set("stride", _pair(self.stride))

    @property
    def window(self) -> Tuple[Optional[Tuple[int, int]], Optional[Tuple[int, int]]]:
        """``(crop_size, stride)`` in ``"slide"`` mode, ``(None, None)`` in ``"whole"`` mode."""
        return (self.crop_size, self.stride) if self.mode == "slide" else (None, None)


@dataclass(frozen=True)
class ActivationCheckpointing(_Options):
    """Not in the paper: which parts of every training pass keep only their inputs for backward
    and recompute their activations there (:mod:`seethroughnet.nn.activation_checkpoint`), any of
    :data:`CHECKPOINT_PARTS`: ``"encoder"`` (HRNet: one segment for the stem + stage 1, one per
    HRNet module), ``"decoder"`` (the See-Through decoder, Eq. 3) and ``"ocr"`` (the HRNetV2
    concatenation + OCR head). Empty (default): none. The model, its outputs, losses, gradients
    and BatchNorm statistics are the plain model's; only memory (less) and step time (one more
    forward of the named parts) change. Active in training mode with gradients enabled only;
    adds no state (a checkpoint resumes exactly with it on or off)."""

    parts: Tuple[str, ...] = _opt((), "MODEL.SEE_THROUGH.CHECKPOINT_ACTIVATIONS")

    def __post_init__(self):
        parts = tuple(str(p) for p in self.parts)
        bad = [p for p in parts if p not in CHECKPOINT_PARTS]
        if bad or len(set(parts)) != len(parts):
            raise ValueError(
                f"parts must be distinct names out of {CHECKPOINT_PARTS}, got {list(parts)}"
                f"{self._where('parts')}"
            )
        self._set("parts", parts)


def _pair(x) -> Tuple[int, int]:
    if isinstance(x, int):
        return (x, x)
    a, b = x
    return (int(a), int(b))
