"""Initialise an :class:`seethroughnet.nn.hrnet.HRNetV2Encoder` for detection transfer.

* ImageNet: a timm / official HRNet classification checkpoint, loaded strictly by
  ``HRNetV2Encoder(checkpoint=...)`` (classifier head dropped). :func:`imagenet_report` says
  which tensors of the file went into the encoder and which did not.
* SeeThroughNet: a checkpoint written by ``projects/SeeThroughNet/train_net.py`` (detectron2
  ``{"model": state_dict, ...}``, or a bare state dict). The encoder's tensors sit under some
  prefix (``backbone.encoder.``, ``net.encoder.``, ...): :func:`find_encoder_prefix` finds the
  prefix ``p`` for which ``p + k`` is in the checkpoint for every key ``k`` of the encoder's
  state dict, trying the prefixes implied by checkpoint keys that end with an encoder key.
  Only those tensors are loaded (:func:`load_seethroughnet_encoder`); everything else in the
  file (decoder, OCR head, ...) is reported as not loaded.

Errors are :class:`EncoderWeightsError` (a ``ValueError``) naming the file and the keys.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from seethroughnet.nn.layers import short_list, state_dict_of

__all__ = [
    "EncoderWeightsError",
    "read_state_dict",
    "find_encoder_prefix",
    "load_seethroughnet_encoder",
    "imagenet_report",
]

logger = logging.getLogger(__name__)

# BatchNorm's counter: absent from FrozenBatchNorm2d and from some exporters; never required.
_OPTIONAL_SUFFIX = "num_batches_tracked"


class EncoderWeightsError(ValueError):
    """A checkpoint cannot initialise the encoder; the message names the file and keys."""


def read_state_dict(path: str, trusted: bool = False) -> Dict[str, torch.Tensor]:
    """Tensors of a checkpoint file: detectron2 ``.pth`` (``{"model": ...}``), a bare state dict,
    ``{"state_dict": ...}``, or a detectron2/Detectron ``.pkl`` of numpy arrays. Read without
    running code from the file (``torch.load(weights_only=True)``, a restricted unpickler for
    ``.pkl``); a file holding other pickled objects raises
    :class:`~seethroughnet.utils.safe_load.UntrustedWeightsError` unless ``trusted``
    (``MODEL.WEIGHTS_TRUSTED`` / ``--trust-weights-file``)."""
    from seethroughnet.utils.safe_load import UnsafeFileError, load_weights_file

    if not path or not os.path.isfile(path):
        raise EncoderWeightsError(f"encoder checkpoint {path!r} does not exist")
    try:
        obj = load_weights_file(path, trusted=trusted)
    except UnsafeFileError:
        raise
    except Exception as e:  # noqa: BLE001
        raise EncoderWeightsError(
            f"cannot read encoder checkpoint {path!r}: {type(e).__name__}: {e}"
        ) from e
    try:
        return state_dict_of(obj)
    except ValueError as e:
        raise EncoderWeightsError(f"encoder checkpoint {path!r}: {e}") from None


def find_encoder_prefix(
    state: Mapping[str, torch.Tensor], encoder_keys: List[str]
) -> Tuple[Optional[str], List[str]]:
    """``(prefix, candidates)``: the shortest prefix ``p`` with ``p + k in state`` for every
    required encoder key ``k`` (``None`` if there is none), and every prefix that was tried."""
    required = [k for k in encoder_keys if not k.endswith(_OPTIONAL_SUFFIX)]
    if not required:
        raise ValueError("the encoder has no parameters")
    # Anchor on the rarest-looking key (the deepest one) to keep the candidate list short.
    anchor = max(required, key=lambda k: (k.count("."), len(k)))
    candidates = sorted(
        {k[: -len(anchor)] for k in state if k.endswith(anchor)}, key=lambda p: (len(p), p)
    )
    full = [p for p in candidates if all(p + k in state for k in required)]
    return (full[0] if full else None), candidates


def load_seethroughnet_encoder(encoder: nn.Module, path: str, trusted: bool = False) -> dict:
    """Load the encoder weights of a SeeThroughNet checkpoint into ``encoder`` (an
    ``HRNetV2Encoder``, any norm). Returns the report dict (also logged)."""
    state = read_state_dict(path, trusted=trusted)
    own = encoder.state_dict()
    own_keys = list(own)
    prefix, candidates = find_encoder_prefix(state, own_keys)
    if prefix is None:
        required = [k for k in own_keys if not k.endswith(_OPTIONAL_SUFFIX)]
        hint = ""
        if candidates:
            p = candidates[0]
            missing = [k for k in required if p + k not in state]
            hint = (
                f"; under the closest prefix {p!r} {len(missing)} of {len(required)} keys are "
                f"missing, e.g. {short_list(missing, 5, sort=False)}"
            )
        raise EncoderWeightsError(
            f"checkpoint {path} holds no HRNetV2 encoder weights (looked for keys like "
            f"'<prefix>{required[0]}', '<prefix>{required[-1]}' for a "
            f"{getattr(encoder, 'variant', 'HRNetV2')} "
            f"encoder; the checkpoint has {len(state)} tensors, e.g. {short_list(state, 5)}{hint})"
        )
    mismatched = [
        f"{prefix}{k}: checkpoint {tuple(state[prefix + k].shape)} vs encoder {tuple(v.shape)}"
        for k, v in own.items()
        if prefix + k in state and tuple(state[prefix + k].shape) != tuple(v.shape)
    ]
    if mismatched:
        raise EncoderWeightsError(
            f"checkpoint {path}: encoder weights under {prefix!r} do not fit a "
            f"{getattr(encoder, 'variant', 'HRNetV2')} encoder (another HRNet width?): "
            f"{short_list(mismatched, 5, sort=False)}"
        )
    sub = {k: state[prefix + k] for k in own_keys if prefix + k in state}
    result = encoder.load_state_dict(sub, strict=False)
    bad_missing = [k for k in result.missing_keys if not k.endswith(_OPTIONAL_SUFFIX)]
    if (
        bad_missing or result.unexpected_keys
    ):  # cannot happen after the prefix search; be loud if it does
        raise EncoderWeightsError(
            f"checkpoint {path}: loading under {prefix!r} left missing "
            f"{short_list(bad_missing, 8, sort=False)} / unexpected "
            f"{short_list(result.unexpected_keys, 8, sort=False)}"
        )
    used = {prefix + k for k in sub}
    not_loaded = sorted(k for k in state if k not in used)
    report = {
        "init": "seethroughnet",
        "path": os.path.abspath(path),
        "prefix": prefix,
        "other_prefixes_tried": [p for p in candidates if p != prefix],
        "loaded": len(sub),
        "encoder_tensors": len(own_keys),
        "loaded_keys": sorted(sub),
        "encoder_keys_not_in_checkpoint": sorted(k for k in own_keys if k not in sub),
        "checkpoint_keys_not_loaded": len(not_loaded),
        "checkpoint_key_groups_not_loaded": _groups(not_loaded),
    }
    logger.info(
        "encoder <- %s: %d tensors from prefix %r; %d checkpoint tensors not loaded (%s); "
        "encoder keys not in the checkpoint: %s",
        path,
        len(sub),
        prefix,
        len(not_loaded),
        report["checkpoint_key_groups_not_loaded"],
        report["encoder_keys_not_in_checkpoint"] or "none",
    )
    return report


def _groups(keys, depth=2) -> Dict[str, int]:
    """Count keys by their first ``depth`` dotted components (``sem_seg_head.ocr``: 42)."""
    out: Dict[str, int] = {}
    for k in keys:
        g = ".".join(k.split(".")[:depth])
        out[g] = out.get(g, 0) + 1
    return dict(sorted(out.items()))


def imagenet_report(encoder: nn.Module, path: str, trusted: bool = False) -> dict:
    """What an (already strict-loaded) ImageNet checkpoint contributed to ``encoder``."""
    state = read_state_dict(path, trusted=trusted)
    own_keys = [k for k in encoder.state_dict() if not k.endswith(_OPTIONAL_SUFFIX)]
    # num_batches_tracked counters count as loaded (dropped silently by FrozenBatchNorm2d)
    body_keys = {k[len("body.") :] for k in encoder.state_dict() if k.startswith("body.")}
    loaded, not_loaded = [], []
    for k in state:
        probe = k[: -len(_OPTIONAL_SUFFIX)] + "running_mean" if k.endswith(_OPTIONAL_SUFFIX) else k
        # the encoder strips module./backbone./body. wrappers; match on the longest suffix
        parts = probe.split(".")
        hit = next(
            (".".join(parts[i:]) for i in range(len(parts)) if ".".join(parts[i:]) in body_keys),
            None,
        )
        if hit is None:
            not_loaded.append(k)
        elif not k.endswith(_OPTIONAL_SUFFIX):  # BatchNorm counters are not counted
            loaded.append(k)
    report = {
        "init": "imagenet",
        "path": os.path.abspath(path),
        "loaded": len(loaded),
        "encoder_tensors": len(own_keys),
        "checkpoint_keys_not_loaded": len(not_loaded),
        "checkpoint_key_groups_not_loaded": _groups(not_loaded, depth=1),
    }
    logger.info(
        "encoder <- ImageNet %s: %d tensors (strict); not loaded (classifier head): %s",
        path,
        len(loaded),
        report["checkpoint_key_groups_not_loaded"] or "none",
    )
    return report
