#!/usr/bin/env python3
"""Prepare Pascal Context (59 classes) for ``pascal_context59_sem_seg_{train,val}``.

    python datasets/prepare_pascal_context.py   # under $DETECTRON2_DATASETS, else datasets/
    python datasets/prepare_pascal_context.py --root /data [--overwrite]

In ``VOCdevkit/VOC2010/`` (VOC 2010 ``VOCtrainval_03-May-2010.tar``):

1. From the official annotation release (Mottaghi et al. 2014, ``trainval.tar.gz`` of
   cs.stanford.edu/~roozbeh/pascal-context, unpacked here so that ``trainval/<id>.mat`` and
   ``labels.txt`` sit in this folder), when ``trainval/`` is present: writes the 60-label maps
   ``SegmentationClassContext/<id>.png`` (0 = background and the 400 other classes, 1..59 = the
   59 classes) and, when absent, the split lists ``ImageSets/SegmentationContext/{train,val}.txt``
   from VOC 2010's ``ImageSets/Main/{train,val}.txt`` (4,998 / 5,105 images). Files already
   converted are kept unless ``--overwrite``; split lists already there are always kept.
2. Writes ``SegmentationClassContext59/`` from the 60-label maps of ``SegmentationClassContext/``
   (0 = background -> 255, ``c`` -> ``c - 1``), unless ``--skip-reduce``.
3. Writes ``cpp_pairs_context59_{train,val}.txt`` from ``ImageSets/SegmentationContext/``.

See datasets/README.md.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Dict, List, Optional

import numpy as np
from _official_formats import (
    LayoutError,
    check_ids,
    check_same_size,
    load_mat_v5,
    mat_variable,
    read_id_list,
    require_file,
    write_id_list,
)
from _prepare_common import (
    dataset_root,
    pairs_from_split_list,
    prepare_main,
    progress,
    reduce_zero_label,
    save_png,
)

CONTEXT_FOLDER = "VOCdevkit/VOC2010"
VOC2010_HINT = "unpack VOCtrainval_03-May-2010.tar (VOC 2010) under the datasets root"
CONTEXT_HINT = (
    "unpack the Pascal Context release trainval.tar.gz (cs.stanford.edu/~roozbeh/pascal-context) "
    f"into {CONTEXT_FOLDER}/ so that trainval/<id>.mat and labels.txt sit there"
)
_LABEL_LINE = re.compile(r"^\s*(\d+)\s*:\s*(\S.*?)\s*$")


def context59_classes() -> List[str]:
    """The 59 class names in the order of the registration (``seethroughnet.data.datasets.
    pascal_context.CONTEXT59_CLASSES``, MMSegmentation's ``PascalContextDataset59``)."""
    try:
        from seethroughnet.data.datasets.pascal_context import CONTEXT59_CLASSES
    except ImportError:  # not installed: use the source tree next to this script
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.join(here, os.pardir, "projects", "SeeThroughNet"))
        from seethroughnet.data.datasets.pascal_context import CONTEXT59_CLASSES
    return list(CONTEXT59_CLASSES)


def _key(name: str) -> str:
    """A class name compared without case and spaces ("potted plant" = "pottedplant")."""
    return name.replace(" ", "").lower()


def read_context_labels(path: str) -> Dict[int, str]:
    """The ``{id: name}`` of the release's ``labels.txt`` (one ``<id>: <name>`` a line; 459
    classes, ids from 1; 0 is "unlabeled" in the ``LabelMap``s and has no line). A missing file,
    a line of another form or a repeated id is an error naming ``path``."""
    require_file(path, CONTEXT_HINT)
    labels: Dict[int, str] = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            m = _LABEL_LINE.match(line)
            if m is None or int(m.group(1)) in labels:
                raise LayoutError(
                    f"{path} line {n} is not a new '<id>: <name>' entry ({line.strip()!r}): "
                    "use the labels.txt of the Pascal Context release"
                )
            labels[int(m.group(1))] = m.group(2)
    return labels


def context59_lookup(labels: Dict[int, str], labels_path: str) -> np.ndarray:
    """The table ``t`` with ``t[full id] = 1 + index in the 59 classes`` (0 for background,
    unlabeled and the 400 other classes), matched by NAME from ``labels.txt`` (case and spaces
    ignored), so that it does not depend on the 459 ids themselves.

    With the official labels.txt (alphabetical) this gives MMSegmentation's table
    (``tools/dataset_converters/pascal_context.py``: the 59 ids 2 (aeroplane), 9 (bag), ...,
    458 (wood) sorted and numbered 1..59). The release's ``59_labels.txt`` is not read: its
    order is not MMSegmentation's and it spells three classes differently (FCN's
    ``pascalcontext_layers.py`` maps diningtable/bedcloth/clothes to table/bedclothes/cloth).
    A labels.txt without one of the 59 names is an error naming ``labels_path``."""
    by_name = {_key(name): i for i, name in labels.items()}
    names = context59_classes()
    missing = [n for n in names if _key(n) not in by_name]
    if missing:
        raise LayoutError(
            f"{labels_path} lacks the Pascal Context 59 class(es) {', '.join(missing)}: "
            "use the labels.txt of the Pascal Context release (459 classes)"
        )
    table = np.zeros(max(labels) + 1, np.uint8)
    for index, name in enumerate(names):
        table[by_name[_key(name)]] = index + 1
    return table


def context_split_lists(droot: str) -> Dict[str, str]:
    """Write ``ImageSets/SegmentationContext/{train,val}.txt`` from VOC 2010's
    ``ImageSets/Main/{train,val}.txt`` (Pascal Context's split: VOC 2010 train / val, 4,998 /
    5,105 images) where absent; lists already there (e.g. MMSegmentation's) are never replaced.
    Returns ``{list written: source}``."""
    written = {}
    for split in ("train", "val"):
        dst = os.path.join(droot, "ImageSets", "SegmentationContext", f"{split}.txt")
        if os.path.isfile(dst):
            continue
        src = os.path.join(droot, "ImageSets", "Main", f"{split}.txt")
        write_id_list(dst, sorted(set(read_id_list(src, VOC2010_HINT))), overwrite=False)
        written[dst] = src
    return written


def convert_context(droot: str, overwrite: bool = False) -> Dict[str, str]:
    """Convert the Pascal Context release under ``droot`` (``VOCdevkit/VOC2010``) to the 60-label
    PNGs ``SegmentationClassContext/<id>.png`` for every id of the train and val lists; returns
    ``{output: source}``.

    ``trainval/<id>.mat`` (MATLAB v5) holds ``LabelMap``, an ``H x W`` uint16 map of the
    labels.txt ids (0 = unlabeled), which :func:`context59_lookup` maps to 0..59. A missing
    ``.mat`` or image, a ``.mat`` without ``LabelMap``, ids beyond labels.txt or a size other
    than the image's are errors naming the file. Existing PNGs are kept unless ``overwrite``."""
    written = context_split_lists(droot)
    labels_path = os.path.join(droot, "labels.txt")
    labels = read_context_labels(labels_path)
    table = context59_lookup(labels, labels_path)
    sets = os.path.join(droot, "ImageSets", "SegmentationContext")
    ids = sorted(
        {i for s in ("train", "val") for i in read_id_list(f"{sets}/{s}.txt", VOC2010_HINT)}
    )
    valid = [0, *labels]
    out_dir = os.path.join(droot, "SegmentationClassContext")
    for i in progress(ids, "Pascal Context -> SegmentationClassContext"):
        dst = os.path.join(out_dir, f"{i}.png")
        if os.path.exists(dst) and not overwrite:
            continue
        src = os.path.join(droot, "trainval", f"{i}.mat")
        full = np.asarray(mat_variable(load_mat_v5(src, CONTEXT_HINT), src, "LabelMap"))
        if full.ndim != 2:
            raise LayoutError(f"{src}: LabelMap is {full.shape}, not an H x W map")
        check_ids(full, src, valid, f"0 = unlabeled and the ids of {labels_path}")
        image = require_file(os.path.join(droot, "JPEGImages", f"{i}.jpg"), VOC2010_HINT)
        check_same_size(full.shape, image, src)
        save_png(dst, table[full])
    written[out_dir] = os.path.join(droot, "trainval")
    return written


def prepare_pascal_context(
    root: Optional[str] = None, reduce: bool = True, overwrite: bool = False
) -> Dict[str, str]:
    """Convert the release when ``trainval/`` is present (:func:`convert_context`), reduce the
    labels (unless ``reduce=False``) and write the pairs files; returns ``{output: source}``."""
    droot = os.path.join(dataset_root(root), CONTEXT_FOLDER)
    written = {}
    if os.path.isdir(os.path.join(droot, "trainval")):
        written.update(convert_context(droot, overwrite))
    if reduce:
        reduce_zero_label(
            os.path.join(droot, "SegmentationClassContext"),
            os.path.join(droot, "SegmentationClassContext59"),
            overwrite,
        )
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
