#!/usr/bin/env python3
"""Prepare Pascal VOC 2012 (+SBD aug) for ``voc2012_sem_seg_{train,val,train_aug}``.

    python datasets/prepare_pascal_voc.py   # under $DETECTRON2_DATASETS, else datasets/
    python datasets/prepare_pascal_voc.py --root /data [--overwrite]

From the official releases, when the SBD folder ``benchmark_RELEASE/dataset/`` (Hariharan et al.
2011, ``benchmark.tgz``) is unpacked beside ``VOCdevkit/`` (VOC 2012,
``VOCtrainval_11-May-2012.tar``): writes
``VOCdevkit/VOC2012/ImageSets/Segmentation/train_aug.txt`` and
``VOCdevkit/VOC2012/SegmentationClassAug/<id>.png`` (single-channel class indices 0..20, 255 =
ignore), and copies SBD images missing from ``JPEGImages/``. Files already converted are kept
unless ``--overwrite``.

Then, in every case, writes ``VOCdevkit/VOC2012/cpp_pairs_{train,val,train_aug}.txt`` from the
split lists in ``ImageSets/Segmentation/`` (train and val label ``SegmentationClass/``,
train_aug ``SegmentationClassAug/``). Lists that are absent are skipped. See datasets/README.md.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Dict, Optional

import numpy as np
from _official_formats import (
    LayoutError,
    check_ids,
    check_same_size,
    load_mat_v5,
    mat_variable,
    read_id_list,
    read_index_png,
    require_file,
    write_id_list,
)
from _prepare_common import (
    atomic_path,
    dataset_root,
    pairs_from_split_list,
    prepare_main,
    progress,
    save_png,
)

VOC_FOLDER = "VOCdevkit/VOC2012"
SBD_FOLDER = "benchmark_RELEASE/dataset"
SPLIT_LABELS = {
    "train": "SegmentationClass",
    "val": "SegmentationClass",
    "train_aug": "SegmentationClassAug",
}
#: The 21 VOC classes (0 = background) and the ignore value (object boundaries, "void").
VOC_IDS = tuple(range(21)) + (255,)
VOC_HINT = "unpack VOCtrainval_11-May-2012.tar (VOC 2012) under the datasets root"
SBD_HINT = (
    "unpack the SBD release benchmark.tgz (Hariharan et al. 2011) under the datasets root so "
    f"that {SBD_FOLDER}/ holds cls/, img/, train.txt and val.txt"
)


def aug_ids(sbd_train, sbd_val, voc_train, voc_val):
    """The "train_aug" ids: (SBD train ∪ SBD val ∪ VOC 2012 train) minus VOC 2012 val, sorted.

    This is the augmented training set of DeepLab (Chen et al. 2015) and MMSegmentation
    (``tools/dataset_converters/voc_aug.py``): 10,582 images with the official lists (SBD
    8,498 + 2,857, VOC 1,464 train / 1,449 val)."""
    return sorted((set(sbd_train) | set(sbd_val) | set(voc_train)) - set(voc_val))


def sbd_class_map(mat_path: str) -> np.ndarray:
    """The class map of an SBD ``cls/<id>.mat``: MATLAB v5 struct ``GTcls`` whose field
    ``Segmentation`` is an ``H x W`` uint8 map of the VOC classes 0..20 (SBD has no 255).
    Missing file, struct or field, or ids out of 0..20, raise an error naming ``mat_path``."""
    mat = load_mat_v5(mat_path, SBD_HINT)
    seg = np.asarray(mat_variable(mat, mat_path, "GTcls", "Segmentation"))
    if seg.ndim != 2:
        raise LayoutError(f"{mat_path}: GTcls.Segmentation is {seg.shape}, not an H x W map")
    return check_ids(seg, mat_path, range(21), "SBD classes are 0..20").astype(np.uint8)


def build_voc_aug(voc_dir: str, sbd_dir: str, overwrite: bool = False) -> Dict[str, str]:
    """Build ``train_aug.txt`` and ``SegmentationClassAug/`` under ``voc_dir`` from VOC 2012 and
    the SBD release ``sbd_dir``; returns ``{output: source}``.

    The label of an id of VOC 2012 train is its VOC palette PNG ``SegmentationClass/<id>.png``
    read as indices (finer, with 255 boundaries; as MMSegmentation trains on VOC train with
    ``SegmentationClass``); every other id's label is SBD's ``cls/<id>.mat``. SBD images absent
    from ``JPEGImages/`` are copied from ``img/<id>.jpg``. Each label is checked for ids and for
    its image's size. Existing outputs are kept unless ``overwrite``."""
    sets = os.path.join(voc_dir, "ImageSets", "Segmentation")
    voc_train = read_id_list(os.path.join(sets, "train.txt"), VOC_HINT)
    voc_val = read_id_list(os.path.join(sets, "val.txt"), VOC_HINT)
    sbd_train = read_id_list(os.path.join(sbd_dir, "train.txt"), SBD_HINT)
    sbd_val = read_id_list(os.path.join(sbd_dir, "val.txt"), SBD_HINT)
    ids = aug_ids(sbd_train, sbd_val, voc_train, voc_val)
    voc_train = set(voc_train)
    out_dir = os.path.join(voc_dir, "SegmentationClassAug")
    for i in progress(ids, "VOC+SBD -> SegmentationClassAug"):
        image = os.path.join(voc_dir, "JPEGImages", f"{i}.jpg")
        if not os.path.isfile(image):
            sbd_image = require_file(os.path.join(sbd_dir, "img", f"{i}.jpg"), SBD_HINT)
            with atomic_path(image) as tmp:
                shutil.copyfile(sbd_image, tmp)
        dst = os.path.join(out_dir, f"{i}.png")
        if os.path.exists(dst) and not overwrite:
            continue
        if i in voc_train:
            src = require_file(os.path.join(voc_dir, "SegmentationClass", f"{i}.png"), VOC_HINT)
            label = check_ids(read_index_png(src), src, VOC_IDS, "VOC ids are 0..20 and 255")
        else:
            src = os.path.join(sbd_dir, "cls", f"{i}.mat")
            label = sbd_class_map(src)
        check_same_size(label.shape, image, src)
        save_png(dst, label)
    train_aug = os.path.join(sets, "train_aug.txt")
    write_id_list(train_aug, ids, overwrite)
    return {
        out_dir: sbd_dir,
        train_aug: f"{sbd_dir}/{{train,val}}.txt + {sets}/train.txt - val.txt",
    }


def prepare_pascal_voc(root: Optional[str] = None, overwrite: bool = False) -> Dict[str, str]:
    """Build the aug set when the SBD release is present (:func:`build_voc_aug`), then write the
    VOC pairs files; returns ``{output: source}`` for those written."""
    droot = os.path.join(dataset_root(root), VOC_FOLDER)
    sbd_dir = os.path.join(dataset_root(root), SBD_FOLDER)
    written = {}
    if os.path.isdir(sbd_dir):
        written.update(build_voc_aug(droot, sbd_dir, overwrite))
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
