"""Helpers shared by the ``prepare_*.py`` scripts of this folder (not a script itself): the
dataset root, MMSegmentation's ``reduce_zero_label`` and the pairs files the registrations read.

A pairs file lists ``image label`` paths relative to its own folder, one sample a line, as
``seethroughnet.data.datasets.register_folder_semseg(pairs_file=...)`` reads them.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Dict, List, Optional

import numpy as np
from PIL import Image


def dataset_root(root: Optional[str] = None) -> str:
    """``root``, else ``$DETECTRON2_DATASETS``, else ``datasets`` (detectron2's default)."""
    if root is None:
        root = os.getenv("DETECTRON2_DATASETS", "datasets")
    return os.path.expanduser(root)


def reduce_zero_label(src_dir: str, dst_dir: str) -> int:
    """Write every ``*.png`` label under ``src_dir`` to the same relative path under ``dst_dir``
    with 0 -> 255 and ``c -> c - 1`` (MMSegmentation ``reduce_zero_label``; 255 stays 255).
    Returns the number of files; a missing ``src_dir`` is a ``FileNotFoundError`` naming it."""
    if not os.path.isdir(src_dir):
        raise FileNotFoundError(
            f"label folder {src_dir} does not exist: unpack the dataset first "
            "(datasets/README.md, '## Pascal VOC, Pascal Context, NYUv2')"
        )
    n = 0
    for dirpath, _, files in os.walk(src_dir):
        for fn in sorted(files):
            if not fn.endswith(".png"):
                continue
            lab = np.asarray(Image.open(os.path.join(dirpath, fn)))
            out = lab.astype(np.int32) - 1
            out[(lab == 0) | (lab == 255)] = 255
            dst = os.path.join(dst_dir, os.path.relpath(dirpath, src_dir), fn)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            Image.fromarray(out.astype(np.uint8)).save(dst)
            n += 1
    return n


def write_pairs_file(path: str, lines: List[str]) -> None:
    """Write a pairs file (one ``image label`` line per sample)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def pairs_from_split_list(
    droot: str, split_list: str, pairs_name: str, image_dir: str, image_suffix: str, label_dir: str
) -> Optional[str]:
    """Write ``droot/pairs_name`` from the official split list ``droot/split_list`` (bare image
    ids, one a line); returns the pairs file, or ``None`` when the split list is absent."""
    src = os.path.join(droot, split_list)
    if not os.path.isfile(src):
        return None
    with open(src) as f:
        ids = [line.split()[0] for line in f if line.strip()]
    dst = os.path.join(droot, pairs_name)
    write_pairs_file(dst, [f"{image_dir}/{i}{image_suffix} {label_dir}/{i}.png" for i in ids])
    return dst


def prepare_main(
    argv,
    description: str,
    prepare: Callable[..., Dict[str, str]],
    nothing_found: Callable[[str], str],
    skip_reduce_help: Optional[str] = None,
) -> int:
    """The command line of every ``prepare_*.py``: ``--root`` (and ``--skip-reduce`` where the
    script converts labels), then ``prepare(root[, reduce=...])``; prints ``pairs file <- source``
    per file written. Exit 2 with ``error: ...`` when a source is missing (``FileNotFoundError``)
    or invalid (``ValueError``, e.g. a label value outside the label table) or nothing was found
    (``nothing_found(datasets root)`` says what to do)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--root", help="datasets root (default: $DETECTRON2_DATASETS, else datasets)")
    if skip_reduce_help:
        ap.add_argument("--skip-reduce", action="store_true", help=skip_reduce_help)
    args = ap.parse_args(argv)
    kwargs = {"reduce": not args.skip_reduce} if skip_reduce_help else {}
    try:
        written = prepare(args.root, **kwargs)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not written:
        print(f"error: {nothing_found(dataset_root(args.root))}", file=sys.stderr)
        return 2
    for dst, src in written.items():
        print(f"{dst} <- {src}")
    return 0
