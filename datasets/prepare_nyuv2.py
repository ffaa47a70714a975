#!/usr/bin/env python3
"""Prepare NYU-Depth-v2 (40 classes) for ``nyuv2_40_sem_seg_{train,test}``.

    python datasets/prepare_nyuv2.py   # under $DETECTRON2_DATASETS, else datasets/
    python datasets/prepare_nyuv2.py --root /data [--overwrite] [--strict]

In ``nyuv2/``:

1. From the official release, when ``nyu_depth_v2_labeled.mat`` (Silberman et al. 2012) is
   present, with ``splits.mat`` (the 795 / 654 train / test split) and ``classMapping40.mat``
   (Gupta et al. 2013, the 894 -> 40 class mapping) beside it: writes the RGB frames
   ``image/{train,test}/NNNN.png`` and the 40-class labels ``label40/{train,test}/NNNN.png``
   (0 = unlabelled, 1..40), ``NNNN`` the 1-based frame index of the ``.mat``. Files already
   converted are kept unless ``--overwrite``. Needs h5py (requirements.txt).
2. Writes ``label40_reduced/`` from ``label40/`` (0 = unlabelled -> 255, ``c`` -> ``c - 1``),
   unless ``--skip-reduce``.
3. Writes ``cpp_pairs_{train,test}.txt`` listing every ``image/<split>/*.png`` with its reduced
   label (each checked to exist), and prints each split's count next to the full release's
   (795 / 654): a difference is a warning, an error with ``--strict`` (no pairs file written).

See datasets/README.md.
"""

from __future__ import annotations

import os
import sys
from typing import Dict, Optional

import numpy as np
from _official_formats import LayoutError, check_ids, load_mat_v5, mat_variable, require_file
from _prepare_common import (
    dataset_root,
    missing_files,
    prepare_main,
    progress,
    reduce_zero_label,
    report_sizes,
    save_png,
    write_pairs_file,
)

NYUV2_FOLDER = "nyuv2"
LABELED_MAT = "nyu_depth_v2_labeled.mat"
NYU_HINT = (
    "download nyu_depth_v2_labeled.mat and splits.mat (cs.nyu.edu/~silberman/datasets/"
    "nyu_depth_v2.html) and classMapping40.mat (Gupta et al. 2013, "
    "www.cs.berkeley.edu/~sgupta/cvpr13/) into the nyuv2/ folder"
)


def read_class_mapping(path: str) -> np.ndarray:
    """The table ``t`` with ``t[c]`` = the 40-class id (1..40) of the NYUv2 class ``c`` (1..894)
    and ``t[0] = 0`` (unlabelled), from ``classMapping40.mat`` (MATLAB v5, variable ``mapClass``:
    1 x 894, Gupta et al. 2013, as used by the NYUv2-40 benchmarks). Missing file or variable,
    or values out of 1..40, are errors naming ``path``."""
    mapping = np.asarray(mat_variable(load_mat_v5(path, NYU_HINT), path, "mapClass")).ravel()
    check_ids(mapping, path, range(1, 41), "mapClass holds the 40-class ids 1..40")
    return np.concatenate([[0], mapping]).astype(np.uint8)


def read_splits(path: str, n_frames: int) -> Dict[str, np.ndarray]:
    """``{"train": ..., "test": ...}``: the 1-based frame indices ``trainNdxs`` (795) and
    ``testNdxs`` (654) of ``splits.mat`` (MATLAB v5, column vectors). Missing variables, indices
    outside 1..``n_frames`` or in both splits are errors naming ``path``."""
    mat = load_mat_v5(path, NYU_HINT)
    splits = {}
    for split, var in (("train", "trainNdxs"), ("test", "testNdxs")):
        idx = np.asarray(mat_variable(mat, path, var)).ravel().astype(np.int64)
        check_ids(idx, path, range(1, n_frames + 1), f"{var} holds frames 1..{n_frames}")
        splits[split] = idx
    if np.intersect1d(splits["train"], splits["test"]).size:
        raise LayoutError(f"{path}: trainNdxs and testNdxs share frames")
    return splits


def open_labeled_mat(path: str):
    """``(file, images, labels)`` of ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5, read with
    h5py). MATLAB writes its ``480 x 640 x 3 x 1449`` ``images`` and ``480 x 640 x 1449``
    ``labels`` column-major, so h5py sees ``images`` as ``N x 3 x W x H`` (uint8) and ``labels``
    as ``N x W x H`` (uint16, 0 = unlabelled, 1..894). A file that is not HDF5, lacks either
    dataset or has other shapes is an error naming ``path``."""
    try:
        import h5py
    except ImportError:
        raise ImportError(
            f"reading {path} (MATLAB v7.3) needs h5py: pip install -r requirements.txt"
        ) from None
    require_file(path, NYU_HINT)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise LayoutError(f"{path} is not a MATLAB v7.3 (HDF5) file ({e}): {NYU_HINT}") from None
    try:
        for name in ("images", "labels"):
            if not isinstance(f.get(name), h5py.Dataset):
                raise LayoutError(
                    f"{path} has no dataset '{name}' (found: {', '.join(sorted(f)) or 'none'}): "
                    "is it nyu_depth_v2_labeled.mat?"
                )
        images, labels = f["images"], f["labels"]
        n, _, w, h = images.shape if images.ndim == 4 else (0, 0, 0, 0)
        if images.ndim != 4 or images.shape[1] != 3 or labels.shape != (n, w, h):
            raise LayoutError(
                f"{path}: images {images.shape} and labels {labels.shape} are not N x 3 x W x H "
                "and N x W x H of the same N, W, H (MATLAB H x W x 3 x N and H x W x N)"
            )
    except Exception:
        f.close()
        raise
    return f, images, labels


def convert_nyuv2(droot: str, overwrite: bool = False) -> Dict[str, str]:
    """Write ``image/`` and ``label40/`` under ``droot`` from the official release in it (see
    :func:`open_labeled_mat`, :func:`read_splits`, :func:`read_class_mapping`); returns
    ``{output: source}``. Frame ``k`` (1-based) of split ``s`` becomes ``image/s/kkkk.png``
    (``H x W x 3``) and ``label40/s/kkkk.png``; a label id beyond the mapping is an error naming
    the ``.mat`` and the frame. Existing pairs of PNGs are kept unless ``overwrite``."""
    mapping = read_class_mapping(require_file(os.path.join(droot, "classMapping40.mat"), NYU_HINT))
    mat_path = os.path.join(droot, LABELED_MAT)
    f, images, labels = open_labeled_mat(mat_path)
    with f:
        splits = read_splits(
            require_file(os.path.join(droot, "splits.mat"), NYU_HINT), images.shape[0]
        )
        jobs = []
        for split, frames in splits.items():
            for k in frames:
                img = os.path.join(droot, "image", split, f"{k:04d}.png")
                lab = os.path.join(droot, "label40", split, f"{k:04d}.png")
                if overwrite or not (os.path.exists(img) and os.path.exists(lab)):
                    jobs.append((k, img, lab))
        valid = range(len(mapping))
        for k, img, lab in progress(jobs, f"{LABELED_MAT} -> image/, label40/"):
            full = labels[k - 1].T  # W x H -> H x W
            what = f"0 = unlabelled and the classes 1..{len(mapping) - 1} of classMapping40.mat"
            check_ids(full, f"{mat_path} (labels of frame {k})", valid, what)
            save_png(img, np.ascontiguousarray(images[k - 1].transpose(2, 1, 0)))
            save_png(lab, mapping[full])
    return {os.path.join(droot, "image"): mat_path, os.path.join(droot, "label40"): mat_path}


def prepare_nyuv2(
    root: Optional[str] = None,
    reduce: bool = True,
    overwrite: bool = False,
    strict: bool = False,
    report=None,
) -> Dict[str, str]:
    """Convert the release when ``nyu_depth_v2_labeled.mat`` is present (:func:`convert_nyuv2`),
    reduce the labels (unless ``reduce=False``), check the split sizes
    (``_prepare_common.report_sizes``: 795 / 654; an error with ``strict``, before any pairs
    file is written) and that every label exists, and write the pairs files; returns
    ``{output: source}``."""
    droot = os.path.join(dataset_root(root), NYUV2_FOLDER)
    written = {}
    if os.path.exists(os.path.join(droot, LABELED_MAT)):
        written.update(convert_nyuv2(droot, overwrite))
    if reduce:
        reduce_zero_label(
            os.path.join(droot, "label40"), os.path.join(droot, "label40_reduced"), overwrite
        )
    pairs = {}
    for split in ("train", "test"):
        img_root = os.path.join(droot, "image", split)
        if not os.path.isdir(img_root):
            continue
        ids = sorted(os.path.splitext(f)[0] for f in os.listdir(img_root) if f.endswith(".png"))
        pairs[split] = [f"image/{split}/{i}.png label40_reduced/{split}/{i}.png" for i in ids]
        missing_files(
            droot, pairs[split], f"the images of {img_root} need their labels; {NYU_HINT}"
        )
    if pairs:
        report_sizes(report, "nyuv2", {s: len(lines) for s, lines in pairs.items()}, None, strict)
    for split, lines in pairs.items():
        dst = os.path.join(droot, f"cpp_pairs_{split}.txt")
        write_pairs_file(dst, lines)
        written[dst] = os.path.join(droot, "image", split)
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
