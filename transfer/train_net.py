#!/usr/bin/env python
"""Train / evaluate a Table 5 detector (Mask R-CNN, Faster R-CNN or FCOS) with the HRNetV2
encoder on the converted Cityscapes instances, in detectron2's ``tools/train_net.py`` style.

    python -m transfer.train_net --config-file transfer/configs/mask_rcnn_hrnetv2_w48.yaml \
        --num-gpus 8 MODEL.TRANSFER.ENCODER_INIT seethroughnet \
        MODEL.TRANSFER.ENCODER_WEIGHTS output/seethroughnet_cpp/model_final.pth \
        OUTPUT_DIR output/table5/mask_rcnn/seethroughnet_cpp_finetune

Evaluation is detectron2's ``COCOEvaluator(use_fast_impl=False)`` (bbox, and segm for Mask
R-CNN). At the end ``<OUTPUT_DIR>/transfer_results.json`` holds the final metrics and the
encoder initialisation report (``<OUTPUT_DIR>/encoder_init.json``).

Beyond ``DefaultTrainer``: ``SOLVER.CLIP_GRADIENTS.CLIP_TYPE full_model`` (one global gradient
norm, mmdetection's ``grad_clip``); ``SyncBatchNorm`` -> ``BatchNorm2d`` when ``MODEL.DEVICE``
is ``cpu`` (multi-process CPU runs); ``MODEL.TRANSFER.ENCODER_BN_RECOMPUTE_ITERS`` (encoder BN
statistics re-estimated before the first iteration); a Mask R-CNN with ``INPUT.MASK_FORMAT
polygon`` refuses a train JSON converted as RLE. ``--resume`` continues from the last
checkpoint in ``OUTPUT_DIR`` (what ``run_table5.py`` always passes). ``--eval-only`` needs
``MODEL.WEIGHTS`` (or ``--resume`` with a checkpoint) unless ``--eval-random-weights``.
"""

import logging
import math
import os
import sys

if __package__ in (None, ""):  # run as a script: make `transfer` importable from the repo root
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import detectron2.utils.comm as comm  # noqa: E402
import torch  # noqa: E402
from detectron2.engine import default_setup  # noqa: E402
from detectron2.evaluation import COCOEvaluator  # noqa: E402

from seethroughnet.cli import launch_from_args, run, train_parser  # noqa: E402
from seethroughnet.engine import Trainer as SeeThroughNetTrainer  # noqa: E402
from seethroughnet.resumable import build_resumable_train_loader  # noqa: E402
from transfer.config import build_transfer_config  # noqa: E402
from transfer.data import check_datasets, check_mask_format, register_cityscapes_coco  # noqa: E402
from transfer.modeling import freeze_unused_parameters, head_in_features  # noqa: E402

logger = logging.getLogger("transfer")

RESULTS_FILE = "transfer_results.json"
INIT_REPORT_FILE = "encoder_init.json"
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _clean(obj):
    """JSON-safe: NaN/inf -> None, numpy scalars -> float."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def tasks_of(cfg):
    return (
        ("bbox", "segm")
        if cfg.MODEL.MASK_ON and cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN"
        else ("bbox",)
    )


def prepare_model(cfg, model):
    """Freeze parameters the heads cannot reach and write the encoder init report."""
    if cfg.MODEL.TRANSFER.FREEZE_UNUSED and hasattr(model, "backbone"):
        feats = head_in_features(model)
        if feats:
            freeze_unused_parameters(model.backbone, feats)
    report = dict(getattr(model.backbone, "init_report", {}) or {})
    n = sum(p.numel() for p in model.parameters())
    t = sum(p.numel() for p in model.parameters() if p.requires_grad)
    report.update(model_parameters=n, model_trainable_parameters=t)
    if hasattr(model.backbone, "init_report"):
        model.backbone.init_report = report
    logger.info("model: %s, %d parameters, %d trainable", type(model).__name__, n, t)
    report["bn_statistics"] = _bn_statistics_note(cfg)
    _write_init_report(cfg, report)
    return model


def _bn_statistics_note(cfg):
    t = cfg.MODEL.TRANSFER
    if t.ENCODER_INIT == "random":
        return "random init: BatchNorm statistics estimated during training"
    src = {"imagenet": "ImageNet", "seethroughnet": "Cityscapes (SeeThroughNet training)"}[
        t.ENCODER_INIT
    ]
    if t.ENCODER_BN_RECOMPUTE_ITERS > 0:
        return f"re-estimated on {t.ENCODER_BN_RECOMPUTE_ITERS} training batches before training"
    if t.FREEZE_ENCODER or t.ENCODER_NORM_EVAL:
        return f"the checkpoint's ({src}), kept fixed"
    return f"the checkpoint's ({src}), updated by training"


def _write_init_report(cfg, report):
    if comm.is_main_process() and cfg.OUTPUT_DIR:
        from seethroughnet.utils.atomic import write_json_atomic

        write_json_atomic(os.path.join(cfg.OUTPUT_DIR, INIT_REPORT_FILE), _clean(report))


#: SOLVER.CLIP_GRADIENTS.CLIP_TYPE added here: one L2 (NORM_TYPE) norm over all gradients of the
#: model, clipped to CLIP_VALUE (torch.nn.utils.clip_grad_norm_), which is what mmdetection's
#: ``grad_clip=dict(max_norm=35, norm_type=2)`` does. detectron2's own "norm" type clips every
#: parameter tensor separately.
FULL_MODEL_CLIP = "full_model"


def build_optimizer(cfg, model):
    """detectron2's SGD with its parameter groups (BIAS_LR_FACTOR, WEIGHT_DECAY_BIAS,
    WEIGHT_DECAY_NORM), plus the ``full_model`` gradient clipping type."""
    from detectron2.solver import build_optimizer as d2_build_optimizer
    from detectron2.solver.build import get_default_optimizer_params

    clip = cfg.SOLVER.CLIP_GRADIENTS
    if not (clip.ENABLED and clip.CLIP_TYPE == FULL_MODEL_CLIP):
        return d2_build_optimizer(cfg, model)
    if not clip.CLIP_VALUE > 0:
        raise ValueError(
            "SOLVER.CLIP_GRADIENTS.CLIP_VALUE must be > 0 for CLIP_TYPE full_model, got "
            f"{clip.CLIP_VALUE}"
        )
    max_norm, norm_type = float(clip.CLIP_VALUE), float(clip.NORM_TYPE)

    class SGDFullModelClip(torch.optim.SGD):
        def step(self, closure=None):
            params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)
            return super().step(closure)

    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
    )
    return SGDFullModelClip(
        params,
        lr=cfg.SOLVER.BASE_LR,
        momentum=cfg.SOLVER.MOMENTUM,
        nesterov=cfg.SOLVER.NESTEROV,
        weight_decay=cfg.SOLVER.WEIGHT_DECAY,
    )


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def build_checkpointer(cfg, model, **kwargs):
    """detectron2's checkpointer reading files without running code from them (``.pth`` with
    ``weights_only=True``, ``.pkl`` of numpy arrays only) unless ``MODEL.WEIGHTS_TRUSTED``."""
    from seethroughnet.checkpoint import SafeCheckpointer

    return SafeCheckpointer(model, cfg.OUTPUT_DIR, trusted=cfg.MODEL.WEIGHTS_TRUSTED, **kwargs)


class Trainer(SeeThroughNetTrainer):
    """The project's trainer (seethroughnet/engine.py: exact, crash-safe resume, SyncBN -> BN on
    CPU) with the transfer pieces: detectron2's ``DatasetMapper`` and test loader, the transfer
    model preparation, the full-model gradient clipping, COCO evaluation, the safe
    (not strict) checkpointer and the optional encoder BN re-estimation."""

    @classmethod
    def build_model(cls, cfg):
        return prepare_model(cfg, super().build_model(cfg))

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg):
        from detectron2.data import DatasetMapper

        return build_resumable_train_loader(cfg, DatasetMapper(cfg, True))

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        from detectron2.data import build_detection_test_loader

        return build_detection_test_loader(cfg, dataset_name)

    @classmethod
    def build_checkpointer(cls, cfg, model, **kwargs):
        return build_checkpointer(cfg, model, **kwargs)

    def resume_or_load(self, resume=True):
        super().resume_or_load(resume=resume)
        iters = self.cfg.MODEL.TRANSFER.ENCODER_BN_RECOMPUTE_ITERS
        if iters > 0 and self.start_iter == 0:  # a resumed run has the statistics in its checkpoint
            self.recompute_encoder_bn(iters)

    def recompute_encoder_bn(self, iters):
        from transfer.modeling import recompute_encoder_bn_stats

        model = _unwrap(self.model)
        encoder = model.backbone.bottom_up.encoder

        def batches():
            for data in self.build_train_loader(self.cfg):
                yield model.preprocess_image(data).tensor

        n = recompute_encoder_bn_stats(encoder, batches(), iters)
        report = getattr(model.backbone, "init_report", None)
        if report is not None:
            report["bn_statistics"] = f"re-estimated on {n} training batches"
            _write_init_report(self.cfg, report)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return COCOEvaluator(
            dataset_name,
            tasks=tasks_of(cfg),
            distributed=True,
            output_dir=output_folder,
            use_fast_impl=False,
        )


def setup(args):
    from seethroughnet.utils.safe_load import apply_safety_arguments

    # safe YAML only (this file and its _BASE_ files) unless --allow-unsafe-config
    cfg = build_transfer_config(
        args.config_file,
        apply_safety_arguments(args, args.opts),
        allow_unsafe=getattr(args, "allow_unsafe_config", False),
    )
    if args.eval_only:
        # all weights come from MODEL.WEIGHTS: do not read (or require) the encoder checkpoint
        cfg.MODEL.TRANSFER.ENCODER_INIT = "random"
        cfg.MODEL.TRANSFER.ENCODER_WEIGHTS = ""
        cfg.MODEL.HRNET.CHECKPOINT = ""
    cfg.freeze()
    default_setup(cfg, args)
    register_cityscapes_coco(
        cfg.DATASETS.CITYSCAPES_ROOT or None, cfg.DATASETS.CITYSCAPES_COCO_JSON_DIR or None
    )
    check_datasets(list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST))
    if cfg.MODEL.MASK_ON and not args.eval_only:
        check_mask_format(list(cfg.DATASETS.TRAIN), cfg.INPUT.MASK_FORMAT)
    return cfg


def summarize(results):
    """``{task: {AP, AP50, AP75, APs, APm, APl}}`` from detectron2's nested results."""
    if results and all(
        isinstance(v, dict) and any(isinstance(x, dict) for x in v.values())
        for v in results.values()
    ):
        results = next(iter(results.values()))  # {dataset: {task: ...}} -> first dataset
    return {
        task: {m: r.get(m) for m in METRICS}
        for task, r in (results or {}).items()
        if isinstance(r, dict)
    }


def write_results(cfg, results, model=None, mode="train"):
    if not comm.is_main_process():
        return
    out = {
        "mode": mode,
        "metrics": _clean(summarize(results)),
        "full_results": _clean(results),
        "encoder_init": _clean(getattr(getattr(model, "backbone", None), "init_report", None)),
        "max_iter": cfg.SOLVER.MAX_ITER,
        "config": {
            "META_ARCHITECTURE": cfg.MODEL.META_ARCHITECTURE,
            "VARIANT": cfg.MODEL.HRNET.VARIANT,
            "ENCODER_INIT": cfg.MODEL.TRANSFER.ENCODER_INIT,
            "ENCODER_WEIGHTS": cfg.MODEL.TRANSFER.ENCODER_WEIGHTS,
            "FREEZE_ENCODER": cfg.MODEL.TRANSFER.FREEZE_ENCODER,
        },
    }
    path = os.path.join(cfg.OUTPUT_DIR, RESULTS_FILE)
    from seethroughnet.utils.atomic import write_json_atomic

    write_json_atomic(path, out)
    logger.info("results -> %s: %s", path, out["metrics"])


def complete_and_write_results(cfg, results, model, mode):
    """:func:`seethroughnet.cli.run`'s results hook: a training run without a last evaluation is
    evaluated once, then :func:`write_results`."""
    if results is None and mode == "train" and len(cfg.DATASETS.TEST):
        results = Trainer.test(cfg, model)
    write_results(cfg, results, model, mode=mode)
    return results


def main(args):
    return run(args, Trainer, setup, on_results=complete_and_write_results)


def cli(argv=None):
    return launch_from_args(main, train_parser().parse_args(argv))


if __name__ == "__main__":
    cli()
