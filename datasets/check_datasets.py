#!/usr/bin/env python3
"""Check every prepared dataset against the known split sizes, in one command.

    python datasets/check_datasets.py                  # every dataset under $DETECTRON2_DATASETS
    python datasets/check_datasets.py voc2012 nyuv2 --root /data --strict
    python datasets/check_datasets.py --print-checksums ~/downloads/VOCtrainval_11-May-2012.tar

For each dataset (``voc2012``, ``pascal_context``, ``nyuv2``, ``mapillary_vistas``,
``cityscapes``) it counts the images of every split as the registrations will read them (the
pairs files the ``prepare_*.py`` scripts write; Mapillary's images with a converted label;
Cityscapes' ``leftImg8bit`` images with their ``labelTrainIds``), checks that every file they
name exists, and prints the counts next to the full releases' (``_split_sizes.KNOWN_SIZES``).

Exit status 1 when a listed file is missing, a dataset named on the command line is not
prepared, or (``--strict``) a count differs from the full release's or a split was not written;
without ``--strict`` those are warnings naming both numbers (the tests' tiny releases differ
by design). Datasets that are absent are listed as such. No detectron2 needed; for the pixel
level (label values, image sizes) use ``tools/check_dataset.py``.

``--print-checksums FILE...`` prints the size, md5 and sha256 of downloaded archives and
compares the md5 with the publisher's where one is known (``_split_sizes.ARCHIVE_MD5``); a
different md5 is exit status 1.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import sys
from typing import Dict, List, Optional, Tuple

from _prepare_common import dataset_root
from _split_sizes import ARCHIVE_MD5, KNOWN_SIZES, expected_sizes, format_size_table

#: dataset -> (folder under the datasets root, {split: [pairs files of that split]})
PAIRS_DATASETS: Dict[str, Tuple[str, Dict[str, List[str]]]] = {
    "voc2012": (
        "VOCdevkit/VOC2012",
        {s: [f"cpp_pairs_{s}.txt"] for s in ("train", "val", "train_aug")},
    ),
    "pascal_context": (
        "VOCdevkit/VOC2010",
        {
            s: [f"cpp_pairs_context60_{s}.txt", f"cpp_pairs_context59_{s}.txt"]
            for s in ("train", "val")
        },
    ),
    "nyuv2": ("nyuv2", {s: [f"cpp_pairs_{s}.txt"] for s in ("train", "test")}),
}
#: the script that prepares each dataset
PREPARE = {
    "voc2012": "python datasets/prepare_pascal_voc.py",
    "pascal_context": "python datasets/prepare_pascal_context.py",
    "nyuv2": "python datasets/prepare_nyuv2.py",
    "mapillary_vistas": "python datasets/prepare_mapillary_vistas.py",
    "cityscapes": "CITYSCAPES_DATASET=... python -m cityscapesscripts.preparation."
    "createTrainIdLabelImgs",
}
DATASETS = tuple(KNOWN_SIZES)
MAPILLARY_LABELS = "labels_cityscapes19_onrails_ignored"


class SplitCheck:
    """One split's result: its image count (``None``: not written), the files it names that are
    missing, and where it was read from."""

    def __init__(self, count: Optional[int], missing: List[str], where: str):
        self.count, self.missing, self.where = count, missing, where


def _check_pairs(path: str) -> SplitCheck:
    """Count the samples of a pairs file and list the files it names that do not exist."""
    if not os.path.isfile(path):
        return SplitCheck(None, [], path)
    base = os.path.dirname(path)
    with open(path) as f:
        lines = [line.split() for line in f if line.strip()]
    missing = [
        os.path.join(base, rel)
        for words in lines
        for rel in words
        if not os.path.isfile(os.path.join(base, rel))
    ]
    return SplitCheck(len(lines), missing, path)


def check_pairs_dataset(root: str, dataset: str) -> Dict[str, SplitCheck]:
    """``{split: SplitCheck}`` of a dataset read from pairs files (VOC, Context, NYUv2); a split
    with several pairs files (Context 60 / 59) takes the first one's count and every file's
    missing files; ``{}`` when none of its pairs files exists."""
    folder, splits = PAIRS_DATASETS[dataset]
    out = {}
    for split, names in splits.items():
        checks = [_check_pairs(os.path.join(root, folder, n)) for n in names]
        counts = {c.count for c in checks}
        if len(counts) > 1:  # e.g. a 59-label pairs file left over from other lists
            shown = ", ".join(f"{c.where}: {c.count}" for c in checks)
            checks[0].missing.append(f"(pairs files of {split} disagree: {shown})")
        missing = [m for c in checks for m in c.missing]
        out[split] = SplitCheck(checks[0].count, missing, checks[0].where)
    return out if any(c.count is not None for c in out.values()) else {}


def check_mapillary(root: str) -> Dict[str, SplitCheck]:
    """``{split: SplitCheck}`` of Mapillary Vistas: the images of ``<split>/images/`` with a
    converted label in ``<split>/labels_cityscapes19_onrails_ignored/`` (what the default
    datasets read); an image without its label, or the reverse, is a missing file."""
    droot = os.path.join(root, "mapillary_vistas")
    out = {}
    for split in ("training", "validation"):
        labels_dir = os.path.join(droot, split, MAPILLARY_LABELS)
        if not os.path.isdir(labels_dir):
            continue
        image_dir = os.path.join(droot, split, "images")
        names = os.listdir(image_dir) if os.path.isdir(image_dir) else []
        images = {os.path.splitext(f)[0] for f in names if f.endswith(".jpg")}
        labels = {os.path.splitext(f)[0] for f in os.listdir(labels_dir) if f.endswith(".png")}
        missing = [os.path.join(labels_dir, f"{s}.png") for s in sorted(images - labels)]
        missing += [
            os.path.join(droot, split, "images", f"{s}.jpg") for s in sorted(labels - images)
        ]
        out[split] = SplitCheck(len(images & labels), missing, labels_dir)
    return out


def check_cityscapes(root: str) -> Tuple[Dict[str, SplitCheck], bool]:
    """``({split: SplitCheck}, synthetic)`` of Cityscapes: the ``leftImg8bit`` images of each
    split with their ``gtFine`` ``labelTrainIds`` (a missing one is a missing file); synthetic
    when the folder is this project's synthetic Cityscapes (its manifest is there)."""
    droot = os.path.join(root, "cityscapes")
    out = {}
    for split in ("train", "val", "test"):
        images = sorted(
            glob.glob(os.path.join(droot, "leftImg8bit", split, "*", "*_leftImg8bit.png"))
        )
        if not images:
            continue
        missing = []
        for image in images:
            rel = os.path.relpath(image, os.path.join(droot, "leftImg8bit"))
            label = os.path.join(
                droot, "gtFine", rel.replace("_leftImg8bit.png", "_gtFine_labelTrainIds.png")
            )
            if not os.path.isfile(label):
                missing.append(label)
        out[split] = SplitCheck(len(images), missing, os.path.join(droot, "leftImg8bit", split))
    return out, os.path.isfile(os.path.join(droot, "synthetic_cityscapes.json"))


def check_dataset(root: str, dataset: str) -> Tuple[Dict[str, SplitCheck], Optional[str]]:
    """``({split: SplitCheck}, note)`` of ``dataset`` under ``root``; note ``"synthetic"`` for the
    synthetic Cityscapes (its sizes are not compared)."""
    if dataset in PAIRS_DATASETS:
        return check_pairs_dataset(root, dataset), None
    if dataset == "mapillary_vistas":
        return check_mapillary(root), None
    found, synthetic = check_cityscapes(root)
    return found, "synthetic" if synthetic else None


def check_all(root: str, names: List[str], strict: bool, out=None, err=None) -> int:
    """Print the check of every dataset of ``names`` (every known one when empty) to ``out``
    (stdout; problems to ``err``, stderr) and return the exit status (module docstring)."""
    out, err = out or sys.stdout, err or sys.stderr
    status = 0
    for dataset in names or DATASETS:
        splits, note = check_dataset(root, dataset)
        print(f"== {dataset}", file=out)
        if not splits:
            print(f"  not prepared under {root} ({PREPARE[dataset]})", file=out)
            if names:
                print(f"error: {dataset} is not prepared under {root}", file=err)
                status = 1
            continue
        rows, problems = [], []
        for split in KNOWN_SIZES[dataset]:
            expected = expected_sizes(dataset, split)
            check = splits.get(split)
            if check is None or check.count is None:
                if dataset == "mapillary_vistas" and split == "testing":
                    continue  # no labels: never converted nor registered
                if dataset == "cityscapes":
                    continue
                rows.append((split, "-", expected, "NOT WRITTEN"))
                problems.append(f"{dataset} {split} was not written ({PREPARE[dataset]})")
                continue
            if check.missing:
                rows.append((split, check.count, expected, f"{len(check.missing)} FILE(S) MISSING"))
                shown = ", ".join(check.missing[:3])
                print(
                    f"error: {dataset} {split}: {len(check.missing)} file(s) named by "
                    f"{check.where} missing, e.g. {shown}",
                    file=err,
                )
                status = 1
                continue
            if note == "synthetic":
                rows.append((split, check.count, expected, "synthetic (not compared)"))
            elif check.count in expected.values():
                rows.append((split, check.count, expected, "ok"))
            else:
                rows.append((split, check.count, expected, "MISMATCH"))
                want = " or ".join(f"{n:,}" for n in expected.values())
                problems.append(f"{dataset} {split}: {check.count:,} images, {want} expected")
        print(format_size_table(rows), file=out)
        for message in problems:
            print(f"{'error' if strict else 'warning'}: {message}", file=err)
        if problems and strict:
            status = 1
    return status


def file_checksums(path: str) -> Tuple[int, str, str]:
    """``(bytes, md5, sha256)`` of the file ``path``, read once in 1 MiB blocks."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            md5.update(block)
            sha.update(block)
    return os.path.getsize(path), md5.hexdigest(), sha.hexdigest()


def print_checksums(paths: List[str], out=None, err=None) -> int:
    """Print size, md5 and sha256 of each archive of ``paths`` and the comparison with the
    publisher's md5 when known; returns 1 when one differs or a file is absent, else 0."""
    out, err = out or sys.stdout, err or sys.stderr
    status = 0
    for path in paths:
        if not os.path.isfile(path):
            print(f"error: {path} does not exist", file=err)
            status = 1
            continue
        size, md5, sha = file_checksums(path)
        known = ARCHIVE_MD5.get(os.path.basename(path))
        if known is None:
            verdict = "no published md5 known"
        elif known == md5:
            verdict = "md5 matches the published one"
        else:
            verdict = f"md5 DIFFERS from the published {known}: download it again"
            status = 1
        print(f"{path}\n  {size:,} bytes ({size / 2**30:.2f} GiB)", file=out)
        print(f"  md5    {md5}  ({verdict})\n  sha256 {sha}", file=out)
    return status


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "names", nargs="*", metavar="dataset", help=f"any of {', '.join(DATASETS)} (default: all)"
    )
    ap.add_argument("--root", help="datasets root (default: $DETECTRON2_DATASETS, else datasets)")
    ap.add_argument(
        "--strict",
        action="store_true",
        help="a count other than the full release's, or a split not written, is an error",
    )
    ap.add_argument(
        "--print-checksums",
        nargs="+",
        metavar="ARCHIVE",
        help="print size, md5 and sha256 of downloaded archives (and compare known md5s)",
    )
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in DATASETS]
    if unknown:
        ap.error(f"unknown dataset(s) {', '.join(unknown)}: choose from {', '.join(DATASETS)}")
    if args.print_checksums:
        return print_checksums(args.print_checksums)
    return check_all(dataset_root(args.root), list(args.names), args.strict)


if __name__ == "__main__":
    sys.exit(main())
