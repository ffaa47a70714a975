"""Load-time validation shared by the SeeThroughNet dataset registrations.

Plain PIL/numpy: nothing here imports detectron2, so the synthetic generator, the dataset
mapper and the tests can use :class:`DatasetError` and :func:`read_label` on their own.

Two validation levels, chosen with the environment variable ``SEETHROUGHNET_VALIDATE``:

``header``
    Folders exist, the split has images, every image has its label file(s) and every label
    file has its image, image and label sizes agree.  Sizes come from the PNG/JPEG headers
    (``PIL.Image.open`` does not decode pixel data), so this costs one small read per file.
``full`` (default)
    ``header`` plus a full decode of every label file (a truncated or corrupt PNG is an error
    naming the file; every value must be in the dataset's label table) and a CRC/structure
    check (``Image.verify``) of every image.  Decoding runs in a thread pool (PIL's decoders
    release the GIL) and its result -- a per-value pixel histogram -- is cached per file,
    keyed by (path, size, mtime), so a second load of an unchanged dataset decodes nothing.

The cache is one small JSON file per dataset root under
``$SEETHROUGHNET_CACHE_DIR`` (default ``$XDG_CACHE_HOME/seethroughnet/dataset_validation``,
i.e. ``~/.cache/seethroughnet/dataset_validation``); it is written to a temporary file and
renamed, so concurrent loaders (one per DDP rank) never see a half-written cache.  Dataset
roots are not written to: they are often read-only or shared.  ``SEETHROUGHNET_CACHE_DIR=off``
disables the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageFile

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
    "cache_dir",
]

logger = logging.getLogger(__name__)

VALIDATE_ENV = "SEETHROUGHNET_VALIDATE"
CACHE_ENV = "SEETHROUGHNET_CACHE_DIR"
WORKERS_ENV = "SEETHROUGHNET_VALIDATE_WORKERS"
PROGRESS_ENV = "SEETHROUGHNET_VALIDATE_PROGRESS"
MODES = ("header", "full")
_CACHE_VERSION = 1
# How many offending files one error message lists before it says "and N more".
_MAX_LISTED = 8

# Single-channel modes a label PNG may have.  "P" (palette) images hold indices, which is
# what a label map is; 16/32-bit modes are accepted (e.g. Cityscapes *_instanceIds.png)
# and then the value check decides.
LABEL_MODES = ("L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N")


class DatasetError(ValueError):
    """A dataset on disk is missing, incomplete or malformed.

    The message names the file (or folder) involved, says what is wrong with it and what
    to do about it.  Raised when a registered dataset is loaded (``DatasetCatalog.get``),
    and by :func:`read_label` when a label file cannot be used.
    """


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


def cache_dir() -> Optional[str]:
    """Folder of the validation cache, or None when caching is disabled."""
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        if env.strip().lower() in ("", "0", "off", "none", "false", "no"):
            return None
        return os.path.expanduser(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "seethroughnet", "dataset_validation")


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
# label tables
# --------------------------------------------------------------------------------------
def format_values(values: Iterable[int]) -> str:
    """``[0, 1, 2, 3, 255]`` -> ``"0-3, 255"``."""
    vals = sorted(set(int(v) for v in values))
    parts: List[str] = []
    i = 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        if j == i:
            parts.append(str(vals[i]))
        elif j == i + 1:
            parts.extend([str(vals[i]), str(vals[j])])
        else:
            parts.append(f"{vals[i]}-{vals[j]}")
        i = j + 1
    return ", ".join(parts)


class LabelTable:
    """The values a label file may hold.

    Args:
        values: the allowed values (class indices plus the ignore value), or None with
            ``predicate``.
        predicate: alternatively, a vectorised test ``f(np.ndarray of values) -> bool mask``
            (used for encodings such as Cityscapes instanceIds).
        description: completes "holds value 37, which is not ..." -- e.g.
            ``"a trainId of the Cityscapes label table (0-18, 255)"``.
        fix: what to do about a bad value (appended to the error message).
    """

    def __init__(
        self,
        values: Optional[Iterable[int]] = None,
        *,
        predicate: Optional[Callable[[np.ndarray], np.ndarray]] = None,
        description: Optional[str] = None,
        fix: str = "",
    ):
        if (values is None) == (predicate is None):
            raise ValueError("LabelTable needs exactly one of values= or predicate=")
        self.values = None if values is None else frozenset(int(v) for v in values)
        self.predicate = predicate
        if description is None:
            if self.values is None:
                raise ValueError("LabelTable(predicate=...) needs a description")
            description = f"in the label table ({format_values(self.values)})"
        self.description = description
        self.fix = fix

    def invalid(self, present: np.ndarray) -> np.ndarray:
        """The values among ``present`` (1-d array of distinct values) that are not allowed."""
        present = np.asarray(present, dtype=np.int64)
        if self.values is not None:
            ok = np.isin(present, np.fromiter(self.values, dtype=np.int64, count=len(self.values)))
        else:
            ok = np.asarray(self.predicate(present), dtype=bool)
        return present[~ok]

    def __repr__(self) -> str:
        return f"LabelTable({self.description!r})"


def _as_table(valid_values) -> Optional[LabelTable]:
    if valid_values is None or isinstance(valid_values, LabelTable):
        return valid_values
    return LabelTable(valid_values)


def _bad_value_message(path: str, table: LabelTable, hist: Dict[int, int]) -> Optional[str]:
    present = np.fromiter(hist.keys(), dtype=np.int64, count=len(hist))
    bad = sorted(int(v) for v in table.invalid(present))
    if not bad:
        return None
    pixels = sum(hist[v] for v in bad)
    shown = ", ".join(str(v) for v in bad[:20]) + (f", ... ({len(bad)} values)" if len(bad) > 20 else "")
    verb = "is" if len(bad) == 1 else "are"
    msg = (
        f"{path} holds value{'s' if len(bad) > 1 else ''} {shown}, which {verb} not "
        f"{table.description} ({pixels} pixel{'s' if pixels != 1 else ''})."
    )
    if table.fix:
        msg += " " + table.fix
    return msg


# --------------------------------------------------------------------------------------
# reading files
# --------------------------------------------------------------------------------------
def read_header(path: str, what: str = "image") -> Tuple[int, int, str]:
    """``(width, height, mode)`` of an image file, read from its header only (no decode)."""
    try:
        with Image.open(path) as im:
            return im.size[0], im.size[1], im.mode
    except FileNotFoundError:
        raise DatasetError(f"{what} file {path} does not exist.") from None
    except IsADirectoryError:
        raise DatasetError(f"{what} file {path} is a folder, not an image file.") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise DatasetError(
            f"{what} file {path} is not a readable image ({type(e).__name__}: {e}); "
            "it is probably truncated or corrupt: re-download / re-generate it."
        ) from None


def _check_label_mode(path: str, mode: str, allowed: Sequence[str]) -> None:
    if mode in allowed:
        return
    hint = ""
    if mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr"):
        hint = (
            " Label files must be single-channel maps of class indices; a colour image is "
            "usually a visualisation (e.g. *_gtFine_color.png), not the label file."
        )
    raise DatasetError(
        f"{path} is a mode-{mode} image, but a label file must be single-channel "
        f"(PIL mode {' or '.join(allowed)}).{hint}"
    )


def _decode(path: str, allowed_modes: Sequence[str] = LABEL_MODES, want: str = "array"):
    """Fully decode a label image; every failure is a DatasetError naming the file.

    ``want``: ``"array"`` -> the 2-d array; ``"hist"`` -> ``(width, height, {value: count})``;
    ``"both"`` -> ``(array, {value: count})``.  For 8-bit images the histogram comes from PIL
    (``Image.histogram``), which avoids numpy's int64 temporaries (a 16 MB cast per
    1024x2048 label for ``np.bincount``).
    """
    try:
        if ImageFile.LOAD_TRUNCATED_IMAGES:
            # Someone allowed PIL to pad truncated files silently; verify the file first.
            with Image.open(path) as im:
                im.verify()
        with Image.open(path) as im:
            _check_label_mode(path, im.mode, allowed_modes)
            im.load()
            hist = None
            if want != "array" and im.mode in ("L", "P"):
                hist = {v: int(c) for v, c in enumerate(im.histogram()) if c}
                if want == "hist":
                    return im.size[0], im.size[1], hist
            arr = np.array(im)
    except DatasetError:
        raise
    except FileNotFoundError:
        raise DatasetError(f"label file {path} does not exist.") from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error) as e:
        raise DatasetError(
            f"label file {path} cannot be decoded ({type(e).__name__}: {e}); the file is "
            "truncated or corrupt: re-download / re-generate it (for the synthetic set: "
            "`python datasets/prepare_synthetic_cityscapes.py --overwrite`)."
        ) from None
    if arr.ndim != 2:
        raise DatasetError(f"{path} decodes to an array of shape {arr.shape}; a label file must be 2-d.")
    if want == "array":
        return arr
    if hist is None:
        hist = _histogram(arr)
    if want == "hist":
        return arr.shape[1], arr.shape[0], hist
    return arr, hist


def _histogram(arr: np.ndarray) -> Dict[int, int]:
    flat = arr.ravel()
    if flat.size == 0:
        return {}
    if arr.dtype == np.uint8:
        counts = np.bincount(flat, minlength=256)
        nz = np.flatnonzero(counts)
        return {int(v): int(counts[v]) for v in nz}
    lo, hi = int(flat.min()), int(flat.max())
    if lo >= 0 and hi < (1 << 20):
        counts = np.bincount(flat.astype(np.int64, copy=False))
        nz = np.flatnonzero(counts)
        return {int(v): int(counts[v]) for v in nz}
    vals, counts = np.unique(flat, return_counts=True)
    return {int(v): int(c) for v, c in zip(vals, counts)}


def _decode_label_file(path: str, allowed_modes: Sequence[str] = LABEL_MODES) -> dict:
    """Decode one label file -> ``{"w", "h", "mode", "hist"}``.  (Tests count calls.)"""
    w, h, hist = _decode(path, allowed_modes, want="hist")
    return {"w": int(w), "h": int(h), "hist": hist}


def _verify_image_file(path: str) -> None:
    """Check an image file's structure (PNG: every chunk's CRC, up to IEND) without decoding."""
    try:
        with Image.open(path) as im:
            im.verify()
    except FileNotFoundError:
        raise DatasetError(f"image file {path} does not exist.") from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error) as e:
        raise DatasetError(
            f"image file {path} is truncated or corrupt ({type(e).__name__}: {e}): "
            "re-download / re-generate it."
        ) from None


def read_label(
    path: str,
    valid_values: Union[None, LabelTable, Iterable[int]] = None,
    allowed_modes: Sequence[str] = LABEL_MODES,
) -> np.ndarray:
    """Decode a label PNG for training/evaluation, checking it on the way.

    Args:
        path: the label file.
        valid_values: a :class:`LabelTable` or an iterable of allowed values (class indices
            and the ignore value); None skips the value check.
        allowed_modes: PIL modes accepted (single-channel by default).

    Returns:
        a 2-d array of the stored values: uint8 for 8-bit/palette PNGs, the PNG's integer
        dtype (uint16/int32) for 16/32-bit ones.

    Raises:
        DatasetError: naming ``path``, for a missing, truncated or corrupt file, a
            multi-channel image, or values outside ``valid_values``.
    """
    table = _as_table(valid_values)
    if table is None:
        return _decode(path, allowed_modes)
    arr, hist = _decode(path, allowed_modes, want="both")
    msg = _bad_value_message(path, table, hist)
    if msg:
        raise DatasetError(msg)
    return arr


# --------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------
class _ValidationCache:
    """Per-file results of the full check for one dataset root, keyed by (path, size, mtime)."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        d = cache_dir()
        self.path = None
        if d is not None:
            digest = hashlib.sha1(self.root.encode("utf-8")).hexdigest()[:16]
            self.path = os.path.join(d, f"{os.path.basename(self.root) or 'root'}-{digest}.json")
        self.files: Dict[str, dict] = self._read() if self.path else {}
        self._new: Dict[str, dict] = {}
        self._lock = threading.Lock()

    def _read(self) -> Dict[str, dict]:
        try:
            with open(self.path, "r") as f:
                data = json.load(f)
            if data.get("version") == _CACHE_VERSION and data.get("root") == self.root:
                return dict(data.get("files", {}))
        except (OSError, ValueError, AttributeError):
            pass
        return {}

    def _key(self, path: str) -> str:
        p = os.path.abspath(path)
        rel = os.path.relpath(p, self.root)
        return p if rel.startswith("..") else rel

    def get(self, path: str, st: os.stat_result, field: str):
        e = self.files.get(self._key(path))
        if e and e.get("size") == st.st_size and e.get("mtime_ns") == st.st_mtime_ns and field in e:
            return e[field]
        return None

    def put(self, path: str, st: os.stat_result, **fields) -> None:
        key = self._key(path)
        with self._lock:
            e = self.files.get(key)
            if not e or e.get("size") != st.st_size or e.get("mtime_ns") != st.st_mtime_ns:
                e = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
            e = dict(e, **fields)
            self.files[key] = e
            self._new[key] = e

    def save(self) -> None:
        if not self.path or not self._new:
            return
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            merged = self._read()  # keep what other processes added meanwhile
            merged.update(self._new)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=os.path.dirname(self.path))
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump({"version": _CACHE_VERSION, "root": self.root, "files": merged}, f)
                os.chmod(tmp, 0o644)  # mkstemp creates 0600
                os.replace(tmp, self.path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
            self._new = {}
        except OSError as e:
            logger.warning("Could not write the dataset validation cache %s: %s", self.path, e)


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
        more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
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


def run_parallel(fn, items: Sequence, desc: str, progress: bool, workers: Optional[int] = None) -> List:
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
            from concurrent.futures import as_completed

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
        w, h, _ = read_header(s.image, "image")
        problems = []
        for lf in s.labels:
            lw, lh, lmode = read_header(lf.path, "label")
            _check_label_mode(lf.path, lmode, lf.allowed_modes)
            if (lw, lh) != (w, h):
                problems.append(
                    f"{lf.path} is {lw}x{lh} (WxH) but its image {s.image} is {w}x{h}; "
                    "a label file must have exactly its image's size."
                )
        if s.expected_size is not None and tuple(s.expected_size) != (w, h):
            ew, eh = s.expected_size
            problems.append(
                f"{s.image} is {w}x{h} (WxH) but {s.expected_size_source or 'its annotation'} "
                f"says {ew}x{eh}."
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
    cache = _ValidationCache(root) if use_cache else None
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
            _verify_image_file(path)
            if cache is not None:
                cache.put(path, st, verified=True)
            return None
        entry = None
        if cache is not None:
            hist = cache.get(path, st, "hist")
            if hist is not None:
                entry = {"hist": {int(k): v for k, v in hist.items()}}
        if entry is None:
            entry = _decode_label_file(path, lf.allowed_modes)
            with counter_lock:
                counter["decoded"] += 1
            if cache is not None:
                # JSON keys are strings; store them so, convert back on read.
                cache.put(path, st, hist={str(k): v for k, v in entry["hist"].items()})
        hist = entry["hist"]
        if lf.table is not None:
            msg = _bad_value_message(path, lf.table, hist)
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
        dataset, len(samples), mode, res.decoded, res.seconds,
    )
    return res


def label_histograms(
    paths: Sequence[str], root: str, progress: Optional[bool] = None
) -> Dict[str, Dict[int, int]]:
    """Per-file value histograms of label files (from the validation cache where possible)."""
    cache = _ValidationCache(root)
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
        e = _decode_label_file(p)
        cache.put(p, st, hist={str(k): v for k, v in e["hist"].items()})
        return e["hist"]

    out = run_parallel(job, todo, "label histograms", _progress_enabled(progress, len(todo)))
    cache.save()
    for (p, _), r in zip(todo, out):
        if isinstance(r, DatasetError):
            raise r
        result[p] = r
    return result
