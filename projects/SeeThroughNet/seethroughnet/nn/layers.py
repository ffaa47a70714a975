"""Small building blocks shared by the model parts (plain PyTorch, no detectron2).

* :data:`NORMS` -- the one list of normalisation names of the project, with
  :func:`norm_layer` (a fresh layer by name), :func:`convert_norm` (the BatchNorms of a built
  network, e.g. the HRNet encoder, to another norm) and :class:`FrozenBatchNorm2d`;
* :class:`ConvNormAct` -- ``conv (no bias) -> norm -> ReLU``, MMSegmentation's ``ConvModule`` and
  the "CBR" block of HRNet-OCR and Tao et al.;
* :func:`resize` -- bilinear resizing that is the identity when the size already matches;
* :func:`state_dict_of` / :func:`strip_wrapper_prefixes` -- the tensors of a loaded checkpoint
  object, whatever container it came in;
* :func:`short_list` -- ``"a, b, c, ... (N more)"`` for error messages that name keys.
"""

from __future__ import annotations

from typing import Dict, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "NORMS",
    "FrozenBatchNorm2d",
    "check_norm",
    "norm_layer",
    "convert_norm",
    "ConvNormAct",
    "resize",
    "state_dict_of",
    "strip_wrapper_prefixes",
    "short_list",
]

#: every normalisation name of the project: ``MODEL.HRNET.NORM``, ``MODEL.SEE_THROUGH.HEAD_NORM``
#: and the plug-in heads' norms. :func:`norm_layer` builds each; :func:`convert_norm` turns a
#: network's BatchNorms into any but ``"GN"`` (pretrained BatchNorm statistics and affine
#: parameters have no GroupNorm counterpart).
NORMS = ("BN", "SyncBN", "FrozenBN", "GN")


def check_norm(norm: str, convertible: bool = False) -> str:
    """``norm`` if it is one of :data:`NORMS` (and, with ``convertible``, one that
    :func:`convert_norm` can turn a BatchNorm into), else a ``ValueError`` naming the choices."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid choices: {', '.join(NORMS)}")
    if convertible and norm == "GN":
        raise ValueError(
            "norm 'GN' cannot replace the BatchNorms of a (pretrained) network: their statistics "
            "and affine parameters have no GroupNorm counterpart; use BN, SyncBN or FrozenBN"
        )
    return norm


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine parameters (all buffers, no parameters).

    ``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias``, folded into one
    per-channel scale and shift. Same buffer names as ``nn.BatchNorm2d`` so state dicts load;
    ``num_batches_tracked`` is accepted and dropped.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale.view(1, -1, 1, 1).to(x.dtype) + shift.view(1, -1, 1, 1).to(x.dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"

    @classmethod
    def convert_frozen_batchnorm(cls, module: nn.Module) -> nn.Module:
        """Return ``module`` with every ``BatchNorm2d``/``SyncBatchNorm`` replaced (recursively)."""
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            frozen = cls(module.num_features, module.eps)
            if module.affine:
                frozen.weight.copy_(module.weight.detach())
                frozen.bias.copy_(module.bias.detach())
            if module.track_running_stats and module.running_mean is not None:
                frozen.running_mean.copy_(module.running_mean)
                frozen.running_var.copy_(module.running_var)
            return frozen
        for name, child in module.named_children():
            new_child = cls.convert_frozen_batchnorm(child)
            if new_child is not child:
                setattr(module, name, new_child)
        return module


def norm_layer(norm: str, channels: int) -> nn.Module:
    """A freshly initialised normalisation layer: ``"BN"`` -> ``BatchNorm2d``, ``"SyncBN"`` ->
    ``SyncBatchNorm``, ``"FrozenBN"`` -> :class:`FrozenBatchNorm2d` (identity until a state dict
    is loaded), ``"GN"`` -> ``GroupNorm`` with 32 groups (1 if ``channels`` is not a multiple of
    32)."""
    check_norm(norm)
    if norm == "BN":
        return nn.BatchNorm2d(channels)
    if norm == "SyncBN":
        return nn.SyncBatchNorm(channels)
    if norm == "FrozenBN":
        return FrozenBatchNorm2d(channels)
    return nn.GroupNorm(32 if channels % 32 == 0 else 1, channels)


def convert_norm(module: nn.Module, norm: str) -> nn.Module:
    """``module`` with its ``BatchNorm2d`` layers converted to ``norm`` (``"BN"``: unchanged,
    ``"SyncBN"``, ``"FrozenBN"``; ``"GN"`` is refused, :func:`check_norm`)."""
    check_norm(norm, convertible=True)
    if norm == "SyncBN":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if norm == "FrozenBN":
        return FrozenBatchNorm2d.convert_frozen_batchnorm(module)
    return module


class ConvNormAct(nn.Sequential):
    """``conv (no bias) -> norm -> ReLU``; ``act=False`` drops the ReLU (a ConvModule with
    ``act_cfg=None``). The padding keeps the spatial size at stride 1. As an ``nn.Sequential`` its
    parameters are named ``0.weight`` (conv), ``1.*`` (norm)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        dilation: int = 1,
        norm: str = "BN",
        groups: int = 1,
        act: bool = True,
    ):
        layers = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                padding=dilation * (kernel_size // 2),
                dilation=dilation,
                groups=groups,
                bias=False,
            ),
            norm_layer(norm, out_channels),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def resize(x: torch.Tensor, size: Sequence[int], align_corners: bool = False) -> torch.Tensor:
    """Bilinear resize of ``(N, C, H, W)`` to ``size`` = ``(h, w)``; ``x`` itself if it already has
    that size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)


#: keys under which checkpoint files keep their state dict (timm/MMCV, detectron2, others)
_STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict")


def state_dict_of(obj) -> Dict[str, torch.Tensor]:
    """The tensors of a loaded checkpoint object: a module, a bare state dict, or a dict holding one
    under ``state_dict`` / ``model`` / ``model_state_dict`` (nested wrappers are opened in turn).
    Numpy arrays (Detectron-style ``.pkl`` weights) become tensors; non-tensor entries are dropped.
    ``ValueError`` if there is no mapping of tensors."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    opened = True
    while opened and isinstance(obj, Mapping):
        opened = False
        for key in _STATE_DICT_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj, opened = obj[key], True
                break
    if not isinstance(obj, Mapping):
        raise ValueError(f"checkpoint does not hold a state dict (got {type(obj).__name__})")
    out = {}
    for k, v in obj.items():
        if isinstance(v, np.ndarray):
            # (not np.ascontiguousarray: it turns 0-d arrays, e.g. num_batches_tracked, into 1-d)
            v = torch.from_numpy(v if v.flags.c_contiguous else v.copy(order="C"))
        if isinstance(v, torch.Tensor):
            out[str(k)] = v
    return out


def strip_wrapper_prefixes(
    state: Mapping[str, torch.Tensor], prefixes: Iterable[str]
) -> Dict[str, torch.Tensor]:
    """Remove any of ``prefixes`` (e.g. ``"module."`` of DataParallel) shared by *every* key,
    repeatedly, so ``"module.backbone.x"`` -> ``"x"`` when both prefixes are given."""
    prefixes = tuple(prefixes)
    out = dict(state)
    changed = True
    while changed and out:
        changed = False
        for prefix in prefixes:
            if all(k.startswith(prefix) for k in out):
                out = {k[len(prefix) :]: v for k, v in out.items()}
                changed = True
    return out


def short_list(items: Iterable, limit: int = 12, *, sort: bool = True) -> str:
    """``"a, b, c, ... (N more)"``: the first ``limit`` items (sorted unless ``sort=False``),
    ``"-"`` for none."""
    items = [str(x) for x in items]
    if sort:
        items.sort()
    shown = ", ".join(items[:limit]) or "-"
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
