#!/usr/bin/env python3
"""Prepare Pascal Context (59 classes) for ``pascal_context59_sem_seg_{train,val}``.

    python datasets/prepare_pascal_context.py   # under $DETECTRON2_DATASETS, else datasets/
    python datasets/prepare_pascal_context.py --root /data

In ``VOCdevkit/VOC2010/``: writes ``SegmentationClassContext59/`` from the 60-label maps of
``SegmentationClassContext/`` (0 = background -> 255, ``c`` -> ``c - 1``), then
``cpp_pairs_context59_{train,val}.txt`` from ``ImageSets/SegmentationContext/{train,val}.txt``.
See datasets/README.md.
"""

from __future__ import annotations

import os
import sys
from typing import Dict, Optional

from _prepare_common import dataset_root, pairs_from_split_list, prepare_main, reduce_zero_label

CONTEXT_FOLDER = "VOCdevkit/VOC2010"


def prepare_pascal_context(root: Optional[str] = None, reduce: bool = True) -> Dict[str, str]:
    """Reduce the labels (unless ``reduce=False``) and write the pairs files; returns
    ``{pairs file: split list}`` for those written."""
    droot = os.path.join(dataset_root(root), CONTEXT_FOLDER)
    if reduce:
        reduce_zero_label(
            os.path.join(droot, "SegmentationClassContext"),
            os.path.join(droot, "SegmentationClassContext59"),
        )
    written = {}
    for split in ("train", "val"):
        src = f"ImageSets/SegmentationContext/{split}.txt"
        dst = pairs_from_split_list(
            droot,
            src,
            f"cpp_pairs_context59_{split}.txt",
            "JPEGImages",
            ".jpg",
            "SegmentationClassContext59",
        )
        if dst is not None:
            written[dst] = os.path.join(droot, src)
    return written


def main(argv=None) -> int:
    return prepare_main(
        argv,
        __doc__.split("\n\n")[0],
        prepare_pascal_context,
        lambda root: "no split list under "
        f"{os.path.join(root, CONTEXT_FOLDER)}/ImageSets/SegmentationContext/",
        skip_reduce_help="only write the pairs files (SegmentationClassContext59/ already made)",
    )


if __name__ == "__main__":
    sys.exit(main())
