"""The trainer base the project's trainers share: detectron2's ``DefaultTrainer`` assembled with
the project's own DDP wrapper and step loop, so that it runs the same on detectron2 v0.6 and on
upstream main, on GPUs and on CPUs.

Two things differ from ``DefaultTrainer.__init__`` (whose construction order it keeps):

* :func:`create_ddp_model`: ``device_ids`` only for CUDA modules. Upstream main's
  ``create_ddp_model`` passes ``device_ids=[local_rank]`` for every module, which
  ``DistributedDataParallel`` rejects for CPU modules, so multi-process CPU (gloo) training fails
  there.
* :func:`build_step_trainer`: ``SOLVER.AMP.ENABLED`` gives detectron2's ``AMPTrainer`` (float16
  autocast + gradient scaling) on CUDA and :class:`CPUAutocastTrainer` (bfloat16 autocast, no
  scaling needed) on CPU, where ``AMPTrainer`` would run without autocast.
"""

from __future__ import annotations

import logging
import time
import weakref

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from torch.nn.parallel import DistributedDataParallel

__all__ = ["PortableDefaultTrainer", "create_ddp_model", "build_step_trainer", "CPUAutocastTrainer"]


def create_ddp_model(model: torch.nn.Module, **kwargs) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` when there is more than one process; the local GPU as
    ``device_ids`` only when the model is on CUDA (CPU modules take none)."""
    if comm.get_world_size() == 1:
        return model
    on_cuda = next(model.parameters()).device.type == "cuda"
    if on_cuda and "device_ids" not in kwargs:
        kwargs["device_ids"] = [comm.get_local_rank()]
    return DistributedDataParallel(model, **kwargs)


class CPUAutocastTrainer(SimpleTrainer):
    """``SimpleTrainer`` whose forward pass (and losses) runs under bfloat16 autocast on the CPU.
    The loss modules compute in float32 themselves (RMI's log-det in float64); bfloat16 has
    float32's range, so no gradient scaling is needed."""

    def run_step(self):
        assert self.model.training, "[CPUAutocastTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss_dict = self.model(data)
        losses = loss_dict if isinstance(loss_dict, torch.Tensor) else sum(loss_dict.values())
        if isinstance(loss_dict, torch.Tensor):
            loss_dict = {"total_loss": loss_dict}
        self.optimizer.zero_grad()
        losses.backward()
        self._write_metrics(loss_dict, data_time)
        self.optimizer.step()


def build_step_trainer(cfg, model, data_loader, optimizer) -> SimpleTrainer:
    """The step loop: AMP on CUDA (detectron2's AMPTrainer), bfloat16 autocast on CPU, or plain."""
    if not cfg.SOLVER.AMP.ENABLED:
        return SimpleTrainer(model, data_loader, optimizer)
    if cfg.MODEL.DEVICE.startswith("cuda"):
        return AMPTrainer(model, data_loader, optimizer)
    logging.getLogger(__name__).info("SOLVER.AMP.ENABLED on CPU: bfloat16 autocast")
    return CPUAutocastTrainer(model, data_loader, optimizer)


class PortableDefaultTrainer(DefaultTrainer):
    """``DefaultTrainer`` built with :func:`create_ddp_model` and :func:`build_step_trainer`;
    everything else (hooks, checkpointing, evaluation, ``train``) is detectron2's."""

    def __init__(self, cfg):  # noqa: D107  (DefaultTrainer.__init__'s order, without its DDP/trainer choice)
        TrainerBase.__init__(self)
        logger = logging.getLogger("detectron2")
        if not logger.isEnabledFor(logging.INFO):  # setup_logger is not called for d2
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = create_ddp_model(model, broadcast_buffers=False)
        self._trainer = build_step_trainer(cfg, model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = DetectionCheckpointer(
            model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self)
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())
