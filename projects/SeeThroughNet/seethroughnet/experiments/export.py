"""Cityscapes benchmark export (labelId PNGs + zip) of a model's predictions, and
cityscapesscripts' evaluation of exported files (used by ``tools/export_cityscapes_submission.py``
and ``tools/run_demo.py``).

Each PNG is written through :func:`seethroughnet.utils.atomic.atomic_path`; the zip likewise. A
folder that already holds PNGs (or an existing ``OUTPUT.zip``) is refused unless ``overwrite``,
which removes the old zip and then the old results before the first new PNG is written, so an
interrupted export never leaves an earlier model's results under this name. It removes only what
an export writes (:func:`export_written_files`): ``OUTPUT/<city>/<city>_*_pred_labelIds.png`` and
the temporary files of such a write that was killed; every other file in the folder is kept.
"""

import argparse
import glob
import os
import sys
import zipfile

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from seethroughnet.utils.atomic import atomic_path, check_writable_dir

__all__ = [
    "trainid_to_labelid_lut",
    "export_written_files",
    "export_predictions",
    "evaluate_exported_predictions",
    "main",
]

#: The command line of ``tools/export_cityscapes_submission.py`` (:func:`main`).
USAGE = """Export a SeeThroughNet model's predictions for the Cityscapes benchmark server.

For every image of a split it writes one PNG of Cityscapes *labelIds* (the model predicts
trainIds; they are mapped through cityscapesscripts' label table), named
``<city>_<seq>_<frame>*.png`` as the server and ``evalPixelLevelSemanticLabeling`` find them,
into ``OUTPUT/<city>/``, and packs them into ``OUTPUT.zip``.

    python tools/export_cityscapes_submission.py --config-file CFG --weights MODEL.pth \\
        --dataset cityscapes_fine_sem_seg_test --output output/submission [--overwrite] \\
        [--allow-unsafe-config] [--trust-weights-file] [KEY VALUE ...]
"""


def trainid_to_labelid_lut():
    """A 256-entry lookup table from Cityscapes trainIds to labelIds (255 -> 0, 'unlabeled')."""
    from cityscapesscripts.helpers.labels import labels

    lut = np.zeros(256, dtype=np.uint8)
    for label in labels:
        if 0 <= label.trainId < 255 and not label.ignoreInEval:
            lut[label.trainId] = label.id
    return lut


def _write_png_atomic(array, path):
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def _prediction_name(file_name):
    base = os.path.basename(file_name)
    suffix = "_leftImg8bit.png"
    stem = base[: -len(suffix)] if base.endswith(suffix) else os.path.splitext(base)[0]
    return stem + "_pred_labelIds.png", stem.split("_")[0]


_RESULT_SUFFIX = "_pred_labelIds.png"


def _is_export_file(city, name):
    """Whether ``OUTPUT/<city>/<name>`` is named as this export names its results
    (:func:`_prediction_name`), or as :func:`atomic_path`'s temporary file of one."""
    if name.startswith(".") and ".part" in name:  # ".<result name>.<random>.part.png"
        name = name[1:].split(".png.", 1)[0] + ".png"
    return name.endswith(_RESULT_SUFFIX) and name.split("_")[0] == city


def export_written_files(output_dir):
    """The files in ``output_dir`` that an export wrote (or began to write and was killed):
    ``<city>/<city>_..._pred_labelIds.png`` one folder down, and their temporary files."""
    found = []
    if not os.path.isdir(output_dir):
        return found
    for city in sorted(os.listdir(output_dir)):
        folder = os.path.join(output_dir, city)
        if not os.path.isdir(folder) or os.path.islink(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path) and _is_export_file(city, name):
                found.append(path)
    return found


def export_predictions(
    model, data_loader, output_dir, *, overwrite=False, make_zip=True, progress=True
):
    """Run ``model`` over ``data_loader`` and write Cityscapes labelId PNGs; returns the paths."""
    zip_path = output_dir.rstrip("/") + ".zip"
    existing = glob.glob(os.path.join(output_dir, "**", "*.png"), recursive=True)
    old_zip = make_zip and os.path.exists(zip_path)
    if existing or old_zip:
        if not overwrite:
            if existing:
                what = (
                    f"{output_dir} already holds {len(existing)} PNG file(s) (e.g. {existing[0]})"
                )
            else:
                what = f"{zip_path} already exists"
            raise FileExistsError(
                f"{what}; choose another --output, or pass --overwrite to replace an earlier "
                "export's results (files the export did not write are kept)"
            )
        # the old zip goes first: an export killed part-way must not leave an earlier model's
        # complete zip under the name of this one
        if old_zip:
            os.remove(zip_path)
    # what an earlier export wrote (refused above unless overwrite) or began to write when it was
    # killed (temporary files, which the PNG glob does not see); never a file the user put there
    for p in export_written_files(output_dir):
        os.remove(p)
    check_writable_dir(output_dir, "the output folder", "choose a writable --output")
    lut = trainid_to_labelid_lut()
    written = []
    model.eval()
    with torch.no_grad():
        for batch in tqdm(data_loader, desc="export", disable=not progress):
            outputs = model(batch)
            for inp, out in zip(batch, outputs):
                train_ids = out["sem_seg"].argmax(dim=0).to("cpu", torch.uint8).numpy()
                name, city = _prediction_name(inp["file_name"])
                os.makedirs(os.path.join(output_dir, city), exist_ok=True)
                path = os.path.join(output_dir, city, name)
                _write_png_atomic(lut[train_ids], path)
                written.append(path)
    if make_zip:
        with atomic_path(zip_path) as tmp:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                for p in written:
                    zf.write(p, os.path.relpath(p, output_dir))
    return written


def evaluate_exported_predictions(pred_dir, gt_dir):
    """cityscapesscripts' pixel-level evaluation of exported labelId PNGs against ``gt_dir``
    (``gtFine/<split>``); returns (mIoU in [0, 1], {class: IoU})."""
    import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as cs_eval

    cs_eval.args.predictionPath = os.path.abspath(pred_dir)
    cs_eval.args.predictionWalk = None
    cs_eval.args.JSONOutput = False
    cs_eval.args.colorized = False
    cs_eval.args.quiet = True
    gts = sorted(glob.glob(os.path.join(gt_dir, "*", "*_gtFine_labelIds.png")))
    if not gts:
        raise FileNotFoundError(f"no *_gtFine_labelIds.png under {gt_dir}")
    preds = [cs_eval.getPrediction(cs_eval.args, gt) for gt in gts]
    results = cs_eval.evaluateImgLists(preds, gts, cs_eval.args)
    return results["averageScoreClasses"], results["classScores"]


def main(argv=None):
    from seethroughnet.utils.safe_load import add_safety_arguments

    ap = argparse.ArgumentParser(
        description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config-file", required=True)
    ap.add_argument("--weights", required=True, help="a checkpoint written by train_net.py")
    ap.add_argument("--dataset", default="cityscapes_fine_sem_seg_test")
    ap.add_argument(
        "--output", required=True, help="folder for the PNGs; the zip goes to OUTPUT.zip"
    )
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--no-zip", action="store_true")
    add_safety_arguments(ap)
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = ap.parse_args(argv)

    from seethroughnet.checkpoint import UnreadableCheckpointError
    from seethroughnet.engine import Trainer
    from seethroughnet.experiments.models import load_model
    from seethroughnet.utils.safe_load import (
        ConfigFileError,
        UnsafeFileError,
        apply_safety_arguments,
    )

    if not os.path.isfile(args.weights):
        sys.exit(f"error: --weights {args.weights} does not exist")
    try:
        cfg, model = load_model(
            args.config_file,
            args.weights,
            apply_safety_arguments(args, args.opts),
            allow_unsafe_config=args.allow_unsafe_config,
            freeze=True,
        )
    except (ConfigFileError, UnsafeFileError, UnreadableCheckpointError) as e:
        sys.exit(f"error: {e}")
    loader = Trainer.build_test_loader(cfg, args.dataset)
    try:
        written = export_predictions(
            model, loader, args.output, overwrite=args.overwrite, make_zip=not args.no_zip
        )
    except (FileExistsError, PermissionError) as e:
        sys.exit(f"error: {e}")
    zip_note = "" if args.no_zip else f" and {args.output.rstrip('/')}.zip"
    print(f"wrote {len(written)} predictions to {args.output}{zip_note}")
