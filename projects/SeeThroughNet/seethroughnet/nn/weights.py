"""Reading a weight file inside :mod:`seethroughnet.nn` with ``torch.load(weights_only=True)``.

:mod:`seethroughnet.nn` imports only torch, numpy, timm and itself, so it has its own plain loader.
The detectron2 glue reads every other weight file through ``seethroughnet/utils/safe_load.py``
(``.pkl`` Detectron weights, numpy arrays in ``.pth`` files, the ``--trust-weights-file`` opt-in);
its :class:`~seethroughnet.utils.safe_load.UntrustedWeightsError` is a subclass of the error here,
so one ``except`` catches a refusal from either.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from typing import Dict

import torch

from .layers import state_dict_of

__all__ = ["UntrustedWeightsError", "load_state_dict_file", "load_weights"]


class UntrustedWeightsError(ValueError, pickle.UnpicklingError):
    """A weight file holds pickled Python objects beyond tensors; loading it would run code."""


def _refusal_detail(e: Exception) -> str:
    """The global torch's ``weights_only`` unpickler refused (its wording varies by version)."""
    m = re.search(r"GLOBAL ([\w.]+)", str(e))
    if m:
        return f"global {m.group(1)} is not allowed"
    m = re.search(r"WeightsUnpickler error: ([^\n]+)", str(e))
    return m.group(1).strip()[:300] if m else "torch.load(weights_only=True) refused it"


def load_weights(path: str, *, trusted: bool = False):
    """``torch.load(path, map_location="cpu", weights_only=True)``: tensors, numbers, strings and
    containers only. A file that needs more is refused (:class:`UntrustedWeightsError`, naming the
    file and the opt-in) unless ``trusted``, which loads it with ``weights_only=False`` (with a
    warning: code in the file runs). A missing file is a ``FileNotFoundError`` naming it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weight file {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = _refusal_detail(e)
        if not trusted:
            raise UntrustedWeightsError(
                f"{path}: refused to load: torch.load(weights_only=True) found more than tensors, "
                f"numbers, strings and containers ({detail}); unpickling it would run code from "
                "the file. If you trust this file and where it came from, pass "
                "trust_checkpoint=True (detectron2 configs: --trust-weights-file or "
                "MODEL.WEIGHTS_TRUSTED True on the command line)"
            ) from None
        warnings.warn(
            f"{path}: loading with the full unpickler (trusted; {detail}): code in the file runs",
            stacklevel=2,
        )
        return torch.load(path, map_location="cpu", weights_only=False)


def load_state_dict_file(path: str, *, trusted: bool = False) -> Dict[str, torch.Tensor]:
    """The tensors of the weight file ``path`` (:func:`load_weights`), unwrapped by
    :func:`~seethroughnet.nn.layers.state_dict_of` (``state_dict`` / ``model`` wrappers, a saved
    module); a file without a state dict is a ``ValueError`` naming it."""
    obj = load_weights(path, trusted=trusted)
    try:
        return state_dict_of(obj)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
