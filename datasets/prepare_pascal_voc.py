#!/usr/bin/env python3
"""Prepare Pascal VOC 2012 (+SBD aug) for ``voc2012_sem_seg_{train,val,train_aug}``.

    python datasets/prepare_pascal_voc.py   # under $DETECTRON2_DATASETS, else datasets/
    python datasets/prepare_pascal_voc.py --root /data

Writes ``VOCdevkit/VOC2012/cpp_pairs_{train,val,train_aug}.txt`` from the split lists in
``ImageSets/Segmentation/`` (train and val label ``SegmentationClass/``, train_aug
``SegmentationClassAug/``). Lists that are absent are skipped. See datasets/README.md.
"""

from __future__ import annotations

import os
import sys
from typing import Dict, Optional

from _prepare_common import dataset_root, pairs_from_split_list, prepare_main

VOC_FOLDER = "VOCdevkit/VOC2012"
SPLIT_LABELS = {
    "train": "SegmentationClass",
    "val": "SegmentationClass",
    "train_aug": "SegmentationClassAug",
}


def prepare_pascal_voc(root: Optional[str] = None) -> Dict[str, str]:
    """Write the VOC pairs files; returns ``{pairs file: split list}`` for those written."""
    droot = os.path.join(dataset_root(root), VOC_FOLDER)
    written = {}
    for split, label_dir in SPLIT_LABELS.items():
        src = f"ImageSets/Segmentation/{split}.txt"
        dst = pairs_from_split_list(
            droot, src, f"cpp_pairs_{split}.txt", "JPEGImages", ".jpg", label_dir
        )
        if dst is not None:
            written[dst] = os.path.join(droot, src)
    return written


def main(argv=None) -> int:
    return prepare_main(
        argv,
        __doc__.split("\n\n")[0],
        prepare_pascal_voc,
        lambda root: "no split list under "
        f"{os.path.join(root, VOC_FOLDER)}/ImageSets/Segmentation/: "
        "unpack VOC 2012 (and SBD aug) first",
    )


if __name__ == "__main__":
    sys.exit(main())
