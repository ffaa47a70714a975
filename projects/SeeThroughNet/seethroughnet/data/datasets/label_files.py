"""Reading dataset files for validation: image headers, label PNGs (decoded and checked
against a :class:`LabelTable`), and :class:`DatasetError`, the one error every problem ends in.

Plain PIL/numpy: nothing here imports detectron2, so the synthetic generator, the dataset
mapper and the tests can use :class:`DatasetError` and :func:`read_label` on their own.
"""

from __future__ import annotations

import zlib
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageFile

__all__ = [
    "DatasetError",
    "LABEL_MODES",
    "LabelTable",
    "format_values",
    "read_header",
    "read_image_header",
    "read_label",
    "decode_label_file",
    "verify_image_file",
]

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


def as_table(valid_values) -> Optional[LabelTable]:
    """``valid_values`` as a :class:`LabelTable` (``None`` stays ``None``)."""
    if valid_values is None or isinstance(valid_values, LabelTable):
        return valid_values
    return LabelTable(valid_values)


def bad_value_message(path: str, table: LabelTable, hist: Dict[int, int]) -> Optional[str]:
    """The error message for the values of ``hist`` outside ``table``, or ``None``."""
    present = np.fromiter(hist.keys(), dtype=np.int64, count=len(hist))
    bad = sorted(int(v) for v in table.invalid(present))
    if not bad:
        return None
    pixels = sum(hist[v] for v in bad)
    shown = ", ".join(str(v) for v in bad[:20])
    if len(bad) > 20:
        shown += f", ... ({len(bad)} values)"
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


_EXIF_ORIENTATION = 0x0112
# The EXIF orientations that detectron2's read_image turns into a transpose or a 90-degree
# rotation (detection_utils._apply_exif_orientation: 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE,
# 8 ROTATE_90), i.e. the ones that swap width and height; 2-4 are flips and 180-degree turns.
_SWAPPING_ORIENTATIONS = {
    5: "transpose",
    6: "rotate 90 clockwise",
    7: "transverse",
    8: "rotate 90 counter-clockwise",
}


def _exif_orientation(im) -> int:
    """The EXIF orientation tag of an opened image (1 if none), from its header: for PNG the eXIf
    chunk before the pixel data (where the PNG specification puts it), for other formats PIL's
    ``getexif``; an unreadable EXIF block counts as none, as detectron2 treats it."""
    try:
        if im.format == "PNG":
            raw = im.info.get("exif")  # PngImageFile.getexif() would decode the whole image
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = im.getexif()
        return int(exif.get(_EXIF_ORIENTATION) or 1)
    except Exception:
        return 1


def read_image_header(path: str, what: str = "image") -> Tuple[int, int, str, int]:
    """``(width, height, mode, orientation)`` of an image as detectron2's ``read_image`` returns
    it: width and height after its EXIF orientation tag is applied (swapped for orientations
    5-8), from the header only. ``orientation`` is the tag's value, 1 without one."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = _exif_orientation(im)
            if orientation in _SWAPPING_ORIENTATIONS:
                w, h = h, w
            return w, h, im.mode, orientation
    except FileNotFoundError:
        raise DatasetError(f"{what} file {path} does not exist.") from None
    except IsADirectoryError:
        raise DatasetError(f"{what} file {path} is a folder, not an image file.") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise DatasetError(
            f"{what} file {path} is not a readable image ({type(e).__name__}: {e}); "
            "it is probably truncated or corrupt: re-download / re-generate it."
        ) from None


def exif_orientation_note(orientation: int, w: int, h: int) -> str:
    """For a size message: how an image of oriented size ``w`` x ``h`` got it ('' if it did not
    turn)."""
    if orientation not in _SWAPPING_ORIENTATIONS:
        return ""
    return (
        f" once its EXIF orientation tag ({orientation}: {_SWAPPING_ORIENTATIONS[orientation]}) is "
        f"applied, as detectron2 reads images for training and evaluation (stored {h}x{w})"
    )


def check_label_mode(path: str, mode: str, allowed: Sequence[str]) -> None:
    """A :class:`DatasetError` naming ``path`` unless its PIL ``mode`` is an allowed
    (single-channel) one."""
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
            check_label_mode(path, im.mode, allowed_modes)
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
        raise DatasetError(
            f"{path} decodes to an array of shape {arr.shape}; a label file must be 2-d."
        )
    if want == "array":
        return arr
    if hist is None:
        hist = _histogram(arr)
    if want == "hist":
        return arr.shape[1], arr.shape[0], hist
    return arr, hist


def _histogram(arr: np.ndarray) -> Dict[int, int]:
    """``{value: pixel count}`` of an integer array."""
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


def decode_label_file(path: str, allowed_modes: Sequence[str] = LABEL_MODES) -> dict:
    """Decode one label file -> ``{"w", "h", "mode", "hist"}``.  (Tests count calls.)"""
    w, h, hist = _decode(path, allowed_modes, want="hist")
    return {"w": int(w), "h": int(h), "hist": hist}


def verify_image_file(path: str) -> None:
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
    table = as_table(valid_values)
    if table is None:
        return _decode(path, allowed_modes)
    arr, hist = _decode(path, allowed_modes, want="both")
    msg = bad_value_message(path, table, hist)
    if msg:
        raise DatasetError(msg)
    return arr
