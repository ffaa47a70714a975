"""The parts every checkpoint converter shares (``tools/convert_weights.py <source>``).

A converter (``seethroughnet.conversion.mmseg``, ``seethroughnet.conversion.ocr_references``)
reads a published checkpoint with :func:`read_checkpoint` (no code from the file is run,
:func:`seethroughnet.utils.safe_load.load_weights_file`), renames its keys with a key map
(``KEY_MAPS[source][model]``, :mod:`seethroughnet.conversion.key_maps`), checks the renamed state
dict against the project model built from the config with :func:`mapping_problems` (every
required project key filled once, with its shape; no source key left unmapped), fills the model's
state dict with :func:`fill_state_dict` and writes it atomically with :func:`write_converted`.
A mismatch is one :class:`ConversionError` naming the checkpoint, the config and the first
mismatching keys; nothing is written.
"""

from __future__ import annotations

import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Type

import torch

from ..nn.layers import short_list
from ..utils.atomic import atomic_path
from ..utils.safe_load import load_weights_file

__all__ = [
    "ConversionError",
    "build_project_model",
    "fill_state_dict",
    "mapping_problems",
    "read_checkpoint",
    "same_shape",
    "strip_prefix",
    "write_converted",
]


class ConversionError(ValueError):
    """A checkpoint that is not (readable as) a checkpoint of the configured model; the message
    names the file, the config and the first mismatching keys."""


def same_shape(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal shapes; a scalar is the same value as shape ``()`` or ``(1,)``."""
    return tuple(a.shape) == tuple(b.shape) or (a.numel() == 1 and b.numel() == 1)


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    """``state`` with ``prefix`` removed where a key starts with it (``module.``: DataParallel)."""
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state.items()}


def read_checkpoint(
    path: str,
    *,
    trusted: bool = False,
    error: Type[ConversionError] = ConversionError,
    what: str = "a .pth checkpoint",
):
    """The object stored in ``path`` (a torch zip file or legacy pickle), read without running
    code from it unless ``trusted``. A missing file is ``FileNotFoundError``; a file that is not a
    readable PyTorch checkpoint an ``error`` naming it and asking for ``what``."""
    from ..checkpoint import UnreadableCheckpointError, check_checkpoint_file  # detectron2

    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic[:2] != b"PK" and magic[:1] != b"\x80":  # torch's zip format / a legacy pickle
        raise error(
            f"{path} is not a PyTorch checkpoint (neither torch's zip format nor a pickle"
            f"{'; it is empty' if not magic else ''}); give {what}"
        )
    try:
        check_checkpoint_file(path)  # a zip archive cut short
    except UnreadableCheckpointError as e:
        raise error(str(e)) from None
    try:
        return load_weights_file(path, trusted=trusted)
    except (RuntimeError, EOFError, OSError) as e:
        raise error(
            f"cannot read {path} as a PyTorch checkpoint ({type(e).__name__}: {e}); give {what}"
        ) from None


def mapping_problems(
    state: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    mapping: Mapping[str, str],
    required: Sequence[str],
    kept: Optional[Sequence[str]] = None,
    optional: Sequence[str] = (),
) -> Tuple[List[str], Dict[str, List[str]]]:
    """``(problems, by_target)``: ``problems`` lists (first keys of each kind) the source keys in
    ``kept`` (default: all of ``state``) that ``mapping`` leaves out, mapped keys the model lacks,
    project keys mapped twice, ``required`` prefixes' project keys left empty and shape
    mismatches (project keys in ``optional`` may stay empty); ``by_target`` is ``{project key:
    [source keys]}``."""
    kept = list(state) if kept is None else list(kept)
    unmapped = [k for k in kept if k not in mapping]
    unknown = sorted(f"{k} -> {v}" for k, v in mapping.items() if v not in target)
    by_target: Dict[str, List[str]] = {}
    for k, v in mapping.items():
        by_target.setdefault(v, []).append(k)
    twice = sorted(f"{v} <- {' and '.join(ks)}" for v, ks in by_target.items() if len(ks) > 1)
    optional = set(optional)
    missing = [
        k
        for k in target
        if k.startswith(tuple(required)) and k not in by_target and k not in optional
    ]
    shapes = [
        f"{k} -> {v} (checkpoint {tuple(state[k].shape)} vs model {tuple(target[v].shape)})"
        for k, v in mapping.items()
        if v in target and not same_shape(state[k], target[v])
    ]
    parts = []
    if unmapped:
        parts.append(f"{len(unmapped)} checkpoint keys with no project key: {short_list(unmapped)}")
    if unknown:
        parts.append(f"{len(unknown)} mapped to keys the model lacks: {short_list(unknown)}")
    if twice:
        parts.append(f"{len(twice)} project keys mapped twice: {short_list(twice)}")
    if missing:
        parts.append(f"{len(missing)} model keys not in the checkpoint: {short_list(missing)}")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches: {short_list(shapes, sort=False)}")
    return parts, by_target


def fill_state_dict(
    state: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    mapping: Mapping[str, str],
) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """``(converted, new)``: a copy of ``target`` with every mapped entry taken from ``state``
    (cast to the target's dtype and shape), and the target keys no source key filled."""
    converted = {k: v.detach().clone() for k, v in target.items()}
    for k, v in mapping.items():
        converted[v] = state[k].detach().to(target[v].dtype).reshape(target[v].shape).clone()
    filled = set(mapping.values())
    return converted, [k for k in target if k not in filled]


def build_project_model(config: str, opts: Sequence[str] = (), allow_unsafe: bool = False):
    """``(cfg, model)``: the detectron2 model of project ``config`` + ``opts`` on the CPU."""
    from detectron2.modeling import build_model

    from .. import modeling  # noqa: F401  (registers the meta-architectures and backbones)
    from ..config import build_config

    cfg = build_config(config, list(opts) + ["MODEL.DEVICE", "cpu"], allow_unsafe=allow_unsafe)
    return cfg, build_model(cfg)


def write_converted(output: str, converted: Mapping[str, torch.Tensor], author: str, info) -> None:
    """Write ``{"model": converted, "__author__": author, "conversion": info}`` atomically (the
    project's checkpointer reads ``MODEL.WEIGHTS`` files of this layout)."""
    out = {"model": dict(converted), "__author__": author, "conversion": info}
    with atomic_path(output) as tmp:
        torch.save(out, tmp)
