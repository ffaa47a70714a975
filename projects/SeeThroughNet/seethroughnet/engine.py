"""The project's trainer, one class: :class:`Trainer` (``train_net.py`` is a thin command line
around it, ``transfer/train_net.py`` subclasses it), with :func:`setup` and the weight guards.
``Trainer(cfg)`` builds, each once, the model, optimizer, resumable train loader (resumable.py),
step loop, LR schedule, checkpointer (checkpoint.py) and hooks; exact resume: :meth:`state_dict`.
"""

import logging
import os
import random
import time
import weakref

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_test_loader
from detectron2.engine import (
    AMPTrainer,
    DefaultTrainer,
    SimpleTrainer,
    TrainerBase,
    default_setup,
    hooks,
)
from detectron2.evaluation import DatasetEvaluators, verify_results
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from fvcore.nn.precise_bn import get_bn_modules
from torch.nn.parallel import DistributedDataParallel

from . import modeling  # noqa: F401  (registers the backbone and meta-architecture)
from .checkpoint import StrictCheckpointer
from .config import build_config
from .data.dataset_mappers import SemanticSegmentationMapper
from .data.datasets import register_all
from .evaluation import CityscapesOfficialSemSegEvaluator, ProjectSemSegEvaluator
from .lr_schedule import build_lr_scheduler as build_poly_lr_scheduler
from .resumable import (
    ResumableTrainLoader,
    build_resumable_train_loader,
    get_rng_state,
    preserved_rng,
    sample_seed,
    set_rng_state,
)
from .utils.atomic import check_writable_dir
from .utils.norm import convert_sync_batchnorm_to_bn

logger = logging.getLogger(__name__)

__all__ = [
    "Trainer",
    "setup",
    "create_ddp_model",
    "build_step_trainer",
    "CPUAutocastTrainer",
    "add_eval_arguments",
    "check_pretrained_weights",
    "check_eval_weights",
    "EVAL_RANDOM_WEIGHTS_FLAG",
    "RandomInitError",
]


class RandomInitError(RuntimeError):
    """Training would start from random weights although the config asks for pre-trained ones."""


def check_pretrained_weights(cfg) -> None:
    """Refuse to train a config that declares ``MODEL.REQUIRES_PRETRAINED`` from random weights.

    The paper-scale configs (SeeThroughNet W48, the Table 1 models) start from ImageNet encoders;
    nothing can be downloaded, so an empty weight key would silently train from scratch for days.
    Any of ``MODEL.WEIGHTS``, for HRNet encoders ``MODEL.HRNET.CHECKPOINT`` and for the dilated
    ResNet ``MODEL.RESNETS.IMAGENET_CHECKPOINT`` satisfies the check; ``MODEL.ALLOW_RANDOM_INIT
    True`` opts out (the CPU demo and test configs do).
    """
    if not cfg.MODEL.REQUIRES_PRETRAINED or cfg.MODEL.ALLOW_RANDOM_INIT or cfg.MODEL.WEIGHTS:
        return
    hrnet = (
        cfg.MODEL.META_ARCHITECTURE == "SeeThroughNetSegmentor"
        or "hrnet" in cfg.MODEL.BACKBONE.NAME.lower()
    )
    if hrnet and cfg.MODEL.HRNET.CHECKPOINT:
        return
    resnet = cfg.MODEL.BACKBONE.NAME == "build_dilated_resnet_backbone"
    if resnet and getattr(cfg.MODEL.RESNETS, "IMAGENET_CHECKPOINT", ""):
        return
    if hrnet:
        what = (
            "MODEL.HRNET.CHECKPOINT (a local ImageNet HRNet file, timm or official HRNet "
            "layout) or MODEL.WEIGHTS"
        )
    elif resnet:
        what = (
            "MODEL.RESNETS.IMAGENET_CHECKPOINT (a local ImageNet ResNet file: torchvision, timm or "
            "MMSegmentation/MMCV resnet101_v1c layout, see MODEL.RESNETS.IMAGENET_LAYOUT) or "
            "MODEL.WEIGHTS"
        )
    else:
        what = "MODEL.WEIGHTS (a local ImageNet checkpoint of the backbone)"
    raise RandomInitError(
        "this config sets MODEL.REQUIRES_PRETRAINED (its encoder starts from ImageNet weights) "
        "but no "
        f"weight file is given: set {what}, or add `MODEL.ALLOW_RANDOM_INIT True` to train from "
        "random initialisation on purpose"
    )


#: ``train_net.py`` flag: evaluate a model without weights (random initialisation) on purpose.
EVAL_RANDOM_WEIGHTS_FLAG = "--eval-random-weights"


def add_eval_arguments(parser):
    """Add :data:`EVAL_RANDOM_WEIGHTS_FLAG` to a ``train_net.py`` argument parser."""
    parser.add_argument(
        EVAL_RANDOM_WEIGHTS_FLAG,
        action="store_true",
        help="with --eval-only: evaluate a randomly initialised model on purpose (without it, "
        "--eval-only needs MODEL.WEIGHTS or a checkpoint that --resume finds)",
    )
    return parser


def check_eval_weights(cfg, resume=False, allow_random=False) -> None:
    """Refuse to evaluate a randomly initialised model: ``--eval-only`` needs ``MODEL.WEIGHTS``
    or, with ``--resume``, a checkpoint in ``OUTPUT_DIR`` (``last_checkpoint`` or a
    ``model_*.pth``), unless ``allow_random`` (:data:`EVAL_RANDOM_WEIGHTS_FLAG`).
    ``MODEL.ALLOW_RANDOM_INIT`` is training's opt-out and does not count here: the demo config
    sets it, and evaluating random weights is never what an evaluation of that config means."""
    if cfg.MODEL.WEIGHTS or allow_random:
        return
    if resume and os.path.isdir(cfg.OUTPUT_DIR):
        names = os.listdir(cfg.OUTPUT_DIR)
        if "last_checkpoint" in names or any(_is_checkpoint_name(n) for n in names):
            return
    note = (
        " (MODEL.ALLOW_RANDOM_INIT True lets training start from random weights; it does not "
        "apply to evaluation)"
        if cfg.MODEL.ALLOW_RANDOM_INIT
        else ""
    )
    found = f"; --resume found no checkpoint in {cfg.OUTPUT_DIR}" if resume else ""
    raise RandomInitError(
        "--eval-only without weights would evaluate a randomly initialised model"
        f"{found}: set MODEL.WEIGHTS to a trained checkpoint (or pass --resume with a checkpoint "
        f"in OUTPUT_DIR), or pass {EVAL_RANDOM_WEIGHTS_FLAG} to evaluate random weights on "
        f"purpose{note}"
    )


def _is_checkpoint_name(name) -> bool:
    return name == "model_final.pth" or (
        name.startswith("model_") and name.endswith(".pth") and name[6:-4].isdigit()
    )


def check_output_dir(path) -> None:
    """Fail at the start, naming the folder, if ``OUTPUT_DIR`` cannot be created or written."""
    check_writable_dir(path, "OUTPUT_DIR", "set OUTPUT_DIR to a folder you can write")


def setup(args):
    """``args``: detectron2's ``default_argument_parser`` with
    :func:`~seethroughnet.utils.safe_load.add_safety_arguments`."""
    from .utils.safe_load import apply_safety_arguments

    register_all()
    cfg = build_config(
        args.config_file,
        apply_safety_arguments(args, args.opts),
        allow_unsafe=getattr(args, "allow_unsafe_config", False),
    )
    cfg.freeze()
    check_output_dir(cfg.OUTPUT_DIR)
    default_setup(cfg, args)
    return cfg


# ---------------------------------------------------------------------------------------------
# the step loop: the two choices that differ from DefaultTrainer's
def create_ddp_model(model: torch.nn.Module, **kwargs) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` when there is more than one process; the local GPU as
    ``device_ids`` only when the model is on CUDA. (Upstream main's ``create_ddp_model`` passes
    ``device_ids`` for every module, which DDP rejects for CPU modules: multi-process CPU (gloo)
    training would fail there.)"""
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
    """``SOLVER.AMP.ENABLED``: detectron2's ``AMPTrainer`` (float16 autocast, gradient scaling) on
    CUDA, :class:`CPUAutocastTrainer` (bfloat16) on CPU, where ``AMPTrainer`` would run without
    autocast; otherwise ``SimpleTrainer``."""
    if not cfg.SOLVER.AMP.ENABLED:
        return SimpleTrainer(model, data_loader, optimizer)
    if cfg.MODEL.DEVICE.startswith("cuda"):
        return AMPTrainer(model, data_loader, optimizer)
    logger.info("SOLVER.AMP.ENABLED on CPU: bfloat16 autocast")
    return CPUAutocastTrainer(model, data_loader, optimizer)


# ---------------------------------------------------------------------------------------------
class Trainer(DefaultTrainer):
    """``DefaultTrainer`` whose ``__init__`` (in that constructor's order, without calling it: it
    would build its own DDP wrapper, step loop and ``DetectionCheckpointer``) builds the project's
    pieces once. The step loop is ``self.step_loop``; ``run_step``, ``state_dict``, ``train`` and
    the ``model`` / ``data_loader`` / ``optimizer`` properties use it on ``TrainerBase``'s."""

    def __init__(self, cfg):
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()  # as DefaultTrainer: setup_logger is not called for detectron2
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        self.cfg = cfg
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = create_ddp_model(model, broadcast_buffers=False)
        self.step_loop = build_step_trainer(cfg, model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = self.build_checkpointer(cfg, model, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.last_eval_results = None  # the newest evaluation's results (EvalHook)
        self.step_failed = False  # a step raised: no evaluation, no results
        self.register_hooks(self.build_hooks())

    model = property(lambda self: self.step_loop.model)
    data_loader = property(lambda self: self.step_loop.data_loader)
    optimizer = property(lambda self: self.step_loop.optimizer)

    # ---- the pieces ---------------------------------------------------------------------------
    @classmethod
    def build_model(cls, cfg):
        model = super().build_model(cfg)
        if cfg.MODEL.DEVICE == "cpu":
            # SyncBN (the W48 configs) cannot train on CPU in a multi-process (gloo) run
            model = convert_sync_batchnorm_to_bn(model)
        return model

    @classmethod
    def build_train_loader(cls, cfg):
        return build_resumable_train_loader(cfg, SemanticSegmentationMapper(cfg, is_train=True))

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        mapper = SemanticSegmentationMapper(cfg, is_train=False, dataset_name=dataset_name)
        return build_detection_test_loader(cfg, dataset_name, mapper=mapper)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        return build_poly_lr_scheduler(cfg, optimizer)

    @classmethod
    def build_checkpointer(cls, cfg, model, **kwargs) -> DetectionCheckpointer:
        """The one checkpointer of ``--resume``, ``MODEL.WEIGHTS`` and the periodic saves (and of
        ``--eval-only``): safe loading, strict unless ``MODEL.WEIGHTS_ALLOW_PARTIAL``, atomic."""
        allow_partial, trusted = cfg.MODEL.WEIGHTS_ALLOW_PARTIAL, cfg.MODEL.WEIGHTS_TRUSTED
        return StrictCheckpointer(
            model, cfg.OUTPUT_DIR, allow_partial=allow_partial, trusted=trusted, **kwargs
        )

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        evaluator_type = MetadataCatalog.get(dataset_name).evaluator_type
        # the project's metrics on detectron2's confusion matrix: one mIoU definition on every
        # detectron2 install (evaluation/metrics.py)
        sem_seg = ProjectSemSegEvaluator(dataset_name, distributed=True, output_dir=output_folder)
        if evaluator_type == "cityscapes_sem_seg":
            # the official Cityscapes script (on labelIds) beside the confusion matrix
            return DatasetEvaluators([sem_seg, CityscapesOfficialSemSegEvaluator(dataset_name)])
        if evaluator_type == "sem_seg":
            return sem_seg
        raise ValueError(
            f"dataset {dataset_name} has evaluator_type {evaluator_type!r}; SeeThroughNet "
            "evaluates 'sem_seg' and 'cityscapes_sem_seg' datasets"
        )

    def build_hooks(self):
        """DefaultTrainer's hooks, in its order, with :meth:`evaluate` as the evaluation."""
        cfg = self.cfg
        ret = [hooks.IterationTimer(), hooks.LRScheduler()]
        if cfg.TEST.PRECISE_BN.ENABLED and get_bn_modules(self.model):
            bn_cfg = cfg.clone()
            bn_cfg.defrost()
            bn_cfg.DATALOADER.NUM_WORKERS = 0  # as DefaultTrainer: less memory and time
            loader = self.build_train_loader(bn_cfg)
            ret.append(
                hooks.PreciseBN(
                    cfg.TEST.EVAL_PERIOD, self.model, loader, cfg.TEST.PRECISE_BN.NUM_ITER
                )
            )
        if comm.is_main_process():
            ret.append(hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD))
        ret.append(hooks.EvalHook(cfg.TEST.EVAL_PERIOD, self.evaluate))
        if comm.is_main_process():
            ret.append(hooks.PeriodicWriter(self.build_writers(), period=20))
        return ret

    # ---- running ------------------------------------------------------------------------------
    def resume_or_load(self, resume=True):
        if not (resume and self.checkpointer.has_checkpoint()):
            check_pretrained_weights(self.cfg)
        super().resume_or_load(resume=resume)
        # The poly schedule's horizon is part of its saved state: a run resumed with a longer
        # SOLVER.MAX_ITER would otherwise evaluate (1 - iter / old_max) ** power past 1.
        sched = self.scheduler
        if getattr(sched, "max_iters", self.max_iter) != self.max_iter:
            logger.warning(
                f"resumed LR schedule had max_iters={sched.max_iters}; using "
                f"SOLVER.MAX_ITER={self.max_iter}"
            )
            sched.max_iters = self.max_iter

    def train(self):
        """Validate the test datasets first (rather than find a bad file after hours of
        training), run the loop, and return the last evaluation's results (None without one)."""
        for name in self.cfg.DATASETS.TEST:
            DatasetCatalog.get(name)
        TrainerBase.train(self, self.start_iter, self.max_iter)
        if len(self.cfg.TEST.EXPECTED_RESULTS) and comm.is_main_process():
            verify_results(self.cfg, self.last_eval_results)
        return self.last_eval_results

    def run_step(self):
        """One step of the step loop; a failed step stops evaluation, and a non-finite loss's
        error names the batch's image files."""
        self.step_loop.iter = self.iter
        try:
            self.step_loop.run_step()
        except Exception as e:
            self.step_failed = True
            files = [f for f in getattr(self.data_loader, "last_files", []) if f]
            if isinstance(e, FloatingPointError) and files:
                raise FloatingPointError(f"{e} The batch held: {', '.join(files)}") from e
            raise

    def evaluate(self):
        """The EvalHook's function: :meth:`test`, leaving the generators as they were (exact
        resume); nothing after a failed step (a non-finite loss must not produce results)."""
        if self.step_failed:
            logger.error(
                "training stopped by an error: no evaluation of the model, no results written"
            )
            return None
        with preserved_rng():
            self.last_eval_results = self.test(self.cfg, self.model)
        return self.last_eval_results

    # ---- exact resume -------------------------------------------------------------------------
    def state_dict(self):
        """``TrainerBase``'s state (iteration; the hooks': the LR schedule) and what exact resume
        needs beyond it:

        * ``_trainer``: the step loop's own ``state_dict`` (detectron2's: the optimizer, and the
          grad scaler under ``AMPTrainer``), under the key upstream main's ``DefaultTrainer``
          uses; detectron2 v0.6's ``DefaultTrainer`` does not save it;
        * ``rng``: the global generators (:func:`~seethroughnet.resumable.get_rng_state`);
        * ``data``: the train stream's seed and position (:class:`ResumableTrainLoader`).
        """
        state = TrainerBase.state_dict(self)
        state["_trainer"] = self.step_loop.state_dict()
        state["rng"] = get_rng_state()
        if isinstance(self.data_loader, ResumableTrainLoader):
            state["data"] = self.data_loader.state_dict()
        return state

    def load_state_dict(self, state):
        TrainerBase.load_state_dict(self, state)
        if "_trainer" in state:
            self.step_loop.load_state_dict(state["_trainer"])
        if "rng" in state:
            if comm.get_world_size() == 1:
                set_rng_state(state["rng"])
            else:
                # only rank 0's generators are saved: every rank is re-seeded from (iteration, rank)
                seed = sample_seed(int(state["iteration"]), comm.get_rank(), 0)
                torch.manual_seed(seed)
                np.random.seed(seed)
                random.seed(seed)
        if "data" in state and isinstance(self.data_loader, ResumableTrainLoader):
            self.data_loader.load_state_dict(state["data"])
        missing = [k for k in ("_trainer", "rng", "data") if k not in state]
        if missing:
            logger.warning(
                f"the checkpoint holds no {', '.join(missing)} state (saved by an older version): "
                "training continues, but not exactly as an uninterrupted run would"
            )
