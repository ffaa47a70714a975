"""ImageNet initialisation of the dilated ResNet backbone (``build_dilated_resnet_backbone``)
from a *local* classification checkpoint; nothing is ever downloaded.

The file's keys are renamed to detectron2's ``ResNet`` names (``stem.conv1``, ``res2.0.conv1.norm``,
``res2.0.shortcut``, ...) and loaded strictly: a missing, unexpected or wrongly shaped key is an
error (:class:`ImageNetCheckpointError`) that names the file and lists the keys, unless
``allow_partial``. The classifier (``fc.*``) is dropped and reported. Layouts (the names each
library gives its ImageNet ResNet):

===============  ==========================================  =======================================
layout           file                                        backbone variant it needs
===============  ==========================================  =======================================
``torchvision``  ``torchvision.models.resnet101`` state      plain 7x7 stem: ``STEM_TYPE basic``
                 dict (``conv1``, ``bn1``, ``layerN.M.*``,
                 ``downsample.0/1``, ``fc``)
``timm``         timm ``resnet101``: the same names as       as ``torchvision``
                 torchvision
``timm_d``       timm ``resnet101d``: deep stem              deep stem 32-32-64
                 ``conv1.0/1/3/4/6`` + ``bn1``,              (``STEM_TYPE deeplab``,
                 average-pool shortcut ``downsample.1``      ``STEM_OUT_CHANNELS 64``) and
                 (conv) / ``.2`` (BN)                        ``AVG_DOWN True``
``mmcv_v1c``     MMCV / MMSegmentation ``resnet101_v1c``:    deep stem 32-32-64
                 deep stem ``stem.0/1/3/4/6/7``, blocks as   (``STEM_TYPE deeplab``,
                 torchvision                                 ``STEM_OUT_CHANNELS 64``),
                                                             ``AVG_DOWN False`` (the Table 1
                                                             configs' variant)
===============  ==========================================  =======================================

``auto`` reads the layout off the keys (``stem.0.weight``: MMCV deep stem; ``conv1.0.weight``: timm
deep stem; ``conv1.weight``: plain; a ``downsample.2`` BatchNorm: average-pool shortcut). The
backbone must be built as the variant the file was trained as: a deep-stem file into a plain-stem
backbone shows up as missing/unexpected stem keys, and an average-pool-shortcut file into a
strided-conv-shortcut backbone (same shapes, different computation) is refused by name.

Bottleneck files need ``STRIDE_IN_1X1 False`` (all four libraries put the stride in the 3x3 conv);
this is not checkable from the keys and the Table 1 configs set it.
"""

from __future__ import annotations

import re
import warnings
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

import torch
from torch import nn

from ...nn.layers import short_list, state_dict_of, strip_wrapper_prefixes

__all__ = [
    "RESNET_LAYOUTS",
    "ImageNetCheckpointError",
    "ResNetLoadReport",
    "convert_resnet_state_dict",
    "detect_resnet_layout",
    "load_imagenet_resnet",
]

#: ``MODEL.RESNETS.IMAGENET_LAYOUT`` choices -> (stem style, average-pool shortcut)
RESNET_LAYOUTS: Dict[str, Tuple[str, bool]] = {
    "torchvision": ("plain", False),
    "timm": ("plain", False),
    "timm_d": ("timm_deep", True),
    "mmcv_v1c": ("mmcv_deep", False),
}
_CLASSIFIER_PREFIXES = ("fc.",)
# (file prefix -> detectron2 prefix) of each stem style
_STEM_MAPS = {
    "plain": {"conv1.": "stem.conv1.", "bn1.": "stem.conv1.norm."},
    "timm_deep": {
        "conv1.0.": "stem.conv1.",
        "conv1.1.": "stem.conv1.norm.",
        "conv1.3.": "stem.conv2.",
        "conv1.4.": "stem.conv2.norm.",
        "conv1.6.": "stem.conv3.",
        "bn1.": "stem.conv3.norm.",
    },
    "mmcv_deep": {
        "stem.0.": "stem.conv1.",
        "stem.1.": "stem.conv1.norm.",
        "stem.3.": "stem.conv2.",
        "stem.4.": "stem.conv2.norm.",
        "stem.6.": "stem.conv3.",
        "stem.7.": "stem.conv3.norm.",
    },
}
_BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.(.+)$")


class ImageNetCheckpointError(ValueError):
    """An ImageNet file that does not fit the backbone; the message names the file and the keys."""


class ResNetLoadReport(NamedTuple):
    """What :func:`load_imagenet_resnet` did (key names: detectron2's, ``unexpected``: the
    file's)."""

    layout: str
    loaded: List[str]
    missing: List[str]
    unexpected: List[str]
    mismatched: List[str]
    dropped_classifier: List[str]

    def summary(self) -> str:
        return (
            f"layout {self.layout}: {len(self.loaded)} tensors loaded, {len(self.missing)} "
            f"missing, {len(self.unexpected)} unexpected, {len(self.mismatched)} wrongly shaped, "
            f"{len(self.dropped_classifier)} classifier tensors dropped"
        )


def _layout_name(stem: str, avg_down: bool) -> str:
    for name, spec in RESNET_LAYOUTS.items():
        if spec == (stem, avg_down):
            return "torchvision/timm" if name == "torchvision" else name
    return f"{stem} stem{' + average-pool shortcut' if avg_down else ''}"


def detect_resnet_layout(keys) -> Tuple[str, bool]:
    """``(stem style, average-pool shortcut)`` of a ResNet state dict's keys."""
    keys = set(keys)
    if "stem.0.weight" in keys:
        stem = "mmcv_deep"
    elif "conv1.0.weight" in keys:
        stem = "timm_deep"
    elif "conv1.weight" in keys:
        stem = "plain"
    else:
        raise KeyError("no ResNet stem found (none of stem.0.weight, conv1.0.weight, conv1.weight)")
    avg_down = any(re.match(r"^layer[1-4]\.\d+\.downsample\.2\.", k) for k in keys)
    return stem, avg_down


def convert_resnet_state_dict(state: Mapping[str, torch.Tensor], stem: str):
    """Rename a torchvision / timm / MMCV ResNet state dict to detectron2's ``ResNet`` names.

    Returns ``(converted, dropped_classifier, unconverted, source)``: the renamed tensors, the
    classifier keys left out, the keys no rule applies to (reported as unexpected) and, for each
    new name, the file's name."""
    stem_map = _STEM_MAPS[stem]
    # per block: the index of the shortcut conv / BN in its ``downsample`` Sequential (0/1 for a
    # strided conv, 1/2 when index 0 is the average pool, which has no parameters)
    pooled = {
        m.group(1)
        for k in state
        for m in [re.match(r"^(layer[1-4]\.\d+)\.downsample\.2\.", k)]
        if m
    }
    out, dropped, unconverted, source = {}, [], [], {}
    for key, value in state.items():
        if key.startswith(_CLASSIFIER_PREFIXES):
            dropped.append(key)
            continue
        new = None
        for src, dst in stem_map.items():
            if key.startswith(src):
                new = dst + key[len(src) :]
                break
        m = _BLOCK_KEY.match(key)
        if new is None and m:
            stage, idx, rest = int(m.group(1)), m.group(2), m.group(3)
            conv_i, bn_i = ("1", "2") if f"layer{stage}.{idx}" in pooled else ("0", "1")
            rm = re.match(r"^(conv|bn)(\d)\.(.+)$", rest)
            dm = re.match(r"^downsample\.(\d)\.(.+)$", rest)
            if rm:
                new = f"conv{rm.group(2)}." + ("norm." if rm.group(1) == "bn" else "") + rm.group(3)
            elif dm and dm.group(1) == conv_i:
                new = "shortcut." + dm.group(2)
            elif dm and dm.group(1) == bn_i:
                new = "shortcut.norm." + dm.group(2)
            if new is not None:
                new = f"res{stage + 1}.{idx}.{new}"
        if new is None:
            unconverted.append(key)
        else:
            out[new] = value
            source[new] = key
    return out, dropped, unconverted, source


def _backbone_avg_down(backbone: nn.Module) -> Optional[bool]:
    """Whether the backbone's strided shortcuts average-pool first (``None``: no strided
    shortcut)."""
    flags = [
        getattr(m.shortcut, "avg_down", False)
        for m in backbone.modules()
        if getattr(m, "shortcut", None) is not None and getattr(m, "stride", 1) != 1
    ]
    return any(flags) if flags else None


def load_imagenet_resnet(
    backbone: nn.Module,
    path: str,
    layout: str = "auto",
    *,
    allow_partial: bool = False,
    trusted: bool = False,
) -> ResNetLoadReport:
    """Load the local ImageNet ResNet file ``path`` (layout ``auto`` or one of
    :data:`RESNET_LAYOUTS`) into a detectron2 ``ResNet`` built by ``build_dilated_resnet_backbone``.

    Strict unless ``allow_partial`` (then only the matching tensors load, with a warning). The file
    is read by :func:`seethroughnet.utils.safe_load.load_weights_file` (``weights_only=True``;
    pickled objects refused unless ``trusted``)."""
    from ...nn.hrnet import WRAPPER_PREFIXES
    from ...utils.safe_load import load_weights_file

    if layout != "auto" and layout not in RESNET_LAYOUTS:
        raise ValueError(
            f"MODEL.RESNETS.IMAGENET_LAYOUT {layout!r}; valid choices: auto, "
            f"{', '.join(RESNET_LAYOUTS)}"
        )
    obj = load_weights_file(path, trusted=trusted)  # UnsafeFileError for pickled objects
    try:
        state = strip_wrapper_prefixes(state_dict_of(obj), WRAPPER_PREFIXES)
    except ValueError as e:
        raise ImageNetCheckpointError(f"ImageNet ResNet file {path}: {e}") from None
    try:
        found = detect_resnet_layout(state)
    except KeyError as e:
        raise ImageNetCheckpointError(
            f"ImageNet ResNet file {path} is not a torchvision / timm / MMCV ResNet: {e.args[0]}; "
            f"its keys: {short_list(state, 15)}"
        ) from None
    if layout != "auto" and RESNET_LAYOUTS[layout] != found:
        raise ImageNetCheckpointError(
            f"ImageNet ResNet file {path}: MODEL.RESNETS.IMAGENET_LAYOUT is {layout!r} but the "
            "file has the "
            f"{_layout_name(*found)} layout; set IMAGENET_LAYOUT to auto or to the file's layout"
        )
    stem, avg_down = found
    name = _layout_name(stem, avg_down)
    converted, dropped, unconverted, source = convert_resnet_state_dict(state, stem)
    own = backbone.state_dict()
    converted = {
        k: v
        for k, v in converted.items()
        if not (k.endswith("num_batches_tracked") and k not in own)
    }
    missing = [k for k in own if k not in converted and not k.endswith("num_batches_tracked")]
    unexpected = unconverted + [f"{source[k]} (as {k})" for k in converted if k not in own]
    mismatched = [
        f"{k} (file {tuple(v.shape)} vs model {tuple(own[k].shape)})"
        for k, v in converted.items()
        if k in own and v.shape != own[k].shape
    ]
    hints = []
    model_deep = "stem.conv3.weight" in own
    if (stem != "plain") != model_deep:
        hints.append(
            f"the file has a {'deep (3x3 32-32-64)' if stem != 'plain' else 'plain 7x7'} stem and "
            f"the backbone a {'deep' if model_deep else 'plain'} one: set MODEL.RESNETS.STEM_TYPE "
            f"{'deeplab and STEM_OUT_CHANNELS 64' if stem != 'plain' else 'basic'}"
        )
    model_avg = _backbone_avg_down(backbone)
    if model_avg is not None and model_avg != avg_down:
        file_shortcuts = (
            "average-pool before the 1x1 conv (ResNet-D)" if avg_down else "are strided 1x1 convs"
        )
        hints.append(
            f"the file's strided shortcuts {file_shortcuts}"
            f" and the backbone's {'do' if model_avg else 'do not'} average-pool: set "
            f"MODEL.RESNETS.AVG_DOWN {avg_down}"
        )
    if (missing or unexpected or mismatched or hints) and not allow_partial:
        raise ImageNetCheckpointError(
            f"ImageNet ResNet file {path} ({name} layout) does not match the backbone: "
            f"{len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(mismatched)} wrongly shaped keys"
            + "".join(f"; {h}" for h in hints)
            + " (MODEL.WEIGHTS_ALLOW_PARTIAL True loads the rest).\n  missing: "
            f"{short_list(missing, 25)}\n  unexpected: {short_list(unexpected, 25)}\n  mismatched: "
            f"{short_list(mismatched, 25)}"
        )
    loadable = {k: v for k, v in converted.items() if k in own and v.shape == own[k].shape}
    backbone.load_state_dict(loadable, strict=False)
    report = ResNetLoadReport(name, sorted(loadable), missing, unexpected, mismatched, dropped)
    if missing or unexpected or mismatched or hints:
        warnings.warn(
            f"partial load of {path}: {report.summary()}; missing: {short_list(missing, 10)}; "
            f"unexpected: {short_list(unexpected, 10)}; mismatched: {short_list(mismatched, 10)}"
            + "".join(f"; {h}" for h in hints),
            stacklevel=2,
        )
    return report
