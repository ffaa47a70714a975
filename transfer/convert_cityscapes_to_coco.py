#!/usr/bin/env python
"""Convert Cityscapes gtFine instances to COCO JSON (one file per split).

    python -m transfer.convert_cityscapes_to_coco --root datasets/cityscapes --splits train val

writes ``<root>/annotations/instancesonly_gtFine_{train,val}.json`` (or ``--out-dir``).
See :mod:`transfer.cityscapes_to_coco` for the format and the decisions.
"""

import argparse
import json
import logging
import os
import sys


def default_root() -> str:
    return os.path.join(os.environ.get("DETECTRON2_DATASETS", "datasets"), "cityscapes")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--root",
        default=default_root(),
        help="Cityscapes root (default: $DETECTRON2_DATASETS/cityscapes)",
    )
    p.add_argument("--splits", nargs="+", default=["train", "val"])
    p.add_argument("--out-dir", default=None, help="output folder (default: <root>/annotations)")
    p.add_argument(
        "--source",
        choices=["instanceIds", "polygons"],
        default="instanceIds",
        help="read *_gtFine_instanceIds.png (default) or rasterise *_gtFine_polygons.json",
    )
    p.add_argument(
        "--segmentation",
        choices=["rle", "polygon"],
        default="rle",
        help="rle: lossless (train with INPUT.MASK_FORMAT bitmask); polygon: cv2 contours as "
        "detectron2",
    )
    p.add_argument(
        "--crowd",
        choices=["keep", "drop"],
        default="keep",
        help="group regions (cargroup, ...): keep as iscrowd=1 RLE (default) or drop",
    )
    p.add_argument(
        "--min-extent",
        type=int,
        default=2,
        help="drop instances whose box is narrower/shorter than this many pixels (2 = detectron2's "
        "rule)",
    )
    p.add_argument(
        "--skip-invalid-polygons",
        action="store_true",
        help="with --source polygons: skip (and log) unknown labels / degenerate polygons instead "
        "of failing",
    )
    p.add_argument(
        "--workers", type=int, default=0, help="worker processes (0: convert in this process)"
    )
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from transfer.cityscapes_to_coco import CityscapesConversionError, convert_cityscapes

    try:
        out = convert_cityscapes(
            args.root,
            args.splits,
            args.out_dir,
            source=args.source,
            segmentation=args.segmentation,
            crowd=args.crowd,
            min_extent=args.min_extent,
            on_invalid="skip" if args.skip_invalid_polygons else "error",
            workers=args.workers,
            progress=not args.no_progress,
        )
    except CityscapesConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for split, r in out.items():
        st = r["stats"]
        inst = {k: v for k, v in st["instances"].items() if v}
        print(
            f"{split}: {st['images']} images, {sum(st['instances'].values())} instances "
            f"{json.dumps(inst)}, {sum(st['crowd'].values())} crowd regions -> {r['path']}"
        )
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):  # run as a script: make `transfer` importable from the repo root
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
