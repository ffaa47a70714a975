"""A semantic-segmentation dataset from a folder of images and a folder of label PNGs.

Label PNGs are single-channel maps holding class indices ``0..K-1`` or the dataset's
``ignore_label`` -- nothing else (checked at load time in full validation mode).  Pairs come
either from a pairs file (lines ``image label``, paths relative to the pairs file's folder;
or a single ``image`` path relative to ``image_root``) or from the folders themselves
(``image_root/<rel>/<stem>.<png|jpg>`` <-> ``label_root/<rel>/<stem><label_suffix>``).
"""

from __future__ import annotations

import colorsys
import os
from typing import List, Optional, Sequence, Tuple, Union

from detectron2.data import DatasetCatalog, MetadataCatalog

from .validation import (
    DatasetError,
    LabelFile,
    LabelTable,
    Sample,
    raise_problems,
    validate_samples,
)

__all__ = [
    "register_folder_semseg",
    "register_prepared_datasets",
    "load_folder_semseg",
    "default_colors",
    "folder_label_table",
]

PairsFile = Union[None, str, Sequence[str]]


def default_colors(n: int) -> List[Tuple[int, int, int]]:
    """``n`` distinct, deterministic RGB colours (golden-ratio hue steps)."""
    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65, 0.95 - 0.25 * (i % 2))
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


def folder_label_table(name: str, num_classes: int, ignore_label: int) -> LabelTable:
    return LabelTable(
        list(range(num_classes)) + [ignore_label],
        description=(
            f"a class of '{name}' (0-{num_classes - 1}) or its ignore_label {ignore_label}"
        ),
        fix=(
            "Label files must hold class indices 0..K-1 (K = len(class_names)) or ignore_label: "
            "re-map the file, or register the dataset with the right class_names / ignore_label."
        ),
    )


def _missing(dataset: str, what: str, path: str, hint: Optional[str]) -> DatasetError:
    msg = (
        f"Dataset '{dataset}': the {what} {path} does not exist (absolute: "
        f"{os.path.abspath(path)})."
    )
    if hint:
        msg += " " + hint
    return DatasetError(msg)


def _strip_image_suffix(rel: str, image_suffixes: Sequence[str]) -> Optional[str]:
    low = rel.lower()
    for suf in image_suffixes:
        if low.endswith(suf.lower()):
            return rel[: -len(suf)]
    return None


def _pairs_from_files(
    dataset: str,
    pairs_files: Sequence[str],
    image_root: str,
    label_root: str,
    label_suffix: str,
    hint: Optional[str],
) -> Tuple[List[Tuple[str, str]], List[str]]:
    pairs, problems = [], []
    for pf in pairs_files:
        if not os.path.isfile(pf):
            raise _missing(dataset, "pairs file", pf, hint)
        base = os.path.dirname(pf)
        with open(pf, "r") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                parts = line.split()
                if len(parts) == 2:
                    img, lbl = os.path.join(base, parts[0]), os.path.join(base, parts[1])
                elif len(parts) == 1:
                    img = os.path.join(image_root, parts[0])
                    stem = os.path.splitext(parts[0])[0]
                    lbl = os.path.join(label_root, stem + label_suffix)
                else:
                    raise DatasetError(
                        f"Dataset '{dataset}': {pf} line {lineno} has {len(parts)} fields "
                        f"({line!r}); expected 'image label' or 'image' (paths without spaces)."
                    )
                has_img, has_lbl = os.path.isfile(img), os.path.isfile(lbl)
                if not has_img and not has_lbl:
                    problems.append(
                        f"{pf} line {lineno}: neither image {img} nor label file {lbl} exists"
                    )
                elif not has_lbl:
                    problems.append(f"image {img} has no label file {lbl} ({pf} line {lineno})")
                elif not has_img:
                    problems.append(f"label file {lbl} has no image {img} ({pf} line {lineno})")
                pairs.append((img, lbl))
    return pairs, problems


def _pairs_from_folders(
    image_root: str, label_root: str, label_suffix: str, image_suffixes: Sequence[str]
) -> Tuple[List[Tuple[str, str]], List[str]]:
    same = os.path.abspath(image_root) == os.path.abspath(label_root)
    images = {}
    for dirpath, dirnames, filenames in os.walk(image_root):
        dirnames.sort()
        for fn in sorted(filenames):
            if same and fn.endswith(label_suffix):
                continue
            rel = os.path.relpath(os.path.join(dirpath, fn), image_root)
            stem = _strip_image_suffix(rel, image_suffixes)
            if stem is not None:
                images.setdefault(stem, os.path.join(dirpath, fn))
    pairs, problems = [], []
    for stem in sorted(images):
        lbl = os.path.join(label_root, stem + label_suffix)
        if not os.path.isfile(lbl):
            problems.append(f"image {images[stem]} has no label file {lbl}")
        pairs.append((images[stem], lbl))
    for dirpath, dirnames, filenames in os.walk(label_root):
        for fn in sorted(filenames):
            if not fn.endswith(label_suffix):
                continue
            rel = os.path.relpath(os.path.join(dirpath, fn), label_root)
            stem = rel[: -len(label_suffix)]
            if stem not in images:
                expected = " or ".join(os.path.join(image_root, stem + s) for s in image_suffixes)
                problems.append(f"label file {os.path.join(dirpath, fn)} has no image {expected}")
    return pairs, problems


def load_folder_semseg(
    name: str,
    image_root: str,
    label_root: str,
    num_classes: int,
    ignore_label: int = 255,
    label_suffix: str = ".png",
    image_suffixes: Sequence[str] = (".png", ".jpg"),
    pairs_file: PairsFile = None,
    *,
    dataset_root: Optional[str] = None,
    missing_hint: Optional[str] = None,
    mode: Optional[str] = None,
    progress: Optional[bool] = None,
) -> List[dict]:
    """Validate and list a folder dataset as detectron2 dicts
    ``{file_name, sem_seg_file_name, height, width, image_id}``."""
    pairs_files = [pairs_file] if isinstance(pairs_file, str) else list(pairs_file or [])
    if dataset_root is not None and not os.path.isdir(dataset_root):
        raise _missing(name, "dataset folder", dataset_root, missing_hint)
    if pairs_files:
        pairs, problems = _pairs_from_files(
            name, pairs_files, image_root, label_root, label_suffix, missing_hint
        )
        where = ", ".join(pairs_files)
    else:
        for folder, what in ((image_root, "image folder"), (label_root, "label folder")):
            if not os.path.isdir(folder):
                raise _missing(name, what, folder, missing_hint)
        if os.path.abspath(image_root) == os.path.abspath(label_root) and any(
            label_suffix.lower() == s.lower() for s in image_suffixes
        ):
            raise DatasetError(
                f"Dataset '{name}': images and labels share the folder {image_root} and the "
                f"suffix {label_suffix!r}, so they cannot be told apart; give the labels a "
                "distinct label_suffix (e.g. '_label.png') or use separate folders."
            )
        pairs, problems = _pairs_from_folders(image_root, label_root, label_suffix, image_suffixes)
        where = f"{image_root} (*{'/*'.join(image_suffixes)})"
    if not pairs:
        raise DatasetError(
            f"Dataset '{name}': no images found in {where}. "
            + (missing_hint or "Check the paths given to register_folder_semseg().")
        )
    raise_problems(
        name,
        problems,
        "images and label files do not pair up",
        "Every image needs its label file and every label file its image: restore the missing "
        "files, remove the orphans, or fix the pairs file.",
    )
    root = dataset_root or os.path.commonpath(
        [os.path.abspath(image_root), os.path.abspath(label_root)]
    )
    table = folder_label_table(name, num_classes, ignore_label)
    samples = [Sample(image=img, labels=(LabelFile(lbl, table),)) for img, lbl in pairs]
    res = validate_samples(samples, dataset=name, root=root, mode=mode, progress=progress)
    out = []
    for img, lbl in pairs:
        w, h = res.sizes[img]
        rel = os.path.relpath(img, image_root)
        if rel.startswith(".."):
            rel = os.path.basename(img)
        out.append(
            {
                "file_name": img,
                "sem_seg_file_name": lbl,
                "height": h,
                "width": w,
                "image_id": os.path.splitext(rel)[0],
            }
        )
    return out


def register_folder_semseg(
    name: str,
    image_root: str,
    label_root: str,
    class_names: Sequence[str],
    colors: Optional[Sequence[Sequence[int]]] = None,
    ignore_label: int = 255,
    label_suffix: str = ".png",
    image_suffixes: Sequence[str] = (".png", ".jpg"),
    pairs_file: PairsFile = None,
    *,
    dataset_root: Optional[str] = None,
    missing_hint: Optional[str] = None,
    **extra_metadata,
) -> None:
    """Register a folder semantic-segmentation dataset under ``name`` (idempotent).

    Args:
        image_root, label_root: folders of images and of label PNGs.
        class_names: the K class names; labels hold 0..K-1 or ``ignore_label``.
        colors: K RGB triples for visualisation (default: a deterministic palette).
        ignore_label: the label value that is ignored by the loss and the evaluator; it must
            not be one of 0..K-1.  The project's mapper rewrites it to
            ``MODEL.SEM_SEG_HEAD.IGNORE_VALUE``; with a mapper that does not, the two must be equal.
        pairs_file: a file (or list of files) with ``image label`` lines relative to its
            folder, or ``image`` lines relative to ``image_root``; default: pair the folders.
        dataset_root: the dataset folder (for messages and the validation cache).
        missing_hint: appended to "does not exist" errors (say how to point at the data).
        extra_metadata: more metadata fields.

    Metadata: ``stuff_classes``, ``stuff_colors``, ``ignore_label``, ``evaluator_type="sem_seg"``,
    ``image_root``, ``sem_seg_root``.  The files are validated when the dataset is loaded
    (``DatasetCatalog.get(name)``), not here.
    """
    class_names = list(class_names)
    k = len(class_names)
    if k == 0:
        raise ValueError(f"register_folder_semseg('{name}'): class_names is empty")
    if 0 <= ignore_label < k:
        raise ValueError(
            f"register_folder_semseg('{name}'): ignore_label {ignore_label} is one of the class "
            f"indices 0..{k - 1}; pick a value outside them (e.g. 255, or {k})"
        )
    colors = [tuple(int(v) for v in c) for c in colors] if colors is not None else default_colors(k)
    if len(colors) != k:
        raise ValueError(f"register_folder_semseg('{name}'): {len(colors)} colors for {k} classes")
    if isinstance(pairs_file, (list, tuple)):
        pairs_file = list(pairs_file)

    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
    if name in MetadataCatalog.list():
        MetadataCatalog.remove(name)
    DatasetCatalog.register(
        name,
        lambda: load_folder_semseg(
            name,
            image_root,
            label_root,
            k,
            ignore_label,
            label_suffix,
            tuple(image_suffixes),
            pairs_file,
            dataset_root=dataset_root,
            missing_hint=missing_hint,
        ),
    )
    meta = dict(
        stuff_classes=class_names,
        stuff_colors=colors,
        ignore_label=ignore_label,
        evaluator_type="sem_seg",
        image_root=image_root,
        sem_seg_root=label_root,
    )
    if pairs_file is not None:
        meta["pairs_file"] = pairs_file
    if dataset_root is not None:
        meta["dataset_root"] = dataset_root
    meta.update(extra_metadata)
    MetadataCatalog.get(name).set(**meta)


def register_prepared_datasets(datasets: dict, root: Optional[str], prepare: str) -> List[str]:
    """Register folder datasets read from pairs files that a ``datasets/prepare_*.py`` script
    wrote: ``datasets`` maps name -> (dataset folder relative to ``root``, pairs file relative to
    that folder, class names); ``root`` defaults to ``$DETECTRON2_DATASETS`` (``datasets``).
    Ignore label 255 for all of them.  ``prepare`` is the script named in "missing" errors."""
    if root is None:
        root = os.getenv("DETECTRON2_DATASETS", "datasets")
    base = os.path.expanduser(root)
    names = []
    for name, (folder, pairs, classes) in datasets.items():
        droot = os.path.join(base, folder)
        register_folder_semseg(
            name,
            image_root=droot,
            label_root=droot,
            class_names=classes,
            ignore_label=255,
            pairs_file=os.path.join(droot, pairs),
            dataset_root=droot,
            missing_hint=(
                f"Expected {os.path.join(droot, pairs)}: unpack the dataset under "
                f"$DETECTRON2_DATASETS and run `python {prepare}` "
                "(datasets/README.md, '## Pascal VOC, Pascal Context, NYUv2')."
            ),
        )
        names.append(name)
    return names
