"""MMSegmentation checkpoints -> the project's Table 1 models (SeeThroughNet, CVPR 2022, Sec. 4.4:
"We used the models from MMSegmentation"): ``tools/convert_weights.py mmseg``.

:func:`convert_mmseg_checkpoint` reads an MMSegmentation checkpoint without running code from it
(:func:`seethroughnet.utils.safe_load.load_weights_file`), in any of the layouts:

* MMSegmentation 1.x (mmengine ``Runner.save_checkpoint``): ``{"meta": {..., "mmengine_version",
  "dataset_meta"}, "state_dict": ..., "message_hub", "optimizer", "param_schedulers"}``;
* MMSegmentation 0.x (mmcv ``save_checkpoint``): ``{"meta": {"mmcv_version", "CLASSES",
  "PALETTE", "config", ...}, "state_dict": ..., "optimizer"}``, with the same ``state_dict``
  names for the six ResNet models: MMSegmentation 1.2.2's metafiles list the 0.x-trained files
  (``download.openmmlab.com/mmsegmentation/v0.5/...``, 2020) as its own weights of these models,
  and its ``init_model`` loads them (reading 0.x's ``CLASSES`` / ``PALETTE`` meta) with mmengine's
  ``load_checkpoint`` and no key renaming;
  CCNet's ``decode_head.cca.gamma`` (a shape-``(1,)`` parameter, the original CCNet code's name) is
  accepted beside mmcv's ``cca.gamma.scale`` (shape ``()``);
* a bare state dict (names -> tensors).

A checkpoint that mmengine's ``Runner`` wrote during training also holds its ``message_hub``
(pickled ``HistoryBuffer`` objects): the safe loader refuses it, naming the opt-in
(``--trust-weights-file``, ``trusted=True``), which only a file from a trusted source should get.

A ``module.`` prefix (a checkpoint saved from a ``DataParallel`` model) is removed, as mmengine's
``load_checkpoint`` does. The ``auxiliary_head.*`` keys (MMSegmentation's one FCN auxiliary head on
res4) have no counterpart in a model with four CPP auxiliary heads: they are dropped and listed in
the report. Every other key is renamed by ``KEY_MAPS["mmseg"][MODEL.DECODE_HEAD.NAME]``
(:mod:`seethroughnet.conversion.key_maps`) and checked against the project model built from the
config: every backbone and decode-head parameter and buffer must be filled, with its shape. A
source key no rule maps, a project key left empty or a shape mismatch is one
:class:`MMSegConversionError` naming the first such keys, the checkpoint and the config; nothing is
written. The project's own auxiliary heads (``aux_heads.*``) keep the model's initialisation and
are reported as newly initialised.

The output (``{"model": state_dict, "__author__", "conversion"}``, written atomically) is a
complete state dict of the project model: ``train_net.py --eval-only MODEL.WEIGHTS <out>`` loads it
with the project's strict checkpointer (:mod:`seethroughnet.checkpoint`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import List, Mapping, Sequence

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
from .key_maps import KEY_MAPS

__all__ = [
    "MMSegConversionError",
    "MMSegConversionReport",
    "convert_mmseg_checkpoint",
    "convert_mmseg_state_dict",
    "mmseg_state_dict",
]

#: the MMSegmentation model's parts the project model must take completely from the checkpoint
CONVERTED_PREFIXES = ("backbone.", "decode_head.")
#: MMSegmentation's auxiliary head(s): no counterpart in the CPP plug-in model
DROPPED_PREFIX = "auxiliary_head."


class MMSegConversionError(ConversionError):
    """The file is not an MMSegmentation checkpoint of the configured model (or not readable as
    one); the message names the file, the config and the first mismatching keys."""


@dataclasses.dataclass
class MMSegConversionReport:
    """What a conversion did: source layout, loaded (project keys), dropped (source keys),
    newly initialised (project keys)."""

    checkpoint: str
    config: str
    model: str
    layout: str
    loaded: List[str]
    dropped: List[str]
    new: List[str]
    output: str = ""

    def summary(self) -> str:
        lines = [
            f"{self.checkpoint} ({self.layout}) -> {self.output or '(not written)'}",
            f"model: MODEL.DECODE_HEAD.NAME {self.model} of {self.config}",
            f"loaded: {len(self.loaded)} keys",
            f"dropped (MMSegmentation's auxiliary FCN head, no counterpart in the CPP plug-in "
            f"model): {len(self.dropped)} keys: {short_list(self.dropped, 100)}",
            f"newly initialised (the CPP auxiliary heads, trained by the CPP loss): "
            f"{len(self.new)} keys: {short_list(self.new, 100)}",
        ]
        return "\n".join(lines)


def mmseg_state_dict(data, path: str = "<checkpoint>"):
    """``(state_dict, layout)`` of loaded checkpoint ``data``: ``layout`` is ``"MMSegmentation
    1.x"``, ``"MMSegmentation 0.x"``, ``"state_dict without meta"`` or ``"bare state dict"``.
    Anything else is an :class:`MMSegConversionError` naming ``path``."""
    if not isinstance(data, Mapping):
        raise MMSegConversionError(
            f"{path} holds a {type(data).__name__}, not an MMSegmentation checkpoint (a dict with "
            "'state_dict', or a state dict)"
        )
    if "state_dict" in data:
        state, meta = data["state_dict"], data.get("meta")
        if isinstance(meta, Mapping) and "mmengine_version" in meta or "message_hub" in data:
            layout = "MMSegmentation 1.x"
        elif isinstance(meta, Mapping) and ("mmcv_version" in meta or "CLASSES" in meta):
            layout = "MMSegmentation 0.x"
        else:
            layout = "state_dict without meta"
    else:
        state, layout = data, "bare state dict"
    if not isinstance(state, Mapping) or not state:
        raise MMSegConversionError(f"{path}: its state dict is empty or not a dict")
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        top = sorted(str(k) for k in data)
        raise MMSegConversionError(
            f"{path} is not an MMSegmentation checkpoint: neither a dict with 'state_dict' nor a "
            f"state dict of tensors (top-level keys: {short_list(top)}; not tensors: "
            f"{short_list(not_tensors)})"
        )
    return strip_prefix(state, "module."), layout


def _mismatch(path, config, name, parts):
    return MMSegConversionError(
        f"{path} is not an MMSegmentation checkpoint of the model of {config} (MODEL.DECODE_HEAD."
        f"NAME {name}): " + "; ".join(parts) + ". Convert the checkpoint with the project config "
        "of the same model (configs/CPP-Plugin/<model>_*.yaml) and its MODEL.SEM_SEG_HEAD."
        "NUM_CLASSES; nothing was written"
    )


def convert_mmseg_state_dict(
    state: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    name: str,
    *,
    path: str = "<checkpoint>",
    config: str = "<config>",
):
    """``(converted, dropped, new)``: ``converted`` is ``target`` (the project model's state dict)
    with every backbone / decode-head entry taken from MMSegmentation's ``state`` through
    ``KEY_MAPS["mmseg"][name]``; ``dropped`` the source's auxiliary-head keys; ``new`` the target
    keys kept from ``target``. Any unmapped source key, missing target key or shape mismatch:
    :class:`MMSegConversionError`."""
    maps = KEY_MAPS.get("mmseg", {})
    if name not in maps:
        raise MMSegConversionError(
            f"{config}: no MMSegmentation key map for MODEL.DECODE_HEAD.NAME {name!r}; "
            f"valid choices: {', '.join(sorted(maps))}"
        )
    dropped = sorted(k for k in state if k.startswith(DROPPED_PREFIX))
    kept = [k for k in state if not k.startswith(DROPPED_PREFIX)]
    mapping = maps[name](kept)
    parts, _ = mapping_problems(state, target, mapping, CONVERTED_PREFIXES, kept)
    if parts:
        raise _mismatch(path, config, name, parts)
    converted, new = fill_state_dict(state, target, mapping)
    return converted, dropped, new


_build_project_model = build_project_model


def convert_mmseg_checkpoint(
    checkpoint: str,
    config: str,
    output: str,
    opts: Sequence[str] = (),
    *,
    trusted: bool = False,
    allow_unsafe_config: bool = False,
) -> MMSegConversionReport:
    """Convert MMSegmentation ``checkpoint`` for the project model of ``config`` (+ ``opts``,
    ``KEY VALUE`` pairs) and write it to ``output`` (atomically); returns the report. ``trusted``:
    read a checkpoint holding other pickled objects (mmengine's ``message_hub``) with the full
    unpickler (``--trust-weights-file``); ``allow_unsafe_config``: ``--allow-unsafe-config``."""
    checkpoint, config = os.fspath(checkpoint), os.fspath(config)
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"MMSegmentation checkpoint {checkpoint} does not exist")
    data = read_checkpoint(
        checkpoint, trusted=trusted, error=MMSegConversionError, what="an MMSegmentation .pth file"
    )
    state, layout = mmseg_state_dict(data, checkpoint)
    cfg, model = _build_project_model(config, opts, allow_unsafe_config)
    name = cfg.MODEL.DECODE_HEAD.NAME
    converted, dropped, new = convert_mmseg_state_dict(
        state, model.state_dict(), name, path=checkpoint, config=config
    )
    report = MMSegConversionReport(
        checkpoint=checkpoint,
        config=config,
        model=name,
        layout=layout,
        loaded=[k for k in converted if k not in set(new)],
        dropped=dropped,
        new=new,
        output=os.fspath(output),
    )
    write_converted(
        output,
        converted,
        "MMSegmentation (seethroughnet.conversion.mmseg)",
        {
            "source": os.path.abspath(checkpoint),
            "layout": layout,
            "config": config,
            "opts": [str(o) for o in opts],
            "dropped": dropped,
            "newly_initialised": new,
        },
    )
    return report


from . import mmseg_ocrnet, mmseg_resnet  # noqa: E402,F401  (register the key maps)
