#!/usr/bin/env python3
"""Prepare Pascal VOC 2012 (+SBD aug) for ``voc2012_sem_seg_{train,val,train_aug}``.

    python datasets/prepare_pascal_voc.py   # under $DETECTRON2_DATASETS, else datasets/
    python datasets/prepare_pascal_voc.py --root /data [--overwrite] [--strict] [--no-aug]

Needs VOC 2012 (``VOCtrainval_11-May-2012.tar``) unpacked so that ``VOCdevkit/VOC2012/`` holds
``JPEGImages/``, ``SegmentationClass/`` and ``ImageSets/Segmentation/{train,val}.txt``. The
augmented training set ``train_aug`` then comes from the first of:

1. the SBD release (Hariharan et al. 2011, ``benchmark.tgz``): its ``dataset/`` folder (``cls/``,
   ``img/``, ``train.txt``, ``val.txt``) at ``benchmark_RELEASE/dataset`` (the archive unpacked
   under the datasets root), ``VOCdevkit/VOCaug/dataset`` (MMSegmentation's tree),
   ``VOCaug/dataset`` or ``VOCdevkit/benchmark_RELEASE/dataset``. Writes
   ``ImageSets/Segmentation/train_aug.txt`` and ``SegmentationClassAug/<id>.png``
   (single-channel class indices 0..20, 255 = ignore), and copies SBD images missing from
   ``JPEGImages/``. Files already converted are kept unless ``--overwrite``.
2. a pre-made aug list in ``VOCdevkit/VOC2012/``, with its labels already in
   ``SegmentationClassAug/``: ``ImageSets/Segmentation/train_aug.txt`` (this script's, or
   DeepLab's), ``ImageSets/SegmentationAug/train_aug.txt`` (DeepLab's), or MMSegmentation's
   ``ImageSets/Segmentation/trainaug.txt`` or ``aug.txt`` (SBD ids only; VOC train is added). A
   list holds bare ids or DeepLab's ``/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png`` pairs.

Without either it stops, naming every place it looked, unless ``--no-aug`` (VOC train and val
only). Then it writes ``VOCdevkit/VOC2012/cpp_pairs_{train,val,train_aug}.txt`` (train and val
label ``SegmentationClass/``; in train_aug an id of VOC train keeps ``SegmentationClass/``, as
MMSegmentation trains it, the others ``SegmentationClassAug/``, unless a pairs list names the
label), after checking that every listed file exists, and prints the image count of each split
next to the full release's (1,464 / 1,449 / 10,582): a difference is a warning, an error with
``--strict`` (then no pairs file is written). See datasets/README.md.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Dict, List, Optional, Sequence, Tuple

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
    missing_files,
    prepare_main,
    progress,
    report_sizes,
    save_png,
    write_pairs_file,
)
from _split_sizes import refuse_mismatch

VOC_FOLDER = "VOCdevkit/VOC2012"
#: where the SBD release's ``dataset/`` folder is looked for, in this order (relative to the
#: datasets root): ``benchmark.tgz`` unpacked there; MMSegmentation's tree (its dataset guide
#: moves ``benchmark_RELEASE/dataset`` to ``VOCdevkit/VOCaug/``); ``benchmark_RELEASE`` renamed
#: ``VOCaug`` (GluonCV's script); the archive unpacked inside ``VOCdevkit/``
SBD_FOLDERS = (
    "benchmark_RELEASE/dataset",
    "VOCdevkit/VOCaug/dataset",
    "VOCaug/dataset",
    "VOCdevkit/benchmark_RELEASE/dataset",
)
SBD_FOLDER = SBD_FOLDERS[0]
#: the pre-made aug lists looked for in ``VOCdevkit/VOC2012``, in this order: ``(list, whether
#: it holds SBD's ids only, VOC train to be added)``
AUG_LISTS = (
    ("ImageSets/Segmentation/train_aug.txt", False),  # this script's, or DeepLab's
    ("ImageSets/SegmentationAug/train_aug.txt", False),  # DeepLab's (e.g. deeplab-pytorch)
    ("ImageSets/Segmentation/trainaug.txt", False),  # MMSegmentation's voc_aug.py
    ("ImageSets/Segmentation/aug.txt", True),  # MMSegmentation's voc_aug.py, SBD ids only
)
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


def find_sbd(root: Optional[str] = None) -> Optional[str]:
    """The first folder of :data:`SBD_FOLDERS` under the datasets root that exists, else
    ``None``."""
    for rel in SBD_FOLDERS:
        path = os.path.join(dataset_root(root), rel)
        if os.path.isdir(path):
            return path
    return None


def sbd_class_map(mat_path: str) -> np.ndarray:
    """The class map of an SBD ``cls/<id>.mat``: MATLAB v5 struct ``GTcls`` whose field
    ``Segmentation`` is an ``H x W`` uint8 map of the VOC classes 0..20 (SBD has no 255).
    Missing file, struct or field, or ids out of 0..20, raise an error naming ``mat_path``."""
    mat = load_mat_v5(mat_path, SBD_HINT)
    seg = np.asarray(mat_variable(mat, mat_path, "GTcls", "Segmentation"))
    if seg.ndim != 2:
        raise LayoutError(f"{mat_path}: GTcls.Segmentation is {seg.shape}, not an H x W map")
    return check_ids(seg, mat_path, range(21), "SBD classes are 0..20").astype(np.uint8)


def voc_split_ids(voc_dir: str) -> Tuple[List[str], List[str]]:
    """The ids of ``ImageSets/Segmentation/{train,val}.txt`` of ``voc_dir``; an absent list is a
    ``FileNotFoundError`` naming it."""
    sets = os.path.join(voc_dir, "ImageSets", "Segmentation")
    return (
        read_id_list(os.path.join(sets, "train.txt"), VOC_HINT),
        read_id_list(os.path.join(sets, "val.txt"), VOC_HINT),
    )


def sbd_aug_ids(voc_dir: str, sbd_dir: str) -> List[str]:
    """:func:`aug_ids` of the VOC 2012 lists of ``voc_dir`` and the SBD lists of ``sbd_dir``."""
    voc_train, voc_val = voc_split_ids(voc_dir)
    sbd_train = read_id_list(os.path.join(sbd_dir, "train.txt"), SBD_HINT)
    sbd_val = read_id_list(os.path.join(sbd_dir, "val.txt"), SBD_HINT)
    return aug_ids(sbd_train, sbd_val, voc_train, voc_val)


def build_voc_aug(voc_dir: str, sbd_dir: str, overwrite: bool = False) -> Dict[str, str]:
    """Build ``train_aug.txt`` and ``SegmentationClassAug/`` under ``voc_dir`` from VOC 2012 and
    the SBD release ``sbd_dir``; returns ``{output: source}``.

    The label of an id of VOC 2012 train is its VOC palette PNG ``SegmentationClass/<id>.png``
    read as indices (finer, with 255 boundaries; as MMSegmentation trains on VOC train with
    ``SegmentationClass``); every other id's label is SBD's ``cls/<id>.mat``. SBD images absent
    from ``JPEGImages/`` are copied from ``img/<id>.jpg``. Each label is checked for ids and for
    its image's size. Existing outputs are kept unless ``overwrite``."""
    sets = os.path.join(voc_dir, "ImageSets", "Segmentation")
    ids = sbd_aug_ids(voc_dir, sbd_dir)
    voc_train = set(voc_split_ids(voc_dir)[0])
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


def read_aug_list(path: str) -> List[Tuple[str, Optional[str], Optional[str]]]:
    """The entries ``(id, image, label)`` of an aug list: a bare id a line (``image`` and
    ``label`` ``None``), or DeepLab's ``/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png``
    (paths relative to ``VOC2012``, the leading ``/`` dropped; the id is the image's stem). A
    line of more than two words, or a list without entries, is a :class:`LayoutError` naming
    ``path`` and the line."""
    entries = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            words = line.split()
            if not words:
                continue
            if len(words) > 2 or (len(words) == 2 and "/" not in words[0]):
                raise LayoutError(
                    f"{path} line {n} is neither an image id nor an 'image label' path pair "
                    f"({line.strip()!r}): use a train_aug list of bare ids or DeepLab's pairs"
                )
            if len(words) == 1 and "/" not in words[0]:
                entries.append((words[0], None, None))
                continue
            image = words[0].lstrip("/")
            label = words[1].lstrip("/") if len(words) == 2 else None
            entries.append((os.path.splitext(os.path.basename(image))[0], image, label))
    if not entries:
        raise LayoutError(f"{path} lists no image: remove it or replace it with the full list")
    return entries


def aug_label(i: str, voc_train: set) -> str:
    """The label of the train_aug id ``i`` when its list does not name one: VOC train's own
    label for an id of VOC train (as MMSegmentation trains ``train.txt`` on
    ``SegmentationClass``), SBD's converted one otherwise."""
    if i in voc_train:
        return f"SegmentationClass/{i}.png"
    return f"SegmentationClassAug/{i}.png"


def premade_aug_pairs(voc_dir: str) -> Optional[Tuple[str, List[str]]]:
    """``(list, pairs lines)`` of the first pre-made aug list of :data:`AUG_LISTS` in
    ``voc_dir``, else ``None``. MMSegmentation's ``aug.txt`` (SBD ids only) gets VOC train
    added; the ids are sorted and unique. A list holding an id of VOC 2012 val is a
    :class:`LayoutError` naming it (its images would be trained on and evaluated)."""
    voc_train, voc_val = voc_split_ids(voc_dir)
    for rel, sbd_only in AUG_LISTS:
        path = os.path.join(voc_dir, rel)
        if not os.path.isfile(path):
            continue
        entries = {i: (img, lab) for i, img, lab in read_aug_list(path)}
        if sbd_only:
            for i in voc_train:
                entries.setdefault(i, (None, None))
        leak = sorted(set(entries) & set(voc_val))
        if leak:
            raise LayoutError(
                f"{path} holds {len(leak)} id(s) of VOC 2012 val (e.g. {', '.join(leak[:3])}): "
                "a train_aug list excludes val; replace it (or unpack the SBD release and rerun "
                "with --overwrite to rebuild it)"
            )
        train = set(voc_train)
        lines = [
            f"{img or f'JPEGImages/{i}.jpg'} {lab or aug_label(i, train)}"
            for i, (img, lab) in sorted(entries.items())
        ]
        return path, lines
    return None


def no_aug_source(root: Optional[str], voc_dir: str) -> str:
    """The message of a run without SBD and without a pre-made aug list: where it looked."""
    sbd = "; ".join(os.path.join(dataset_root(root), rel) for rel in SBD_FOLDERS)
    lists = "; ".join(os.path.join(voc_dir, rel) for rel, _ in AUG_LISTS)
    return (
        "no SBD release and no pre-made aug list, so no train_aug (10,582 images): looked for "
        f"the SBD folder (cls/, img/, train.txt, val.txt) in {sbd}, and for an aug list in "
        f"{lists}. Unpack the SBD release benchmark.tgz under the datasets root (it unpacks to "
        f"{SBD_FOLDER}/), or rerun with --no-aug to prepare VOC train and val only "
        "(voc2012_sem_seg_train_aug then stays unavailable). See datasets/README.md"
    )


def voc_pairs(ids: Sequence[str]) -> List[str]:
    """The pairs lines of VOC train or val: ``JPEGImages/<id>.jpg SegmentationClass/<id>.png``."""
    return [f"JPEGImages/{i}.jpg SegmentationClass/{i}.png" for i in ids]


def prepare_pascal_voc(
    root: Optional[str] = None,
    overwrite: bool = False,
    strict: bool = False,
    no_aug: bool = False,
    report=None,
) -> Dict[str, str]:
    """Find the train_aug source (the SBD release, built by :func:`build_voc_aug`, else a
    pre-made list, :func:`premade_aug_pairs`; neither is a ``FileNotFoundError`` naming where it
    looked unless ``no_aug``), check the split sizes (``_prepare_common.report_sizes``: an error
    before anything is converted with ``strict``), check that every listed file exists, then
    write the pairs files; returns ``{output: source}``."""
    voc_dir = os.path.join(dataset_root(root), VOC_FOLDER)
    voc_train, voc_val = voc_split_ids(voc_dir)
    sets = os.path.join(voc_dir, "ImageSets", "Segmentation")
    pairs = {
        "train": (voc_pairs(voc_train), os.path.join(sets, "train.txt")),
        "val": (voc_pairs(voc_val), os.path.join(sets, "val.txt")),
    }
    written: Dict[str, str] = {}
    sbd_dir = None if no_aug else find_sbd(root)
    if sbd_dir is not None:
        ids = sbd_aug_ids(voc_dir, sbd_dir)
        counts = {split: len(lines) for split, (lines, _) in pairs.items()}
        counts["train_aug"] = len(ids)
        if strict:  # before the conversion: a short list is refused in seconds, not hours
            refuse_mismatch("voc2012", counts)
        written.update(build_voc_aug(voc_dir, sbd_dir, overwrite))
        train = set(voc_train)
        aug_lines = [f"JPEGImages/{i}.jpg {aug_label(i, train)}" for i in ids]
        pairs["train_aug"] = (aug_lines, os.path.join(sets, "train_aug.txt"))
    elif not no_aug:
        premade = premade_aug_pairs(voc_dir)
        if premade is None:
            raise FileNotFoundError(no_aug_source(root, voc_dir))
        list_path, aug_lines = premade
        pairs["train_aug"] = (aug_lines, list_path)
    for split, (lines, src) in pairs.items():
        hint = (
            VOC_HINT
            if split != "train_aug"
            else (
                "they are the images and labels of the aug set (labels in SegmentationClassAug/): "
                f"unpack them with the list, or {SBD_HINT} and rerun"
            )
        )
        missing_files(voc_dir, lines, f"listed by {src}; {hint}")
    counts = {split: len(lines) for split, (lines, _) in pairs.items()}
    report_sizes(report, "voc2012", counts, strict=strict)
    for split, (lines, src) in pairs.items():
        dst = os.path.join(voc_dir, f"cpp_pairs_{split}.txt")
        write_pairs_file(dst, lines)
        written[dst] = src
    return written


def main(argv=None) -> int:
    return prepare_main(
        argv,
        __doc__.split("\n\n")[0],
        prepare_pascal_voc,
        lambda root: "no split list under "
        f"{os.path.join(root, VOC_FOLDER)}/ImageSets/Segmentation/: "
        "unpack VOC 2012 (and SBD aug) first",
        flags=[
            (
                "--no-aug",
                "no_aug",
                "prepare VOC train and val only, without the SBD aug set (default: the aug set "
                "is required)",
            )
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
