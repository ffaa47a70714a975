#!/usr/bin/env python3
r"""Generate the embedded synthetic street-scene dataset in the Cityscapes on-disk format.

    python datasets/prepare_synthetic_cityscapes.py            # -> $DETECTRON2_DATASETS/cityscapes
    python datasets/prepare_synthetic_cityscapes.py --stats    # ... and print class statistics
    python datasets/prepare_synthetic_cityscapes.py \
        --preview docs/figures/synthetic_cityscapes_preview.png

The output folder defaults to ``$DETECTRON2_DATASETS/cityscapes`` when that variable is set, else
``datasets/cityscapes`` relative to the current directory (detectron2's own default).  Re-running
with the same parameters does nothing; a folder holding anything else is refused unless
``--overwrite``.
See datasets/README.md and the package seethroughnet/data/synthetic/.
"""

import argparse
import logging
import os
import sys
import time


def _import_generator():
    try:
        from seethroughnet.data import synthetic
    except ImportError:  # not installed: use the source tree next to this script
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.join(here, os.pardir, "projects", "SeeThroughNet"))
        from seethroughnet.data import synthetic
    return synthetic


def default_output():
    return os.path.join(os.environ.get("DETECTRON2_DATASETS", "datasets"), "cityscapes")


def main(argv=None):
    sc = _import_generator()
    d = sc.DEFAULT_NUM_IMAGES
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument(
        "--output",
        default=default_output(),
        help="dataset root (gets leftImg8bit/, gtFine/ and the manifest " + sc.MANIFEST_NAME + ")",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--num-train", type=int, default=d["train"])
    ap.add_argument("--num-val", type=int, default=d["val"])
    ap.add_argument("--num-test", type=int, default=d["test"])
    ap.add_argument(
        "--test-gt",
        choices=("dummy", "full"),
        default="dummy",
        help="'dummy': test gtFine holds only void regions, like the real Cityscapes test split",
    )
    ap.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a dataset made with other parameters, or a folder without manifest "
        "(deletes its leftImg8bit/ and gtFine/ only)",
    )
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument(
        "--stats",
        action="store_true",
        help="print per-class pixel shares and instance counts measured from the label PNGs",
    )
    ap.add_argument(
        "--preview", metavar="PNG", help="also write a preview grid (images | colour labels) to PNG"
    )
    ap.add_argument("--preview-count", type=int, default=4)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    t0 = time.perf_counter()
    try:
        manifest = sc.generate_synthetic_cityscapes(
            args.output,
            seed=args.seed,
            height=args.height,
            width=args.width,
            num_images={"train": args.num_train, "val": args.num_val, "test": args.num_test},
            overwrite=args.overwrite,
            progress=not args.no_progress,
            test_gt=args.test_gt,
        )
    except (sc.SyntheticDatasetError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"dataset ready at {os.path.abspath(args.output)} ({time.perf_counter() - t0:.1f} s); "
        f"instances per split: {manifest.get('instances')}"
    )
    if args.preview:
        try:
            sc.write_preview(args.output, args.preview, n=args.preview_count)
        except (sc.SyntheticDatasetError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"preview written to {args.preview}")
    if args.stats:
        print(sc.format_statistics(sc.compute_statistics(args.output, splits=("train", "val"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
