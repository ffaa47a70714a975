"""Learning-rate schedules: detectron2's DeepLab ``WarmupPolyLR`` and MMEngine's ``PolyLR``.

``SOLVER.LR_SCHEDULER_NAME``:

* ``"WarmupPolyLR"`` (and detectron2's other names): ``detectron2.projects.deeplab.
  build_lr_scheduler``, ``lr = BASE_LR * (1 - iter / MAX_ITER) ** POLY_LR_POWER`` (decays to 0).
* ``"MMEnginePolyLR"``: :class:`MMEnginePolyLR`, the schedule MMSegmentation 1.x trains with
  (``configs/_base_/schedules/schedule_{20k,40k,80k}.py``: ``PolyLR(eta_min=1e-4, power=0.9,
  begin=0, end=max_iters, by_epoch=False)``).

MMEngine (mmengine/optim/scheduler/param_scheduler.py, ``PolyParamScheduler``) updates the value
recursively, ``lr_t = (lr_{t-1} - eta_min) * (1 - 1 / (T - t + 1)) ** power + eta_min`` with
``T = end - begin - 1``; since ``1 - 1 / (T - t + 1) = (T - t) / (T - t + 1)``, the product over
``1..t`` telescopes to the closed form used here::

    lr_t = (base_lr - eta_min) * (1 - t / T) ** power + eta_min,   T = max_iters - 1,

so the last iteration (``t = max_iters - 1``) runs at ``eta_min``.
"""

from __future__ import annotations

from typing import List

import torch

__all__ = ["LR_SCHEDULER_NAMES", "MMEnginePolyLR", "build_lr_scheduler"]

#: the names this module builds itself (detectron2's own names go to its DeepLab builder)
LR_SCHEDULER_NAMES = ("MMEnginePolyLR",)


class MMEnginePolyLR(torch.optim.lr_scheduler._LRScheduler):
    """MMEngine's ``PolyLR`` in closed form (module docstring), iteration based, with
    detectron2's warm-up factor (``warmup_iters=0``: none, as MMSegmentation) multiplied in.
    ``max_iters`` may be changed after a resume (the closed form reads it each step). A
    ``_LRScheduler``, as detectron2's ``WarmupPolyLR``: detectron2's ``LRScheduler`` hook saves
    and restores the state of those only."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        max_iters: int,
        eta_min: float = 0.0,
        power: float = 0.9,
        warmup_factor: float = 0.001,
        warmup_iters: int = 0,
        warmup_method: str = "linear",
        last_epoch: int = -1,
    ):
        if max_iters < 2:
            raise ValueError(f"MMEnginePolyLR needs max_iters >= 2, got {max_iters}")
        if eta_min < 0:
            raise ValueError(f"MMEnginePolyLR eta_min must be >= 0, got {eta_min}")
        self.max_iters = max_iters
        self.eta_min = eta_min
        self.power = power
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        super().__init__(optimizer, last_epoch)

    def _poly(self, base_lr: float) -> float:
        horizon = self.max_iters - 1
        progress = min(max(self.last_epoch, 0), horizon) / horizon
        return (base_lr - self.eta_min) * (1.0 - progress) ** self.power + self.eta_min

    def get_lr(self) -> List[float]:
        from detectron2.solver.lr_scheduler import _get_warmup_factor_at_iter

        warmup = _get_warmup_factor_at_iter(
            self.warmup_method, self.last_epoch, self.warmup_iters, self.warmup_factor
        )
        return [warmup * self._poly(base_lr) for base_lr in self.base_lrs]


def build_lr_scheduler(cfg, optimizer: torch.optim.Optimizer):
    """The scheduler named by ``SOLVER.LR_SCHEDULER_NAME``: :class:`MMEnginePolyLR` for
    ``"MMEnginePolyLR"``, else detectron2's DeepLab builder (``WarmupPolyLR``, ...), which has no
    floor: ``SOLVER.POLY_LR_MIN`` other than 0 with it is an error naming both keys."""
    s = cfg.SOLVER
    if s.LR_SCHEDULER_NAME == "MMEnginePolyLR":
        return MMEnginePolyLR(
            optimizer,
            s.MAX_ITER,
            eta_min=s.POLY_LR_MIN,
            power=s.POLY_LR_POWER,
            warmup_factor=s.WARMUP_FACTOR,
            warmup_iters=s.WARMUP_ITERS,
            warmup_method=s.WARMUP_METHOD,
        )
    if s.POLY_LR_MIN != 0:
        raise ValueError(
            f"SOLVER.POLY_LR_MIN {s.POLY_LR_MIN} is read only by SOLVER.LR_SCHEDULER_NAME "
            f"'MMEnginePolyLR', not by {s.LR_SCHEDULER_NAME!r}: set the name or POLY_LR_MIN 0"
        )
    from detectron2.projects.deeplab import build_lr_scheduler as build_deeplab_lr_scheduler

    return build_deeplab_lr_scheduler(cfg, optimizer)
