"""Readers and checks of the official release formats, shared by ``prepare_pascal_voc.py``,
``prepare_pascal_context.py`` and ``prepare_nyuv2.py`` (not a script itself).

Every problem is raised with the path of the file at fault and what to do:
``FileNotFoundError`` for a release file that is absent, :class:`LayoutError` (a ``ValueError``)
for one that is present but not in the expected format (a ``.mat`` without the expected variable,
class ids out of range, a label whose size differs from its image's, ...).
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, List, Sequence

import numpy as np
from _prepare_common import write_text_atomic
from PIL import Image

__all__ = [
    "LayoutError",
    "check_ids",
    "check_same_size",
    "load_mat_v5",
    "mat_variable",
    "read_id_list",
    "read_index_png",
    "require_file",
    "write_id_list",
]


class LayoutError(ValueError):
    """A release file that exists but is not in the format the conversion expects."""


def require_file(path: str, what_to_do: str) -> str:
    """``path`` if it is a file, else ``FileNotFoundError`` "``path`` does not exist:
    ``what_to_do``"."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: {what_to_do}")
    return path


def read_id_list(path: str, what_to_do: str) -> List[str]:
    """The ids of a split list (first word of each non-empty line, in file order);
    ``FileNotFoundError`` naming ``path`` when it is absent."""
    require_file(path, what_to_do)
    with open(path) as f:
        return [line.split()[0] for line in f if line.strip()]


def write_id_list(path: str, ids: Sequence[str], overwrite: bool) -> bool:
    """Write the split list ``path`` (one id a line), atomically. An existing list with the same
    ids is left alone (returns ``False``); one with other ids is a :class:`LayoutError` naming it
    unless ``overwrite``. Returns whether the file was written."""
    text = "".join(f"{i}\n" for i in ids)
    if os.path.isfile(path):
        with open(path) as f:
            old = f.read()
        if old.split() == list(ids):
            return False
        if not overwrite:
            raise LayoutError(
                f"{path} already exists with other ids than the {len(ids)} derived from the "
                "release: move it away or rerun with --overwrite to replace it"
            )
    write_text_atomic(path, text)
    return True


def load_mat_v5(path: str, what_to_do: str) -> Dict[str, object]:
    """The variables of a MATLAB v5 ``.mat`` file (``scipy.io.loadmat(simplify_cells=True)``:
    structs become dicts, 1 x n arrays stay arrays); ``FileNotFoundError`` when ``path`` is absent,
    :class:`LayoutError` naming it when scipy cannot read it (e.g. a v7.3/HDF5 file)."""
    from scipy.io import loadmat

    require_file(path, what_to_do)
    try:
        return loadmat(path, simplify_cells=True)
    except (NotImplementedError, ValueError, TypeError, OSError) as e:
        raise LayoutError(f"{path} is not a readable MATLAB v5 .mat file ({e})") from None


def mat_variable(mat: Dict[str, object], path: str, *keys: str) -> object:
    """``mat[keys[0]][keys[1]]...`` of a file read by :func:`load_mat_v5`; a :class:`LayoutError`
    naming ``path`` and the missing variable or field otherwise."""
    value = mat
    for depth, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            name = ".".join(keys[: depth + 1])
            found = (
                sorted(k for k in value if not k.startswith("__"))
                if isinstance(value, dict)
                else []
            )
            raise LayoutError(
                f"{path} has no variable {name} (found: {', '.join(found) or 'none'}): "
                "is it the right release file?"
            )
        value = value[key]
    return value


def check_ids(label: np.ndarray, path: str, valid: Iterable[int], what: str) -> np.ndarray:
    """``label`` if every value is in ``valid``, else a :class:`LayoutError` naming ``path``, the
    offending values and ``what`` the valid ids are."""
    values = np.unique(label)
    bad = np.setdiff1d(values, np.asarray(list(valid)))
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:10])
        raise LayoutError(f"{path} has class ids {shown} out of range ({what})")
    return label


def check_same_size(label_shape: Sequence[int], image_path: str, label_path: str) -> None:
    """:class:`LayoutError` naming both files when the ``H x W`` label ``label_shape`` differs
    from the size of the image ``image_path`` (read from its header only)."""
    with Image.open(image_path) as im:
        w, h = im.size
    if tuple(label_shape[:2]) != (h, w):
        raise LayoutError(
            f"{label_path} is {label_shape[0]}x{label_shape[1]} (HxW) but its image "
            f"{image_path} is {h}x{w}: the label does not belong to this image"
        )


def read_index_png(path: str) -> np.ndarray:
    """The class indices of a label PNG: a palette (``P``) PNG's indices, as the VOC
    ``SegmentationClass`` PNGs are stored, or a single-channel (``L``) PNG's values; other modes
    (e.g. an RGB rendering of the colours) are a :class:`LayoutError` naming ``path``."""
    with Image.open(path) as im:
        if im.mode not in ("P", "L"):
            raise LayoutError(
                f"{path} is a {im.mode} PNG, not a palette or single-channel class-index PNG: "
                "use the label PNGs of the official release, not a colour rendering"
            )
        return np.asarray(im)
