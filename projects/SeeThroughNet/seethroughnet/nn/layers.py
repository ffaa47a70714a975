"""Small building blocks shared by the model parts (plain PyTorch, no detectron2).

* :func:`norm_layer` -- a normalisation layer by name (``"BN"``, ``"SyncBN"``, ``"GN"``);
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
    "norm_layer",
    "ConvNormAct",
    "resize",
    "state_dict_of",
    "strip_wrapper_prefixes",
    "short_list",
]

#: names accepted by :func:`norm_layer`
NORMS = ("BN", "SyncBN", "GN")


def norm_layer(norm: str, channels: int) -> nn.Module:
    """A freshly initialised normalisation layer: ``"BN"`` -> ``BatchNorm2d``, ``"SyncBN"`` ->
    ``SyncBatchNorm``, ``"GN"`` -> ``GroupNorm`` with 32 groups (1 if ``channels`` is not a
    multiple of 32)."""
    if norm == "BN":
        return nn.BatchNorm2d(channels)
    if norm == "SyncBN":
        return nn.SyncBatchNorm(channels)
    if norm == "GN":
        return nn.GroupNorm(32 if channels % 32 == 0 else 1, channels)
    raise ValueError(f"unknown norm {norm!r}; valid choices: {', '.join(NORMS)}")


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
