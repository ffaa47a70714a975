#!/usr/bin/env python
"""Export a SeeThroughNet model's predictions for the Cityscapes benchmark server.

For every image of a split it writes one PNG of Cityscapes *labelIds* (the model predicts
trainIds; they are mapped through cityscapesscripts' label table), named
``<city>_<seq>_<frame>*.png`` as the server and ``evalPixelLevelSemanticLabeling`` find them,
into ``OUTPUT/<city>/``, and packs them into ``OUTPUT.zip``.

    python tools/export_cityscapes_submission.py --config-file CFG --weights MODEL.pth \
        --dataset cityscapes_fine_sem_seg_test --output output/submission [--overwrite] \
        [--allow-unsafe-config] [--trust-weights-file] [KEY VALUE ...]

A thin command line over :func:`seethroughnet.experiments.models.load_model` and
:mod:`seethroughnet.experiments.export`: each PNG is written atomically, the zip likewise; a
folder that already holds predictions (or an existing OUTPUT.zip) is refused unless
--overwrite, which removes the old zip and then the old PNGs before the first new PNG is
written, so an interrupted export never leaves an earlier model's results under this name.
"""
import argparse
import os
import sys

from seethroughnet.experiments.export import export_predictions
from seethroughnet.utils.safe_load import UnsafeFileError, add_safety_arguments, apply_safety_arguments

__all__ = ["main"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config-file", required=True)
    ap.add_argument("--weights", required=True, help="a checkpoint written by train_net.py")
    ap.add_argument("--dataset", default="cityscapes_fine_sem_seg_test")
    ap.add_argument("--output", required=True, help="folder for the PNGs; the zip goes to OUTPUT.zip")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--no-zip", action="store_true")
    add_safety_arguments(ap)
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = ap.parse_args(argv)

    from seethroughnet.checkpoint import UnreadableCheckpointError
    from seethroughnet.engine import Trainer
    from seethroughnet.experiments.models import load_model

    if not os.path.isfile(args.weights):
        sys.exit(f"error: --weights {args.weights} does not exist")
    try:
        cfg, model = load_model(args.config_file, args.weights, apply_safety_arguments(args, args.opts),
                                allow_unsafe_config=args.allow_unsafe_config, freeze=True)
    except (UnsafeFileError, UnreadableCheckpointError) as e:
        sys.exit(f"error: {e}")
    loader = Trainer.build_test_loader(cfg, args.dataset)
    try:
        written = export_predictions(model, loader, args.output, overwrite=args.overwrite, make_zip=not args.no_zip)
    except (FileExistsError, PermissionError) as e:
        sys.exit(f"error: {e}")
    print(f"wrote {len(written)} predictions to {args.output}" + ("" if args.no_zip else f" and {args.output.rstrip('/')}.zip"))


if __name__ == "__main__":
    main()
