#!/usr/bin/env python3
"""Prepare NYU-Depth-v2 (40 classes) for ``nyuv2_40_sem_seg_{train,test}``.

    python datasets/prepare_nyuv2.py   # under $DETECTRON2_DATASETS, else datasets/
    python datasets/prepare_nyuv2.py --root /data

In ``nyuv2/``: writes ``label40_reduced/`` from ``label40/`` (0 = unlabelled -> 255, ``c`` ->
``c - 1``), then ``cpp_pairs_{train,test}.txt`` listing every ``image/<split>/*.png`` with its
reduced label. See datasets/README.md.
"""

from __future__ import annotations

import os
import sys
from typing import Dict, Optional

from _prepare_common import dataset_root, prepare_main, reduce_zero_label, write_pairs_file

NYUV2_FOLDER = "nyuv2"


def prepare_nyuv2(root: Optional[str] = None, reduce: bool = True) -> Dict[str, str]:
    """Reduce the labels (unless ``reduce=False``) and write the pairs files; returns
    ``{pairs file: image folder}`` for those written."""
    droot = os.path.join(dataset_root(root), NYUV2_FOLDER)
    if reduce:
        reduce_zero_label(os.path.join(droot, "label40"), os.path.join(droot, "label40_reduced"))
    written = {}
    for split in ("train", "test"):
        img_root = os.path.join(droot, "image", split)
        if not os.path.isdir(img_root):
            continue
        ids = sorted(os.path.splitext(f)[0] for f in os.listdir(img_root) if f.endswith(".png"))
        dst = os.path.join(droot, f"cpp_pairs_{split}.txt")
        write_pairs_file(
            dst, [f"image/{split}/{i}.png label40_reduced/{split}/{i}.png" for i in ids]
        )
        written[dst] = img_root
    return written


def main(argv=None) -> int:
    return prepare_main(
        argv,
        __doc__.split("\n\n")[0],
        prepare_nyuv2,
        lambda root: "no image/train or image/test folder under "
        f"{os.path.join(root, NYUV2_FOLDER)}",
        skip_reduce_help="only write the pairs files (label40_reduced/ already made)",
    )


if __name__ == "__main__":
    sys.exit(main())
