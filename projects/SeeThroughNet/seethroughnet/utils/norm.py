"""``SyncBatchNorm`` -> ``BatchNorm2d`` for CPU runs.

PyTorch's ``nn.SyncBatchNorm`` trains only on GPU/XPU inputs when a process group with more than
one process exists ("SyncBatchNorm expected input tensor to be on GPU or XPU"), so a config with
``SyncBN`` (the W48 SeeThroughNet configs) cannot train in a multi-process CPU (gloo) run. On CPU
the trainers replace every ``SyncBatchNorm`` by a ``BatchNorm2d`` holding the same parameters and
buffers: per-process batch statistics instead of synchronised ones. Parameters stay identical
across processes (DistributedDataParallel averages the gradients); the running statistics are
each process's own (the trainers' DDP has ``broadcast_buffers=False``, as detectron2's), and the
checkpoint, written by rank 0, holds rank 0's.
"""

from __future__ import annotations

import logging

from torch import nn

__all__ = ["convert_sync_batchnorm_to_bn"]

logger = logging.getLogger(__name__)


def _convert(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.SyncBatchNorm):
        bn = nn.BatchNorm2d(
            module.num_features,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
        )
        if module.affine:
            bn.weight = module.weight
            bn.bias = module.bias
        if module.track_running_stats:
            bn.running_mean = module.running_mean
            bn.running_var = module.running_var
            bn.num_batches_tracked = module.num_batches_tracked
        bn.train(module.training)
        return bn
    for name, child in module.named_children():
        new = _convert(child)
        if new is not child:
            setattr(module, name, new)
    return module


def convert_sync_batchnorm_to_bn(module: nn.Module) -> nn.Module:
    """Replace every ``nn.SyncBatchNorm`` in ``module`` (in place; the module itself if it is one)
    by an ``nn.BatchNorm2d`` sharing its parameters and buffers, so that state-dict keys and
    values are unchanged. Returns the (possibly new) module."""
    n = sum(isinstance(m, nn.SyncBatchNorm) for m in module.modules())
    if n:
        logger.warning(
            "%d SyncBatchNorm layers converted to BatchNorm2d for a CPU run (per-process batch "
            "statistics)",
            n,
        )
    return _convert(module)
