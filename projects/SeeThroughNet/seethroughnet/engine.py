"""The detectron2 trainer for SeeThroughNet: data loaders with the project's mapper,
evaluators chosen by the dataset's ``evaluator_type``, the poly LR schedule and the strict
checkpointer. ``projects/SeeThroughNet/train_net.py`` is a thin command line around it."""

import logging
import os

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import MetadataCatalog, build_detection_test_loader
from detectron2.engine import default_setup, hooks
from detectron2.evaluation import DatasetEvaluators

from . import modeling  # noqa: F401  (registers the backbone and meta-architecture)
from .checkpoint import StrictCheckpointer
from .config import build_config
from .data.dataset_mappers import SemanticSegmentationMapper
from .data.datasets import register_all
from .evaluation import CityscapesOfficialSemSegEvaluator, ProjectSemSegEvaluator
from .lr_schedule import build_lr_scheduler as build_poly_lr_scheduler
from .resumable import ResumableTrainerMixin, build_resumable_train_loader
from .training import PortableDefaultTrainer
from .utils.atomic import check_writable_dir
from .utils.norm import convert_sync_batchnorm_to_bn

__all__ = [
    "Trainer",
    "setup",
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


class Trainer(ResumableTrainerMixin, PortableDefaultTrainer):
    """The project's trainer with exact resume (resumable.py): optimizer, scaler, generators and
    the data stream's position are checkpointed, atomically (checkpoint.py)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        # Strict loading (see checkpoint.py); the periodic checkpointer hook saves through it too.
        strict = self.build_checkpointer(cfg, self._trainer.model, trainer=self)
        for h in self._hooks:
            if isinstance(h, hooks.PeriodicCheckpointer):
                h.checkpointer = strict
        self.checkpointer = strict

    def resume_or_load(self, resume=True):
        if not (resume and self.checkpointer.has_checkpoint()):
            check_pretrained_weights(self.cfg)
        super().resume_or_load(resume=resume)
        # The poly schedule's horizon is part of its saved state: a run resumed with a longer
        # SOLVER.MAX_ITER would otherwise evaluate (1 - iter / old_max) ** power past 1.
        sched = self.scheduler
        if getattr(sched, "max_iters", self.max_iter) != self.max_iter:
            logging.getLogger(__name__).warning(
                f"resumed LR schedule had max_iters={sched.max_iters}; using "
                f"SOLVER.MAX_ITER={self.max_iter}"
            )
            sched.max_iters = self.max_iter

    @classmethod
    def build_model(cls, cfg):
        model = super().build_model(cfg)
        if cfg.MODEL.DEVICE == "cpu":
            # SyncBN (the W48 configs) cannot train on CPU in a multi-process (gloo) run
            model = convert_sync_batchnorm_to_bn(model)
        return model

    @classmethod
    def build_checkpointer(cls, cfg, model, trainer=None) -> DetectionCheckpointer:
        import weakref

        kwargs = {"trainer": weakref.proxy(trainer)} if trainer is not None else {}
        return StrictCheckpointer(
            model,
            cfg.OUTPUT_DIR,
            allow_partial=cfg.MODEL.WEIGHTS_ALLOW_PARTIAL,
            trusted=cfg.MODEL.WEIGHTS_TRUSTED,
            **kwargs,
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
