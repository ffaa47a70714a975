"""Helpers shared by the ``prepare_*.py`` scripts of this folder (not a script itself): the
dataset root, MMSegmentation's ``reduce_zero_label``, the pairs files the registrations read, and
the command line.

A pairs file lists ``image label`` paths relative to its own folder, one sample a line, as
``seethroughnet.data.datasets.register_folder_semseg(pairs_file=...)`` reads them. Every file is
written through ``seethroughnet.utils.atomic`` (whole or not at all), so an interrupted run leaves
no half-written PNG or list behind and a re-run picks up where it stopped.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

try:
    from seethroughnet.utils.atomic import atomic_path, write_text_atomic
except ImportError:  # not installed: use the source tree next to this script
    sys.path.insert(
        0,
        os.path.join(
            os.path.dirname(os.path.abspath(__file__)), os.pardir, "projects", "SeeThroughNet"
        ),
    )
    from seethroughnet.utils.atomic import atomic_path, write_text_atomic
from _split_sizes import check_split_sizes, refuse_mismatch

__all__ = [
    "atomic_path",
    "dataset_root",
    "missing_files",
    "report_sizes",
    "pairs_from_split_list",
    "prepare_main",
    "progress",
    "reduce_zero_label",
    "save_png",
    "write_pairs_file",
    "write_text_atomic",
]


def dataset_root(root: Optional[str] = None) -> str:
    """``root``, else ``$DETECTRON2_DATASETS``, else ``datasets`` (detectron2's default)."""
    if root is None:
        root = os.getenv("DETECTRON2_DATASETS", "datasets")
    return os.path.expanduser(root)


def progress(items: Iterable, desc: str, total: Optional[int] = None) -> Iterable:
    """``items`` behind a tqdm progress bar on stderr (shown on a terminal only)."""
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, unit="file", disable=None)


def save_png(path: str, array: np.ndarray) -> None:
    """Write ``array`` (``H x W`` uint8 class indices or ``H x W x 3`` RGB) as a PNG at ``path``,
    atomically (folders created)."""
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def reduce_zero_label(src_dir: str, dst_dir: str, overwrite: bool = False) -> int:
    """Write every ``*.png`` label under ``src_dir`` to the same relative path under ``dst_dir``
    with 0 -> 255 and ``c -> c - 1`` (MMSegmentation ``reduce_zero_label``; 255 stays 255).
    Existing outputs are kept unless ``overwrite``. Returns the number of files written; a
    missing ``src_dir`` is a ``FileNotFoundError`` naming it."""
    if not os.path.isdir(src_dir):
        raise FileNotFoundError(
            f"label folder {src_dir} does not exist: unpack the dataset first "
            "(datasets/README.md, '## Pascal VOC, Pascal Context, NYUv2')"
        )
    jobs = []
    for dirpath, _, files in os.walk(src_dir):
        for fn in sorted(files):
            dst = os.path.join(dst_dir, os.path.relpath(dirpath, src_dir), fn)
            if fn.endswith(".png") and (overwrite or not os.path.exists(dst)):
                jobs.append((os.path.join(dirpath, fn), dst))
    for src, dst in progress(jobs, f"reduce_zero_label -> {dst_dir}"):
        lab = np.asarray(Image.open(src))
        out = lab.astype(np.int32) - 1
        out[(lab == 0) | (lab == 255)] = 255
        save_png(dst, out.astype(np.uint8))
    return len(jobs)


def write_pairs_file(path: str, lines: List[str]) -> None:
    """Write a pairs file (one ``image label`` line per sample), atomically."""
    write_text_atomic(path, "\n".join(lines) + "\n")


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


def missing_files(droot: str, lines: Sequence[str], what_to_do: str) -> None:
    """``FileNotFoundError`` naming the files of the pairs ``lines`` (``image label``, relative
    to ``droot``) that do not exist (the first five and how many), and ``what_to_do``."""
    missing = [
        os.path.join(droot, rel) for line in lines for rel in line.split()
        if not os.path.isfile(os.path.join(droot, rel))
    ]  # fmt: skip
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise FileNotFoundError(
            f"{len(missing)} listed file(s) do not exist: {shown}: {what_to_do}"
        )


#: what :func:`report_sizes` collected for :func:`prepare_main`: ``(dataset, counts, source)``
SizeReport = List[Tuple[str, Dict[str, int], Optional[str]]]


def report_sizes(
    report: Optional[SizeReport],
    dataset: str,
    counts: Dict[str, int],
    source: Optional[str] = None,
    strict: bool = False,
) -> None:
    """The count check of a preparation, called before it writes the pairs files: with
    ``strict``, a mismatch with the known sizes (``_split_sizes.KNOWN_SIZES``) is a
    ``SplitSizeError`` now (so no pairs file is written); then the table of ``counts`` is printed
    now with one ``SplitSizeWarning`` per mismatch (``report`` is ``None``: a call from Python),
    or kept in ``report`` for :func:`prepare_main` to print last."""
    if strict:
        refuse_mismatch(dataset, counts, source)
    if report is None:
        check_split_sizes(dataset, counts, source)
    else:
        report.append((dataset, dict(counts), source))


def prepare_main(
    argv,
    description: str,
    prepare: Callable[..., Dict[str, str]],
    nothing_found: Callable[[str], str],
    skip_reduce_help: Optional[str] = None,
    flags: Sequence[Tuple[str, str, str]] = (),
) -> int:
    """The command line of every ``prepare_*.py``: ``--root``, ``--overwrite``, ``--strict`` (and
    ``--skip-reduce`` where the script converts labels, and the ``(flag, keyword, help)``
    switches of ``flags``), then ``prepare(root, overwrite=..., strict=..., report=...[,
    reduce=...])``; prints ``output <- source`` per file or folder written, then the image count
    of every split written next to the known size (``_split_sizes``); warnings (a count that
    differs, a split source other than MMSegmentation's) go to stderr as ``warning: ...``. Exit 2
    with ``error: ...`` when a source is missing (``FileNotFoundError``), has the wrong layout or
    a count differs under ``--strict`` (``ValueError``), a reader is not installed
    (``ImportError``) or nothing was found (``nothing_found(datasets root)`` says what to do)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--root", help="datasets root (default: $DETECTRON2_DATASETS, else datasets)")
    ap.add_argument(
        "--overwrite",
        action="store_true",
        help="convert again the files already converted (default: keep them)",
    )
    ap.add_argument(
        "--strict",
        action="store_true",
        help="an image count other than the full release's is an error (default: a warning)",
    )
    if skip_reduce_help:
        ap.add_argument("--skip-reduce", action="store_true", help=skip_reduce_help)
    for flag, _, help_text in flags:
        ap.add_argument(flag, action="store_true", help=help_text)
    args = ap.parse_args(argv)
    report: SizeReport = []
    kwargs = {"overwrite": args.overwrite, "strict": args.strict, "report": report}
    if skip_reduce_help:
        kwargs["reduce"] = not args.skip_reduce
    for flag, keyword, _ in flags:
        kwargs[keyword] = getattr(args, flag.lstrip("-").replace("-", "_"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            written = prepare(args.root, **kwargs)
        except (FileNotFoundError, ValueError, ImportError) as e:
            _print_warnings(caught)
            print(f"error: {e}", file=sys.stderr)
            return 2
        if not written:
            _print_warnings(caught)
            print(f"error: {nothing_found(dataset_root(args.root))}", file=sys.stderr)
            return 2
        for dst, src in written.items():
            print(f"{dst} <- {src}")
        for dataset, counts, source in report:
            check_split_sizes(dataset, counts, source)
    _print_warnings(caught)
    return 0


#: the modules whose warnings a preparation prints as ``warning: ...`` (``__main__``: a script run
#: as ``python datasets/prepare_*.py`` defines its warning classes there)
_OWN_WARNING_MODULES = ("__main__", "_split_sizes", "prepare_")


def _print_warnings(caught) -> None:
    """The preparation's own warnings of a run as ``warning: <message>`` lines on stderr; any
    other warning as Python shows it."""
    for w in caught:
        if w.category.__module__.startswith(_OWN_WARNING_MODULES):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
