#!/usr/bin/env python
r"""The main job on the embedded dataset: train, evaluate, export, report.

    python tools/run_demo.py --output output/demo --config-file \
        projects/SeeThroughNet/configs/Cityscapes-Synthetic/seethroughnet_W18small_demo.yaml

1. trains the config with ``projects/SeeThroughNet/train_net.py`` (resuming from the last
   checkpoint in ``--output`` if there is one, so a re-run finishes or skips the training);
2. evaluates ``model_final.pth`` on the config's test dataset with the project's evaluator
   (detectron2's ``SemSegEvaluator`` accumulation, ``seethroughnet.evaluation.metrics``'
   definitions: the mIoU is cityscapesscripts' and MMSegmentation's, on every detectron2 install)
   and cityscapesscripts' evaluation;
3. exports a Cityscapes benchmark submission for the test split (labelId PNGs + zip), and the
   val predictions, which cityscapesscripts' ``evalPixelLevelSemanticLabeling`` scores again
   from the files as the benchmark server would, as a check of the export;
4. prints the per-class IoU table and writes it with the summary to ``OUTPUT/demo_results.json``
   and ``OUTPUT/demo_results.md``.

The numbers are reproducible: the config fixes ``SEED`` and this script runs training and
evaluation on ``--threads`` CPU threads (default 2; floating-point sums depend on the thread count),
so the same command on the same kind of machine prints the same mIoU.
"""

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config-file", required=True)
    ap.add_argument("--output", default="output/demo")
    ap.add_argument("--test-split-dataset", default="cityscapes_fine_sem_seg_test")
    ap.add_argument(
        "--threads",
        type=int,
        default=2,
        help="CPU threads for training and evaluation (the README's numbers: 2)",
    )
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides for training")
    args = ap.parse_args(argv)
    out = os.path.abspath(args.output)
    os.makedirs(out, exist_ok=True)
    t0 = time.time()

    # 1. train (detectron2's own command line; --resume makes a re-run continue or skip)
    cmd = [
        sys.executable,
        os.path.join(REPO, "projects/SeeThroughNet/train_net.py"),
        "--config-file",
        args.config_file,
        "--resume",
        "OUTPUT_DIR",
        out,
        "TEST.EVAL_PERIOD",
        "0",
        *args.opts,
    ]
    print("+", " ".join(cmd), flush=True)
    threads = {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    subprocess.run(cmd, check=True, env={**os.environ, **threads})
    t_train = time.time() - t0

    import torch

    torch.set_num_threads(args.threads)
    from detectron2.data import MetadataCatalog
    from tabulate import tabulate

    from seethroughnet.engine import Trainer
    from seethroughnet.evaluation import MIOU_DEFINITION
    from seethroughnet.experiments.export import evaluate_exported_predictions, export_predictions
    from seethroughnet.experiments.models import load_model
    from seethroughnet.utils.atomic import write_text_atomic

    weights = os.path.join(out, "model_final.pth")
    torch.manual_seed(0)
    cfg, model = load_model(
        args.config_file, weights, list(args.opts) + ["OUTPUT_DIR", out], freeze=True
    )

    # 2. evaluate
    val_name = cfg.DATASETS.TEST[0]
    results = Trainer.test(cfg, model)
    sem = results["sem_seg"] if "sem_seg" in results else results[val_name]["sem_seg"]

    # 3. export the test split for the benchmark, and val to check the export end to end
    export_predictions(
        model,
        Trainer.build_test_loader(cfg, args.test_split_dataset),
        os.path.join(out, "submission"),
        overwrite=True,
    )
    export_predictions(
        model,
        Trainer.build_test_loader(cfg, val_name),
        os.path.join(out, "val_predictions"),
        overwrite=True,
        make_zip=False,
    )
    gt_dir = MetadataCatalog.get(val_name).gt_dir
    cs_miou, cs_classes = evaluate_exported_predictions(
        os.path.join(out, "val_predictions"), gt_dir
    )

    # 4. report
    classes = MetadataCatalog.get(val_name).stuff_classes
    rows = [
        [c, sem.get(f"IoU-{c}", float("nan")), 100 * cs_classes.get(c, float("nan"))]
        for c in classes
    ]
    table = tabulate(
        rows,
        headers=["class", "IoU (sem_seg evaluator)", "IoU (exported, cityscapesscripts)"],
        floatfmt=".2f",
        tablefmt="github",
    )
    summary = {
        "config": args.config_file,
        "weights": weights,
        "mIoU": sem["mIoU"],
        "mIoU_definition": MIOU_DEFINITION,
        "mIoU_exported_cityscapesscripts": 100 * cs_miou,
        "pixel_accuracy": sem["pACC"],
        "per_class_IoU": {c: sem.get(f"IoU-{c}") for c in classes},
        "submission_zip": os.path.join(out, "submission.zip"),
        "seconds_total": round(time.time() - t0, 1),
        "seconds_training": round(t_train, 1),
    }
    write_text_atomic(os.path.join(out, "demo_results.json"), json.dumps(summary, indent=2) + "\n")
    write_text_atomic(os.path.join(out, "demo_results.md"), table + "\n")
    print("\nPer-class IoU on", val_name)
    print(table)
    print(
        f"\nmIoU {sem['mIoU']:.2f} (sem_seg evaluator: {MIOU_DEFINITION}) | {100 * cs_miou:.2f} "
        "(cityscapesscripts on the exported PNGs)"
    )
    print(f"submission: {summary['submission_zip']}")
    print(f"total {summary['seconds_total']} s, of which training {summary['seconds_training']} s")


if __name__ == "__main__":
    main()
