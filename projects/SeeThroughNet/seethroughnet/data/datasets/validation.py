"""Load-time validation shared by the SeeThroughNet dataset registrations.

Plain PIL/numpy: nothing here imports detectron2, so the synthetic generator, the dataset
mapper and the tests can use :class:`DatasetError` and :func:`read_label` on their own.

Two validation levels, chosen with the environment variable ``SEETHROUGHNET_VALIDATE``:

``header``
    Folders exist, the split has images, every image has its label file(s) and every label
    file has its image, image and label sizes agree.  Sizes come from the PNG/JPEG headers
    (``PIL.Image.open`` does not decode pixel data), so this costs one small read per file.
    An image's size is the one detectron2's ``read_image`` gives it, i.e. with its EXIF
    orientation tag applied (orientations 5-8 swap width and height; a label is read as stored).
``full`` (default)
    ``header`` plus a full decode of every label file (a truncated or corrupt PNG is an error
    naming the file; every value must be in the dataset's label table) and a CRC/structure
    check (``Image.verify``) of every image.  Decoding runs in a thread pool (PIL's decoders
    release the GIL) and its result -- a per-value pixel histogram -- is cached per file,
    keyed by (path, size, mtime), so a second load of an unchanged dataset decodes nothing.

The cache is one small JSON file per dataset root under
``$SEETHROUGHNET_CACHE_DIR`` (default ``$XDG_CACHE_HOME/seethroughnet/dataset_validation``,
i.e. ``~/.cache/seethroughnet/dataset_validation``); it is written atomically, so concurrent
loaders (one per DDP rank) never see a half-written cache.  Dataset roots are not written to:
they are often read-only or shared.  ``SEETHROUGHNET_CACHE_DIR=off`` disables the cache.

This module checks lists of samples (:func:`validate_samples`); reading and decoding single
files is :mod:`.label_files`, the cache :mod:`.validation_cache`.  Their public names are
re-exported here.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .label_files import (
    LABEL_MODES,
    DatasetError,
    LabelTable,
    bad_value_message,
    check_label_mode,
    decode_label_file,
    exif_orientation_note,
    format_values,
    read_header,
    read_image_header,
    read_label,
    verify_image_file,
)
from .validation_cache import ValidationCache, cache_dir

__all__ = [
    "DatasetError",
    "LabelTable",
    "LabelFile",
    "Sample",
    "ValidationResult",
    "validation_mode",
    "read_header",
    "read_label",
    "label_histograms",
    "validate_samples",
    "format_values",
    "raise_problems",
    "run_parallel",
    "split_file_errors",
    "cache_dir",
    "LABEL_MODES",
]

logger = logging.getLogger(__name__)

VALIDATE_ENV = "SEETHROUGHNET_VALIDATE"
WORKERS_ENV = "SEETHROUGHNET_VALIDATE_WORKERS"
PROGRESS_ENV = "SEETHROUGHNET_VALIDATE_PROGRESS"
MODES = ("header", "full")
# How many offending files one error message lists before it says "and N more".
_MAX_LISTED = 8


# --------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------
def validation_mode(mode: Optional[str] = None) -> str:
    """The validation level: ``mode`` if given, else ``$SEETHROUGHNET_VALIDATE``, else full."""
    if mode is None:
        mode = os.environ.get(VALIDATE_ENV, "").strip() or "full"
    mode = mode.lower()
    if mode not in MODES:
        raise DatasetError(
            f"{VALIDATE_ENV}={mode!r} is not a validation mode; use one of {', '.join(MODES)} "
            "(header: folders, pairing and sizes only; full: also decode every label file)."
        )
    return mode


def _num_workers() -> int:
    env = os.environ.get(WORKERS_ENV)
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    # Decoding is CPU bound (GIL released), reading is I/O bound: a few more threads than
    # cores keeps both busy without oversubscribing small machines much.
    return max(2, min(16, (os.cpu_count() or 2) + 2))


# --------------------------------------------------------------------------------------
# validating a list of samples
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelFile:
    """One label file of a sample and the values it may hold."""

    path: str
    table: Optional[LabelTable] = None
    allowed_modes: Tuple[str, ...] = LABEL_MODES


@dataclass
class Sample:
    """An image, its label files, and optionally the size another source (a JSON) claims."""

    image: str
    labels: Tuple[LabelFile, ...] = ()
    expected_size: Optional[Tuple[int, int]] = None  # (width, height)
    expected_size_source: str = ""


@dataclass
class ValidationResult:
    mode: str
    sizes: Dict[str, Tuple[int, int]] = field(default_factory=dict)  # image path -> (w, h)
    histograms: Dict[str, Dict[int, int]] = field(default_factory=dict)  # label path -> hist
    decoded: int = 0  # label files decoded (not served from the cache)
    seconds: float = 0.0


def raise_problems(dataset: str, problems: List[str], what: str, todo: str = "") -> None:
    """Raise one DatasetError listing ``problems`` (one line per file), if there are any."""
    if not problems:
        return
    head = f"Dataset '{dataset}': {what}"
    if len(problems) == 1:
        msg = f"{head}: {problems[0]}"
    else:
        listed = "\n  - ".join(problems[:_MAX_LISTED])
        more = (
            f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        )
        msg = f"{head} ({len(problems)} files):\n  - {listed}{more}"
    if todo:
        msg += "\n" + todo
    raise DatasetError(msg)


def _progress_enabled(progress: Optional[bool], n_work: int) -> bool:
    if progress is not None:
        return progress
    env = os.environ.get(PROGRESS_ENV)
    if env is not None:
        return env.strip().lower() not in ("", "0", "off", "no", "false")
    return n_work >= 500 and sys.stderr.isatty()


def split_file_errors(results: Sequence) -> Tuple[List[str], List[str]]:
    """The :class:`DatasetError` messages among ``results`` (as :func:`run_parallel` returns
    them), split into (unreadable: missing / truncated / corrupt files, label values outside the
    label table)."""
    errors = [str(r) for r in results if isinstance(r, DatasetError)]
    bad_values = [e for e in errors if " holds value" in e]
    unreadable = [e for e in errors if " holds value" not in e]
    return unreadable, bad_values


def run_parallel(
    fn, items: Sequence, desc: str, progress: bool, workers: Optional[int] = None
) -> List:
    """``[fn(x) for x in items]`` on a thread pool (``workers`` threads, default the validation
    pool size); a :class:`DatasetError` is returned in place of its result, not raised."""

    def safe(x):
        try:
            return fn(x)
        except DatasetError as e:
            return e

    if not items:
        return []
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(items), desc=desc, unit="file", dynamic_ncols=True)
        except ImportError:  # pragma: no cover
            bar = None
    results: List = [None] * len(items)
    workers = min(_num_workers() if workers is None else workers, len(items))
    if workers <= 1:
        for i, x in enumerate(items):
            results[i] = safe(x)
            if bar is not None:
                bar.update(1)
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="validate") as ex:
            futures = {ex.submit(safe, x): i for i, x in enumerate(items)}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    return results


def validate_samples(
    samples: Sequence[Sample],
    *,
    dataset: str,
    root: str,
    mode: Optional[str] = None,
    progress: Optional[bool] = None,
    use_cache: bool = True,
) -> ValidationResult:
    """Check the files of already-paired samples (pairing itself is the caller's job).

    Header level: every image and label header is readable; each label has its image's
    size (and ``expected_size`` where given).  Full level: additionally every label file is
    decoded and its values checked against its :class:`LabelTable`, and every image file's
    structure is verified.  Problems are collected over the whole dataset and raised as one
    :class:`DatasetError` listing the offending files.

    Args:
        root: the dataset root (keys the cache; files are named by the paths given).
    """
    mode = validation_mode(mode)
    t0 = time.perf_counter()
    res = ValidationResult(mode=mode)

    # ---- headers: sizes agree -------------------------------------------------------
    def header_job(s: Sample):
        # the size detectron2's read_image gives: EXIF orientation applied
        w, h, _, orientation = read_image_header(s.image, "image")
        turned = exif_orientation_note(orientation, w, h)
        fix = (
            " Rotate the image's pixels and drop the tag (PIL.ImageOps.exif_transpose), or "
            "rotate the label to match."
            if turned
            else ""
        )
        problems = []
        for lf in s.labels:
            lw, lh, lmode = read_header(lf.path, "label")
            check_label_mode(lf.path, lmode, lf.allowed_modes)
            if (lw, lh) != (w, h):
                if turned:
                    problems.append(
                        f"image {s.image} is {w}x{h} (WxH){turned}, but its label {lf.path} is "
                        f"{lw}x{lh}; a label file must have exactly its image's size.{fix}"
                    )
                else:
                    problems.append(
                        f"{lf.path} is {lw}x{lh} (WxH) but its image {s.image} is {w}x{h}; "
                        "a label file must have exactly its image's size."
                    )
        if s.expected_size is not None and tuple(s.expected_size) != (w, h):
            ew, eh = s.expected_size
            problems.append(
                f"{s.image} is {w}x{h} (WxH){turned} but "
                f"{s.expected_size_source or 'its annotation'} says {ew}x{eh}.{fix}"
            )
        return (w, h), problems

    show = _progress_enabled(progress, len(samples) * 2 if mode == "full" else 0)
    out = run_parallel(header_job, samples, f"{dataset}: headers", show and mode == "full")
    unreadable = [str(r) for r in out if isinstance(r, DatasetError)]
    raise_problems(dataset, unreadable, "unreadable or wrong-format files")
    mismatched = [p for r in out for p in r[1]]
    for s, r in zip(samples, out):
        res.sizes[s.image] = r[0]
    raise_problems(
        dataset,
        mismatched,
        "image and label sizes disagree",
        "Labels must be pixel-aligned with their images: re-export the labels at the image "
        "resolution (resize with nearest-neighbour), or fix the pairing.",
    )
    if mode == "header":
        res.seconds = time.perf_counter() - t0
        return res

    # ---- full: decode labels, verify images (cached) --------------------------------
    cache = ValidationCache(root) if use_cache else None
    jobs: List[Tuple[str, str, Optional[LabelFile]]] = []  # (kind, path, labelfile)
    for s in samples:
        jobs.append(("image", s.image, None))
        for lf in s.labels:
            jobs.append(("label", lf.path, lf))
    counter = {"decoded": 0}
    counter_lock = threading.Lock()

    def full_job(job):
        kind, path, lf = job
        try:
            st = os.stat(path)
        except OSError:
            raise DatasetError(f"{kind} file {path} does not exist.") from None
        if kind == "image":
            if cache is not None and cache.get(path, st, "verified"):
                return None
            verify_image_file(path)
            if cache is not None:
                cache.put(path, st, verified=True)
            return None
        entry = None
        if cache is not None:
            hist = cache.get(path, st, "hist")
            if hist is not None:
                entry = {"hist": {int(k): v for k, v in hist.items()}}
        if entry is None:
            entry = decode_label_file(path, lf.allowed_modes)
            with counter_lock:
                counter["decoded"] += 1
            if cache is not None:
                # JSON keys are strings; store them so, convert back on read.
                cache.put(path, st, hist={str(k): v for k, v in entry["hist"].items()})
        hist = entry["hist"]
        if lf.table is not None:
            msg = bad_value_message(path, lf.table, hist)
            if msg:
                raise DatasetError(msg)
        return hist

    n_uncached = len(jobs)
    if cache is not None:
        n_uncached = 0
        for kind, path, _ in jobs:
            try:
                st = os.stat(path)
            except OSError:
                n_uncached += 1
                continue
            if cache.get(path, st, "verified" if kind == "image" else "hist") is None:
                n_uncached += 1
    show = _progress_enabled(progress, n_uncached)
    try:
        out = run_parallel(full_job, jobs, f"{dataset}: checking files", show)
    finally:
        if cache is not None:
            cache.save()
    corrupt, bad_values = split_file_errors(out)
    raise_problems(dataset, corrupt, "truncated or corrupt files")
    raise_problems(dataset, bad_values, "label values outside the label table")
    for (kind, path, _), r in zip(jobs, out):
        if kind == "label":
            res.histograms[path] = r
    res.decoded = counter["decoded"]
    res.seconds = time.perf_counter() - t0
    logger.info(
        "Dataset '%s': validated %d images (%s, %d label files decoded, rest cached) in %.1fs",
        dataset,
        len(samples),
        mode,
        res.decoded,
        res.seconds,
    )
    return res


def label_histograms(
    paths: Sequence[str], root: str, progress: Optional[bool] = None
) -> Dict[str, Dict[int, int]]:
    """Per-file value histograms of label files (from the validation cache where possible)."""
    cache = ValidationCache(root)
    result: Dict[str, Dict[int, int]] = {}
    todo = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            raise DatasetError(f"label file {p} does not exist.") from None
        h = cache.get(p, st, "hist")
        if h is not None:
            result[p] = {int(k): v for k, v in h.items()}
        else:
            todo.append((p, st))

    def job(item):
        p, st = item
        e = decode_label_file(p)
        cache.put(p, st, hist={str(k): v for k, v in e["hist"].items()})
        return e["hist"]

    out = run_parallel(job, todo, "label histograms", _progress_enabled(progress, len(todo)))
    cache.save()
    for (p, _), r in zip(todo, out):
        if isinstance(r, DatasetError):
            raise r
        result[p] = r
    return result
