"""Activation checkpointing for SeeThroughNet's training passes (not in the paper: a memory option
that leaves the model, Eqs. 3-7, and its gradients unchanged).

A *segment* run through :func:`checkpoint_segment` keeps only its inputs for backward; its
intermediate activations are recomputed in the backward pass
(``torch.utils.checkpoint.checkpoint(..., use_reentrant=False)``: the recomputation runs under
the forward's autocast state and RNG state, so ``Dropout2d`` draws the same masks and AMP the
same dtypes). Less memory, about one more forward of the segment in time.

**BatchNorm.** In training mode a BatchNorm normalises with the batch statistics and updates its
running statistics in place; the recomputation would update them a second time. The segment's
``_BatchNorm`` buffers (``running_mean``, ``running_var``, ``num_batches_tracked``; plain BN and
SyncBN) are therefore saved when the recomputation starts and copied back when it ends, so after a
step they equal the plain model's exactly (the recomputed normalisation itself uses the batch
statistics, not the running ones, so it is the forward's). ``FrozenBatchNorm2d`` has nothing to
update.

**State.** Checkpointing adds no parameter, buffer or optimizer state: a checkpoint written with it
on resumes exactly with it off, and the other way round.

It is active only where it can save memory: in training mode with gradients enabled
(:func:`checkpointing_active`); evaluation, inference and ``torch.no_grad()`` run the plain code.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable, List, Sequence, Tuple

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

__all__ = ["CHECKPOINT_PARTS", "checkpointing_active", "checkpoint_segment", "RestoreBatchNorm"]

#: the parts of SeeThroughNet that ``ActivationCheckpointing.parts`` can name: the HRNet encoder
#: (one segment per HRNet module), the See-Through decoder (one segment) and the OCR head with
#: its HRNetV2 concatenation (one segment)
CHECKPOINT_PARTS = ("encoder", "decoder", "ocr")

_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def checkpointing_active(module: nn.Module, enabled: bool) -> bool:
    """``enabled`` and ``module`` training with gradients enabled."""
    return bool(enabled) and module.training and torch.is_grad_enabled()


class RestoreBatchNorm:
    """Context manager: on exit, the running statistics of every ``_BatchNorm`` in ``modules`` are
    what they were on entry (the recomputation of a segment must not update them again)."""

    def __init__(self, modules: Iterable[nn.Module]):
        self.norms: List[_BatchNorm] = []
        for module in modules:
            self.norms.extend(m for m in module.modules() if isinstance(m, _BatchNorm))
        self.saved: List[Tuple[_BatchNorm, str, torch.Tensor]] = []

    def __enter__(self):
        self.saved = [
            (bn, name, getattr(bn, name).clone())
            for bn in self.norms
            for name in _BN_BUFFERS
            if getattr(bn, name, None) is not None
        ]
        return self

    def __exit__(self, *exc):
        with torch.no_grad():
            for bn, name, value in self.saved:
                getattr(bn, name).copy_(value)
        self.saved = []
        return False


def checkpoint_segment(function: Callable, *args, modules: Sequence[nn.Module]):
    """``function(*args)`` with its activations recomputed in backward; ``modules``: the modules
    ``function`` runs (whose BatchNorm statistics the recomputation must leave alone). Pass
    tensors as separate ``args``, not in a list that ``function`` may modify in place (the
    recomputation calls ``function`` with the same ``args`` again)."""
    return checkpoint(
        function,
        *args,
        use_reentrant=False,
        context_fn=lambda: (contextlib.nullcontext(), RestoreBatchNorm(modules)),
    )
