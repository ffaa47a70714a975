#!/usr/bin/env python3
"""Prepare Mapillary Vistas v1.2 for ``mapillary_vistas_cityscapes19[_onrails_train]_sem_seg_*``.

    python datasets/prepare_mapillary_vistas.py   # under $DETECTRON2_DATASETS, else datasets/
    python datasets/prepare_mapillary_vistas.py --root /data [--overwrite] [--strict]

In ``mapillary_vistas/``: reads the 66 labels of ``config_v1.2.json`` (else ``config.json``) and
writes, for ``training`` and ``validation`` and for each of the two Cityscapes-19 variants,
``<split>/labels_cityscapes19_onrails_ignored/<stem>.png`` (the default datasets
``mapillary_vistas_cityscapes19_sem_seg_*``: ``object--vehicle--on-rails`` -> 255) and
``<split>/labels_cityscapes19_onrails_train/<stem>.png`` (the switch,
``mapillary_vistas_cityscapes19_onrails_train_sem_seg_*``: on-rails -> train), from the native
label PNGs (``<split>/v1.2/labels/`` or ``<split>/labels/``): each Mapillary label becomes its
Cityscapes trainId by name (the table in datasets/README.md), every other label 255. Every
file is written atomically; a file already written and newer than its source is skipped, so a
second run (or one after an interruption) only does what is left. A label value above 65 stops
the run with an error naming the file. The native dataset (``mapillary_vistas_sem_seg_*``) needs
no preparation. It ends with the number of native labels per split next to the full release's
(18,000 / 2,000): a difference is a warning, an error with ``--strict`` (before any conversion).
"""

from __future__ import annotations

import os
import sys
from typing import Dict, Optional

import numpy as np
from _prepare_common import dataset_root, prepare_main, report_sizes
from _split_sizes import refuse_mismatch
from PIL import Image
from tqdm import tqdm

try:
    from seethroughnet.data.datasets import label_files, mapillary_vistas
    from seethroughnet.utils.atomic import atomic_path
except ImportError:  # not installed: use the source tree next to this script
    sys.path.insert(
        0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "projects/SeeThroughNet")
    )
    from seethroughnet.data.datasets import label_files, mapillary_vistas
    from seethroughnet.utils.atomic import atomic_path

MAPILLARY_FOLDER = "mapillary_vistas"
SPLITS = ("training", "validation")
#: the native label table: 0..64 and the ignore label 65
NATIVE_VALUES = range(mapillary_vistas.MAPILLARY_IGNORE_LABEL + 1)


def _up_to_date(dst: str, src: str) -> bool:
    return os.path.isfile(dst) and os.path.getmtime(dst) >= os.path.getmtime(src)


def convert_label(src: str, dsts: Dict[str, np.ndarray]) -> None:
    """Write ``lut[label]`` of the native label PNG ``src`` to each ``dst`` of ``dsts``
    (``{dst: lut}``; 8-bit, atomically), reading ``src`` once. A missing or corrupt file, or one
    holding a value above 65, is a ``ValueError`` naming it."""
    native = label_files.read_label(src, NATIVE_VALUES)
    for dst, lut in dsts.items():
        with atomic_path(dst) as tmp:
            Image.fromarray(lut[native]).save(tmp, format="PNG")


def prepare_mapillary_vistas(
    root: Optional[str] = None,
    progress: bool = True,
    overwrite: bool = False,
    strict: bool = False,
    report=None,
) -> Dict[str, str]:
    """Write the Cityscapes-19 label folders of both variants
    (``mapillary_vistas.MAPPED_LABEL_DIRS``); returns ``{label folder written: native folder}``
    for the splits that have native labels (none when the dataset folder is absent). A label
    already converted and newer than its source is kept unless ``overwrite`` (``--overwrite``:
    after replacing the config file, say). The number of native labels per split is checked
    against the full release's (18,000 / 2,000; ``_prepare_common.report_sizes``), with
    ``strict`` before anything is converted."""
    droot = os.path.join(dataset_root(root), MAPILLARY_FOLDER)
    if not os.path.isdir(droot):
        return {}
    config, label_dir = mapillary_vistas.find_layout(droot)
    labels = mapillary_vistas.read_mapillary_labels(config)
    luts = {  # label folder (inside a split folder) -> its look-up table
        mapillary_vistas.MAPPED_LABEL_DIRS[variant]: mapillary_vistas.cityscapes19_lut(
            labels, mapping
        )
        for variant, mapping in mapillary_vistas.CITYSCAPES19_MAPPINGS.items()
    }
    written = {}
    names_of = {
        split: sorted(f for f in os.listdir(src_dir) if f.endswith(".png"))
        for split in SPLITS
        for src_dir in [os.path.join(droot, split, label_dir)]
        if os.path.isdir(src_dir)
    }
    counts = {split: len(names) for split, names in names_of.items()}
    if strict:
        refuse_mismatch("mapillary_vistas", counts)
    for split, names in names_of.items():
        src_dir = os.path.join(droot, split, label_dir)
        dst_dirs = {os.path.join(droot, split, d): lut for d, lut in luts.items()}
        for fn in tqdm(names, desc=f"mapillary {split} -> cityscapes19", disable=not progress):
            src = os.path.join(src_dir, fn)
            todo = {
                os.path.join(d, fn): lut
                for d, lut in dst_dirs.items()
                if overwrite or not _up_to_date(os.path.join(d, fn), src)
            }
            if todo:
                convert_label(src, todo)
        for dst_dir in dst_dirs:
            os.makedirs(dst_dir, exist_ok=True)
            written[dst_dir] = src_dir
    if counts:
        report_sizes(report, "mapillary_vistas", counts)
    return written


def main(argv=None) -> int:
    return prepare_main(
        argv,
        __doc__.split("\n\n")[0],
        prepare_mapillary_vistas,
        lambda root: "no Mapillary Vistas label folder under "
        f"{os.path.join(root, MAPILLARY_FOLDER)} (training/labels or training/v1.2/labels): "
        "unpack Mapillary Vistas v1.2 there first",
    )


if __name__ == "__main__":
    sys.exit(main())
