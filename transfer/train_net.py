#!/usr/bin/env python
"""Train / evaluate a Table 5 detector (Mask R-CNN, Faster R-CNN or FCOS) with the HRNetV2
encoder on the converted Cityscapes instances, in detectron2's ``tools/train_net.py`` style.

    python -m transfer.train_net --config-file transfer/configs/mask_rcnn_hrnetv2_w48_fpn.yaml \
        --num-gpus 8 MODEL.TRANSFER.ENCODER_INIT seethroughnet \
        MODEL.TRANSFER.ENCODER_WEIGHTS output/seethroughnet_cpp/model_final.pth \
        OUTPUT_DIR output/table5/mask_rcnn/seethroughnet_cpp_finetune

Evaluation is detectron2's ``COCOEvaluator(use_fast_impl=False)`` (bbox, and segm for Mask
R-CNN). At the end ``<OUTPUT_DIR>/transfer_results.json`` holds the final metrics and the
encoder initialisation report (``<OUTPUT_DIR>/encoder_init.json``).
"""
import logging
import math
import os
import sys

if __package__ in (None, ""):  # run as a script: make `transfer` importable from the repo root
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import detectron2.utils.comm as comm  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.engine import default_argument_parser, default_setup, launch  # noqa: E402
from seethroughnet.training import PortableDefaultTrainer  # noqa: E402
from detectron2.evaluation import COCOEvaluator  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402

from seethroughnet.engine import check_eval_weights  # noqa: E402
from seethroughnet.resumable import ResumableTrainerMixin  # noqa: E402
from transfer.config import add_transfer_config  # noqa: E402
from transfer.data import check_datasets, register_cityscapes_coco  # noqa: E402
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
    return ("bbox", "segm") if cfg.MODEL.MASK_ON and cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN" else ("bbox",)


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
    if comm.is_main_process() and cfg.OUTPUT_DIR:
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        from transfer.cityscapes_to_coco import write_json_atomic

        write_json_atomic(_clean(report), os.path.join(cfg.OUTPUT_DIR, INIT_REPORT_FILE))
    return model


def build_checkpointer(cfg, model, **kwargs):
    """detectron2's checkpointer reading files without running code from them (``.pth`` with
    ``weights_only=True``, ``.pkl`` of numpy arrays only) unless ``MODEL.WEIGHTS_TRUSTED``."""
    from seethroughnet.checkpoint import SafeCheckpointer

    return SafeCheckpointer(model, cfg.OUTPUT_DIR, trusted=cfg.MODEL.WEIGHTS_TRUSTED, **kwargs)


class Trainer(ResumableTrainerMixin, PortableDefaultTrainer):
    """DefaultTrainer with the transfer model preparation, COCO evaluation, the safe checkpointer
    (for MODEL.WEIGHTS and --resume; the periodic checkpointer hook saves with it, atomically) and
    the project's exact, crash-safe resume (seethroughnet/resumable.py)."""

    def __init__(self, cfg):
        import weakref

        from detectron2.engine import hooks

        super().__init__(cfg)
        safe = build_checkpointer(cfg, self._trainer.model, trainer=weakref.proxy(self))
        for h in self._hooks:
            if isinstance(h, hooks.PeriodicCheckpointer):
                h.checkpointer = safe
        self.checkpointer = safe

    @classmethod
    def build_model(cls, cfg):
        model = build_model(cfg)
        return prepare_model(cfg, model)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return COCOEvaluator(dataset_name, tasks=tasks_of(cfg), distributed=True, output_dir=output_folder,
                             use_fast_impl=False)


def setup(args):
    cfg = get_cfg()
    add_transfer_config(cfg)
    from seethroughnet.utils.safe_load import apply_safety_arguments, merge_config_file

    # safe YAML only (this file and its _BASE_ files) unless --allow-unsafe-config
    merge_config_file(cfg, args.config_file, allow_unsafe=getattr(args, "allow_unsafe_config", False))
    cfg.merge_from_list(apply_safety_arguments(args, args.opts))
    if args.eval_only:
        # all weights come from MODEL.WEIGHTS: do not read (or require) the encoder checkpoint
        cfg.MODEL.TRANSFER.ENCODER_INIT = "random"
        cfg.MODEL.TRANSFER.ENCODER_WEIGHTS = ""
        cfg.MODEL.HRNET.CHECKPOINT = ""
    cfg.freeze()
    default_setup(cfg, args)
    register_cityscapes_coco(cfg.DATASETS.CITYSCAPES_ROOT or None, cfg.DATASETS.CITYSCAPES_COCO_JSON_DIR or None)
    check_datasets(list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST))
    return cfg


def summarize(results):
    """``{task: {AP, AP50, AP75, APs, APm, APl}}`` from detectron2's nested results."""
    if results and all(isinstance(v, dict) and any(isinstance(x, dict) for x in v.values()) for v in results.values()):
        results = next(iter(results.values()))  # {dataset: {task: ...}} -> first dataset
    return {task: {m: r.get(m) for m in METRICS} for task, r in (results or {}).items() if isinstance(r, dict)}


def write_results(cfg, results, model=None, mode="train"):
    if not comm.is_main_process():
        return
    out = {
        "mode": mode,
        "metrics": _clean(summarize(results)),
        "full_results": _clean(results),
        "encoder_init": _clean(getattr(getattr(model, "backbone", None), "init_report", None)),
        "max_iter": cfg.SOLVER.MAX_ITER,
        "config": {"META_ARCHITECTURE": cfg.MODEL.META_ARCHITECTURE, "VARIANT": cfg.MODEL.HRNET.VARIANT,
                   "ENCODER_INIT": cfg.MODEL.TRANSFER.ENCODER_INIT,
                   "ENCODER_WEIGHTS": cfg.MODEL.TRANSFER.ENCODER_WEIGHTS,
                   "FREEZE_ENCODER": cfg.MODEL.TRANSFER.FREEZE_ENCODER},
    }
    path = os.path.join(cfg.OUTPUT_DIR, RESULTS_FILE)
    from transfer.cityscapes_to_coco import write_json_atomic

    write_json_atomic(out, path)
    logger.info("results -> %s: %s", path, out["metrics"])


def main(args):
    cfg = setup(args)
    if args.eval_only:
        check_eval_weights(cfg, resume=args.resume)
        model = Trainer.build_model(cfg)
        build_checkpointer(cfg, model).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        res = Trainer.test(cfg, model)
        write_results(cfg, res, model, mode="eval")
        return res
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    res = trainer.train()
    if res is None:  # DefaultTrainer.train() returns results only when TEST.EXPECTED_RESULTS is set
        res = getattr(trainer, "_last_eval_results", None)
    if res is None and len(cfg.DATASETS.TEST):
        res = Trainer.test(cfg, trainer.model)
    model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    write_results(cfg, res, model, mode="train")
    return res


def cli(argv=None):
    from seethroughnet.utils.safe_load import add_safety_arguments

    args = add_safety_arguments(default_argument_parser()).parse_args(argv)
    return launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
                  dist_url=args.dist_url, args=(args,))


if __name__ == "__main__":
    cli()
