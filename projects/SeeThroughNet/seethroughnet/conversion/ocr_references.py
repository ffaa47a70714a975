"""Checkpoints of the two HRNet + OCR references -> the project's models:
``tools/convert_weights.py nvidia|hrnet_ocr --config <project config> <checkpoint> <out .pth>``.

Sources (read as the specification; no code of theirs is in the project):

* ``nvidia``: NVIDIA/semantic-segmentation (Tao et al. 2020, SeeThroughNet's [41]),
  ``network/ocrnet.py``: ``ocrnet.HRNet_Mscale`` (``MscaleOCR``: HRNet-W48 trunk ``backbone.*``,
  ``OCR_block`` ``ocr.*``, the scale-attention head ``scale_attn.*``) and ``ocrnet.HRNet``
  (``OCRNet``: the same without ``scale_attn``). Their ``utils/misc.py`` saves
  ``{"epoch", "arch", "num_classes", "state_dict", "optimizer", "mean_iu", "command"}`` with the
  ``module.`` prefix of the distributed wrapper.
* ``hrnet_ocr``: HRNet-Semantic-Segmentation, branch HRNet-OCR, ``lib/models/seg_hrnet_ocr.py``
  (one ``HighResolutionNet`` with the OCR modules as attributes: trunk keys at the top level);
  its trainer saves the state dict of ``FullModel`` (``model.*`` and the loss's ``loss.*``
  class-weight buffer), possibly with ``module.``.

Both name the OCR modules alike (NVIDIA's ``OCR_block`` says it is borrowed from HRNet-OCR):
``conv3x3_ocr`` (3x3 conv 720 -> 512 *with bias*, BN, ReLU), ``aux_head`` (1x1 conv 720 -> 720
*with bias*, BN, ReLU, 1x1 conv -> K: the soft object regions), ``ocr_distri_head.
object_context_block.{f_pixel, f_object, f_down, f_up}``, ``ocr_distri_head.conv_bn_dropout``
and ``cls_head``; the BN of ``conv3x3_ocr`` / ``aux_head`` is ``.1.0`` in NVIDIA's code
(``BNReLU`` = Sequential(BN, ReLU)) and ``.1`` in HRNet-OCR's, whose last ``aux_head`` conv is
``.3`` (NVIDIA ``.2``). The trunk names every tensor as timm's HRNet does.

Targets (the project config decides): ``MODEL.META_ARCHITECTURE: SeeThroughNetSegmentor``
(model ``"seethroughnet"``: trunk -> ``net.encoder.body``, OCR -> ``net.ocr``, ``scale_attn`` ->
``net.scale_attention``; the See-Through decoder ``net.decoder`` starts from its initialisation;
the reference's ``aux_head`` has no counterpart, because SeeThroughNet takes the soft object
regions from its decoder (paper Sec. 3.2): it is dropped and reported) or the CPPSegmentor with
``MODEL.DECODE_HEAD.NAME: ocr`` (model ``"ocr"``, the Table 1 OCRNet-HRNet: trunk ->
``backbone.encoder.body``, ``aux_head`` -> ``decode_head.soft_region``, OCR ->
``decode_head.ocr``; it is the reference OCRNet itself; its CPP auxiliary heads ``aux_heads.*``
start from their initialisation).

The project's ``ConvNormAct`` convs have no bias. A conv bias ``b`` followed by BatchNorm is the
same function as no bias and the BN's ``running_mean - b`` (in evaluation; in training the batch
mean removes ``b`` either way), so the two biases are folded into the BN statistics
(:data:`FOLDED_BIASES`) and listed in the report.

Errors (one :class:`ReferenceConversionError` naming the checkpoint, the config and the first
mismatching keys; nothing written): an unmapped source key (another architecture, or the
``scale_attn`` of an Mscale checkpoint given to a config without scale attention), a required
project key left empty (an ``OCRNet`` checkpoint given to SeeThroughNet, whose scale-attention
head it lacks) or a shape mismatch (another width or number of classes).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch

from ..nn.layers import short_list
from .convert import (
    ConversionError,
    build_project_model,
    fill_state_dict,
    mapping_problems,
    read_checkpoint,
    strip_prefix,
    write_converted,
)
from .key_maps import KEY_MAPS, register_key_map

__all__ = [
    "SOURCES",
    "ReferenceConversionError",
    "ReferenceConversionReport",
    "canonical_state_dict",
    "convert_reference_checkpoint",
    "convert_reference_state_dict",
    "fold_conv_biases",
    "reference_state_dict",
]

#: source name -> what it is (``tools/convert_weights.py`` sub-commands)
SOURCES = {
    "nvidia": "NVIDIA/semantic-segmentation ocrnet.HRNet_Mscale / ocrnet.HRNet",
    "hrnet_ocr": "HRNet-Semantic-Segmentation (HRNet-OCR branch) seg_hrnet_ocr",
}

#: HRNet-OCR's top-level OCR modules (everything else of its model is the trunk)
_HRNET_OCR_HEAD_MODULES = (
    "conv3x3_ocr.",
    "ocr_gather_head.",
    "ocr_distri_head.",
    "cls_head.",
    "aux_head.",
)
#: the differing indices of HRNet-OCR's plain-BN Sequentials -> NVIDIA's (the canonical names)
_HRNET_OCR_RENAMES = {
    "ocr.conv3x3_ocr.1.": "ocr.conv3x3_ocr.1.0.",
    "ocr.aux_head.1.": "ocr.aux_head.1.0.",
    "ocr.aux_head.3.": "ocr.aux_head.2.",
}

#: canonical conv bias -> canonical prefix of the BatchNorm that follows it
FOLDED_BIASES = {
    "ocr.conv3x3_ocr.0.bias": "ocr.conv3x3_ocr.1.0.",
    "ocr.aux_head.0.bias": "ocr.aux_head.1.0.",
}

#: canonical prefixes of the layers whose shape is the number of classes
CLASSIFIERS = ("ocr.cls_head.", "ocr.aux_head.2.")

_OBJECT_BLOCK = "ocr.ocr_distri_head.object_context_block."
#: canonical OCR / attention modules -> the project's modules, relative to the OCR head (``ocr``),
#: the soft-region branch (``soft``) or the scale-attention head (``attn``)
_MODULES = {
    "ocr.conv3x3_ocr.0.": ("ocr", "pixel_conv.0."),
    "ocr.conv3x3_ocr.1.0.": ("ocr", "pixel_conv.1."),
    _OBJECT_BLOCK + "f_pixel.0.": ("ocr", "query.0.0."),
    _OBJECT_BLOCK + "f_pixel.1.0.": ("ocr", "query.0.1."),
    _OBJECT_BLOCK + "f_pixel.2.": ("ocr", "query.1.0."),
    _OBJECT_BLOCK + "f_pixel.3.0.": ("ocr", "query.1.1."),
    _OBJECT_BLOCK + "f_object.0.": ("ocr", "key.0.0."),
    _OBJECT_BLOCK + "f_object.1.0.": ("ocr", "key.0.1."),
    _OBJECT_BLOCK + "f_object.2.": ("ocr", "key.1.0."),
    _OBJECT_BLOCK + "f_object.3.0.": ("ocr", "key.1.1."),
    _OBJECT_BLOCK + "f_down.0.": ("ocr", "value.0."),
    _OBJECT_BLOCK + "f_down.1.0.": ("ocr", "value.1."),
    _OBJECT_BLOCK + "f_up.0.": ("ocr", "out_transform.0."),
    _OBJECT_BLOCK + "f_up.1.0.": ("ocr", "out_transform.1."),
    "ocr.ocr_distri_head.conv_bn_dropout.0.": ("ocr", "fuse.0.0."),
    "ocr.ocr_distri_head.conv_bn_dropout.1.0.": ("ocr", "fuse.0.1."),
    "ocr.cls_head.": ("ocr", "classifier."),
    "ocr.aux_head.0.": ("soft", "0.0."),
    "ocr.aux_head.1.0.": ("soft", "0.1."),
    "ocr.aux_head.2.": ("soft", "1."),
    # NVIDIA network/utils.py make_attn_head (MSCALE_INNER_3x3 default True, no dropout)
    "scale_attn.conv0.": ("attn", "net.0."),
    "scale_attn.bn0.": ("attn", "net.1."),
    "scale_attn.conv1.": ("attn", "net.3."),
    "scale_attn.bn1.": ("attn", "net.4."),
    "scale_attn.conv2.": ("attn", "net.6."),
}
#: project prefixes of each target model: trunk, OCR head, soft regions (None: dropped), attention
_TARGETS = {
    "seethroughnet": {
        "backbone": "net.encoder.body.",
        "ocr": "net.ocr.",
        "soft": None,
        "attn": "net.scale_attention.",
    },
    "ocr": {
        "backbone": "backbone.encoder.body.",
        "ocr": "decode_head.ocr.",
        "soft": "decode_head.soft_region.",
        "attn": None,
    },
}
#: project keys each target must take completely from the checkpoint
_REQUIRED = {
    "seethroughnet": ("net.encoder.", "net.ocr.", "net.scale_attention."),
    "ocr": ("backbone.", "decode_head."),
}
#: source keys a target drops (reported), and why
_DROPPED = {
    "seethroughnet": (
        "ocr.aux_head.",
        "the reference's soft-region (aux) head: SeeThroughNet takes the OCR head's soft object "
        "regions from its See-Through decoder (paper Sec. 3.2)",
    ),
    "ocr": (None, ""),
}
_NEW = {
    "seethroughnet": "the See-Through decoder (paper Sec. 3.2, not in the reference)",
    "ocr": "the CPP auxiliary heads (trained by the CPP loss)",
}


class ReferenceConversionError(ConversionError):
    """Not a checkpoint of the reference network the config's model can take (or unreadable)."""


def reference_state_dict(source: str, data, path: str = "<checkpoint>"):
    """``(state_dict, layout)`` of the loaded checkpoint ``data`` of ``source``, its wrapper
    prefixes (``module.``; HRNet-OCR's ``model.``) removed and HRNet-OCR's ``loss.*`` buffers
    dropped."""
    if not isinstance(data, Mapping):
        raise ReferenceConversionError(
            f"{path} holds a {type(data).__name__}, not a {SOURCES[source]} checkpoint"
        )
    if "state_dict" in data:
        state = data["state_dict"]
        arch = data.get("arch")
        layout = f"{source} checkpoint" + (f" (arch {arch})" if isinstance(arch, str) else "")
    else:
        state, layout = data, f"{source} bare state dict"
    if not isinstance(state, Mapping) or not state:
        raise ReferenceConversionError(f"{path}: its state dict is empty or not a dict")
    bad = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ReferenceConversionError(
            f"{path} is not a {SOURCES[source]} checkpoint: its state dict holds non-tensors "
            f"({short_list(bad)})"
        )
    state = strip_prefix(state, "module.")
    if source == "hrnet_ocr":
        state = {k: v for k, v in strip_prefix(state, "model.").items()}
        state = {k: v for k, v in state.items() if not k.startswith("loss.")}
    return state, layout


def canonical_state_dict(source: str, state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """``state`` in NVIDIA's names (``backbone.*``, ``ocr.*``, ``scale_attn.*``): HRNet-OCR's
    top-level trunk and OCR modules are prefixed and its plain-BN indices renamed."""
    if source == "nvidia":
        return dict(state)
    out = {}
    for key, value in state.items():
        if key.startswith(_HRNET_OCR_HEAD_MODULES):
            key = "ocr." + key
            for old, new in _HRNET_OCR_RENAMES.items():
                if key.startswith(old):
                    key = new + key[len(old) :]
                    break
        else:
            key = "backbone." + key
        out[key] = value
    return out


def fold_conv_biases(state: Mapping[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], List]:
    """``(state', folded)``: every conv bias of :data:`FOLDED_BIASES` subtracted from the running
    mean of the BatchNorm after it (``BN(Wx + b)`` with mean ``mu`` is ``BN(Wx)`` with mean
    ``mu - b``) and removed; ``folded`` lists the removed bias keys."""
    out = dict(state)
    folded = []
    for bias, bn in FOLDED_BIASES.items():
        mean = bn + "running_mean"
        if bias in out and mean in out and out[bias].shape == out[mean].shape:
            out[mean] = out[mean] - out.pop(bias).to(out[mean].dtype)
            folded.append(bias)
    return out, folded


def _project_key(key: str, prefixes: Mapping[str, Optional[str]]) -> Optional[str]:
    if key.startswith("backbone."):
        return prefixes["backbone"] + key[len("backbone.") :]
    for module, (part, project) in _MODULES.items():
        if key.startswith(module) and prefixes[part] is not None:
            return prefixes[part] + project + key[len(module) :]
    return None


def _key_map(model: str):
    def key_map(keys: Iterable[str]) -> Dict[str, str]:
        mapping = {}
        for key in keys:
            target = _project_key(key, _TARGETS[model])
            if target is not None:
                mapping[key] = target
        return mapping

    key_map.__name__ = f"reference_ocr_key_map_{model}"
    key_map.__doc__ = (
        f"``{{canonical reference key: project key}}`` for the {model!r} target (module "
        "docstring); keys without a counterpart are omitted."
    )
    return key_map


for _source in SOURCES:
    for _model in _TARGETS:
        register_key_map(_source, _model)(_key_map(_model))


def target_model(cfg) -> str:
    """``"seethroughnet"`` or the CPPSegmentor's ``MODEL.DECODE_HEAD.NAME``."""
    if cfg.MODEL.META_ARCHITECTURE == "SeeThroughNetSegmentor":
        return "seethroughnet"
    return str(cfg.MODEL.DECODE_HEAD.NAME)


def convert_reference_state_dict(
    source: str,
    state: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    model: str,
    *,
    path: str = "<checkpoint>",
    config: str = "<config>",
    new_classifiers: bool = False,
):
    """``(converted, dropped, new, folded)`` for ``state`` (the reference's state dict, wrapper
    prefixes removed: :func:`reference_state_dict`) and ``target`` (the project model's state
    dict of ``model``, ``"seethroughnet"`` or ``"ocr"``). Any mismatch:
    :class:`ReferenceConversionError`. ``new_classifiers``: the class-count-dependent layers
    (:data:`CLASSIFIERS`: ``cls_head``, ``aux_head``'s last conv) of a checkpoint trained on other
    classes (NVIDIA's Mapillary checkpoints: 65) keep the project model's initialisation and are
    reported as new and dropped, as NVIDIA's own ``forgiving_state_restore`` skips them when its
    Cityscapes recipe starts from its Mapillary checkpoint."""
    maps = KEY_MAPS.get(source, {})
    if model not in maps:
        raise ReferenceConversionError(
            f"{config}: no {source} key map for its model {model!r} (a {SOURCES[source]} "
            f"checkpoint converts to: {', '.join(sorted(maps))}; SeeThroughNet configs or the "
            "OCRNet-HRNet configs/CPP-Plugin/ocrnet_HRW48_*.yaml); nothing was written"
        )
    canonical = canonical_state_dict(source, state)
    drop_prefix, _ = _DROPPED[model]
    dropped = sorted(k for k in canonical if drop_prefix and k.startswith(drop_prefix))
    canonical, folded = fold_conv_biases(
        {k: v for k, v in canonical.items() if k not in set(dropped)}
    )
    mapping = maps[model](list(canonical))
    optional = []
    if new_classifiers:
        for key in [k for k in canonical if k.startswith(CLASSIFIERS)]:
            project = mapping.get(key)
            if project in target and tuple(target[project].shape) != tuple(canonical[key].shape):
                optional.append(mapping.pop(key))
                dropped.append(key)
                del canonical[key]
    kept = list(canonical)
    parts, _ = mapping_problems(canonical, target, mapping, _REQUIRED[model], kept, optional)
    if parts:
        hint = (
            " (keys are shown in NVIDIA's names: backbone.*, ocr.*, scale_attn.*)"
            if source == "hrnet_ocr"
            else ""
        )
        raise ReferenceConversionError(
            f"{path} is not a {SOURCES[source]} checkpoint of the model of {config} ({model})"
            f"{hint}: " + "; ".join(parts) + ". An HRNet_Mscale checkpoint needs a config with "
            "scale attention (SeeThroughNet, MODEL.SEE_THROUGH.TRAIN_SCALES [0.5, 1.0]); an "
            "OCRNet one (no scale_attn) the OCRNet-HRNet config; HRNet-W48 and "
            "MODEL.SEM_SEG_HEAD.NUM_CLASSES as the checkpoint's; nothing was written"
        )
    converted, new = fill_state_dict(canonical, target, mapping)
    return converted, dropped, new, folded


@dataclasses.dataclass
class ReferenceConversionReport:
    """What a conversion did: loaded (project keys), dropped (source keys), newly initialised
    (project keys), conv biases folded into BN statistics (source keys)."""

    source: str
    checkpoint: str
    config: str
    model: str
    layout: str
    loaded: List[str]
    dropped: List[str]
    new: List[str]
    folded: List[str]
    output: str = ""

    def summary(self) -> str:
        parts = sorted({k.split(".")[0] + "." + k.split(".")[1] for k in self.loaded})
        new_parts = sorted({".".join(k.split(".")[:2]) for k in self.new})
        lines = [
            f"{self.checkpoint} ({self.layout}) -> {self.output or '(not written)'}",
            f"model: {self.model} of {self.config}",
            f"loaded: {len(self.loaded)} keys into {', '.join(parts)}",
            f"conv biases folded into the next BatchNorm's running_mean: {', '.join(self.folded)}",
            f"dropped: {len(self.dropped)} keys"
            + (
                f" ({_DROPPED[self.model][1]}): {short_list(self.dropped, 20)}"
                if self.dropped
                else ""
            ),
            f"newly initialised ({_NEW.get(self.model, 'no counterpart in the checkpoint')}): "
            f"{len(self.new)} keys in {', '.join(new_parts) or '-'}",
        ]
        return "\n".join(lines)


def convert_reference_checkpoint(
    source: str,
    checkpoint: str,
    config: str,
    output: str,
    opts: Sequence[str] = (),
    *,
    trusted: bool = False,
    allow_unsafe_config: bool = False,
    new_classifiers: bool = False,
) -> ReferenceConversionReport:
    """Convert ``source`` (``"nvidia"`` / ``"hrnet_ocr"``) ``checkpoint`` for the project model of
    ``config`` (+ ``opts``) and write it to ``output`` atomically; returns the report.
    ``new_classifiers``: see :func:`convert_reference_state_dict` (``--new-classifiers``)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {sorted(SOURCES)}, got {source!r}")
    checkpoint, config = os.fspath(checkpoint), os.fspath(config)
    data = read_checkpoint(
        checkpoint,
        trusted=trusted,
        error=ReferenceConversionError,
        what=f"a {SOURCES[source]} .pth",
    )
    state, layout = reference_state_dict(source, data, checkpoint)
    cfg, project = build_project_model(config, opts, allow_unsafe_config)
    model = target_model(cfg)
    converted, dropped, new, folded = convert_reference_state_dict(
        source,
        state,
        project.state_dict(),
        model,
        path=checkpoint,
        config=config,
        new_classifiers=new_classifiers,
    )
    new_set = set(new)
    report = ReferenceConversionReport(
        source=source,
        checkpoint=checkpoint,
        config=config,
        model=model,
        layout=layout,
        loaded=[k for k in converted if k not in new_set],
        dropped=dropped,
        new=new,
        folded=folded,
        output=os.fspath(output),
    )
    write_converted(
        output,
        converted,
        f"{SOURCES[source]} (seethroughnet.conversion.ocr_references)",
        {
            "source": os.path.abspath(checkpoint),
            "layout": layout,
            "config": config,
            "opts": [str(o) for o in opts],
            "dropped": dropped,
            "folded_biases": folded,
            "newly_initialised": new,
        },
    )
    return report
