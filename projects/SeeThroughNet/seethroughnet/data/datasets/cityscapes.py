"""Cityscapes under detectron2's builtin names, with load-time validation.

detectron2 registers ``cityscapes_fine_sem_seg_{train,val,test}`` and
``cityscapes_fine_instance_seg_{train,val,test}`` under ``$DETECTRON2_DATASETS/cityscapes``
(default ``datasets/cityscapes``) when ``detectron2.data.datasets`` is imported.
:func:`register_cityscapes` re-registers exactly those names, with the same metadata (plus
colours), but with loaders that check the files before handing them to detectron2's own
``load_cityscapes_semantic`` / ``load_cityscapes_instances``: a missing root or split, an
image without its label file (or the reverse), size mismatches, truncated PNGs and label
values outside the Cityscapes label table each end in one :class:`DatasetError` that names
the file and says what to do.  See :mod:`.validation` for the header/full levels and cache.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from ... import cityscapes_alias

# upstream detectron2 main's loaders import cityscapesscripts under an internal path when called
cityscapes_alias.install()

from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from detectron2.data.datasets.cityscapes import (  # noqa: E402
    load_cityscapes_instances,
    load_cityscapes_semantic,
)

from ...nn.layers import short_list  # noqa: E402
from .validation import (  # noqa: E402
    DatasetError,
    LabelFile,
    LabelTable,
    Sample,
    raise_problems,
    validate_samples,
)

__all__ = [
    "CITYSCAPES_STUFF_CLASSES",
    "CITYSCAPES_STUFF_COLORS",
    "CITYSCAPES_THING_CLASSES",
    "CITYSCAPES_THING_COLORS",
    "TRAIN_ID_TABLE",
    "LABEL_ID_TABLE",
    "INSTANCE_ID_TABLE",
    "default_cityscapes_root",
    "register_cityscapes",
    "load_cityscapes_semantic_validated",
    "load_cityscapes_instances_validated",
]

SPLITS = ("train", "val", "test")
SEM_SEG_NAME = "cityscapes_fine_sem_seg_{split}"
INSTANCE_NAME = "cityscapes_fine_instance_seg_{split}"

IMAGE_SUFFIX = "_leftImg8bit.png"
TRAIN_IDS_SUFFIX = "_gtFine_labelTrainIds.png"
LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
INSTANCE_IDS_SUFFIX = "_gtFine_instanceIds.png"
POLYGONS_SUFFIX = "_gtFine_polygons.json"

# The 19 evaluated classes in trainId order, with the official colours (cityscapesscripts'
# labels.py); the class names are detectron2's builtin_meta ones.
CITYSCAPES_STUFF_CLASSES = [
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
    "truck", "bus", "train", "motorcycle", "bicycle",
]  # fmt: skip
CITYSCAPES_STUFF_COLORS = [
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
]  # fmt: skip
CITYSCAPES_THING_CLASSES = [
    "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
]  # fmt: skip
CITYSCAPES_THING_COLORS = [
    CITYSCAPES_STUFF_COLORS[CITYSCAPES_STUFF_CLASSES.index(c)] for c in CITYSCAPES_THING_CLASSES
]
CITYSCAPES_IGNORE_LABEL = 255
# labelIds 0..33 (id -1, "license plate", is never drawn into the PNGs); those with
# instances (hasInstances): person .. bicycle, including caravan and trailer.
_NUM_LABEL_IDS = 34
_INSTANCE_LABEL_IDS = np.arange(24, 34)

_REGENERATE = (
    "Regenerate the label files: for real Cityscapes, `CITYSCAPES_DATASET=<root> "
    "csCreateTrainIdLabelImgs` (cityscapesscripts); for the synthetic set, "
    "`python datasets/prepare_synthetic_cityscapes.py --overwrite`."
)
TRAIN_ID_TABLE = LabelTable(
    list(range(19)) + [CITYSCAPES_IGNORE_LABEL],
    description="a trainId of the Cityscapes label table (0-18, 255)",
    fix=_REGENERATE,
)
LABEL_ID_TABLE = LabelTable(
    range(_NUM_LABEL_IDS),
    description="a labelId of the Cityscapes label table (0-33)",
    fix=_REGENERATE,
)


def _instance_id_ok(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.int64)
    stuff_or_crowd = (values >= 0) & (values < _NUM_LABEL_IDS)
    instance = (values >= 1000) & np.isin(values // 1000, _INSTANCE_LABEL_IDS)
    return stuff_or_crowd | instance


INSTANCE_ID_TABLE = LabelTable(
    predicate=_instance_id_ok,
    description=(
        "a Cityscapes instanceId (a labelId 0-33, or labelId*1000+k for the instance "
        "classes 24-33)"
    ),
    fix=_REGENERATE,
)


# --------------------------------------------------------------------------------------
# root
# --------------------------------------------------------------------------------------
def default_cityscapes_root() -> str:
    """``$DETECTRON2_DATASETS/cityscapes`` (``datasets/cityscapes`` when unset), like detectron2."""
    return os.path.join(
        os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets")), "cityscapes"
    )


def _root_origin(root: str, explicit: bool) -> str:
    if explicit:
        return f"the root passed to register_cityscapes(root={root!r})"
    env = os.environ.get("DETECTRON2_DATASETS")
    if env is not None:
        return f"$DETECTRON2_DATASETS/cityscapes with DETECTRON2_DATASETS={env!r}"
    return (
        "detectron2's default datasets/cityscapes (DETECTRON2_DATASETS is unset), relative "
        f"to the working directory {os.getcwd()}"
    )


_WHAT_TO_DO = (
    "Put the Cityscapes download there (leftImg8bit/ and gtFine/, see datasets/README.md), "
    "or generate the small synthetic stand-in with `python "
    "datasets/prepare_synthetic_cityscapes.py`, "
    "or set DETECTRON2_DATASETS to the folder that contains cityscapes/."
)


def _check_split_folders(dataset: str, root: str, origin: str, image_dir: str, gt_dir: str) -> None:
    if not os.path.isdir(root):
        raise DatasetError(
            f"Dataset '{dataset}': the Cityscapes root {root} does not exist "
            f"(absolute: {os.path.abspath(root)}; it is {origin}). {_WHAT_TO_DO}"
        )
    for folder, what in ((image_dir, "image"), (gt_dir, "label")):
        if not os.path.isdir(folder):
            raise DatasetError(
                f"Dataset '{dataset}': the {what} folder {folder.rstrip('/')} does not exist "
                f"(Cityscapes root {root} is {origin}; expected leftImg8bit/<split>/<city>/ and "
                f"gtFine/<split>/<city>/ under it). {_WHAT_TO_DO}"
            )


def _scan(
    dataset: str,
    root: str,
    origin: str,
    image_dir: str,
    gt_dir: str,
    label_suffixes: Tuple[str, ...],
) -> List[Tuple[str, Dict[str, str]]]:
    """Pair ``image_dir/<city>/*_leftImg8bit.png`` with their gtFine files; check both ways."""
    _check_split_folders(dataset, root, origin, image_dir, gt_dir)
    image_dir = image_dir.rstrip("/") + "/"
    gt_dir = gt_dir.rstrip("/") + "/"
    # detectron2 globs image_dir/**/*.png (one level: the city folders) and asserts every
    # file there is a *_leftImg8bit.png
    all_pngs = sorted(glob.glob(os.path.join(image_dir, "*", "*.png")))
    stray = [p for p in all_pngs if not p.endswith(IMAGE_SUFFIX)]
    if stray:
        listed = short_list(stray, 5, sort=False)
        raise DatasetError(
            f"Dataset '{dataset}': {listed} {'is' if len(stray) == 1 else 'are'} in the image "
            f"folder {image_dir} but not named <city>_<seq>_<frame>{IMAGE_SUFFIX}; move or rename "
            f"{'it' if len(stray) == 1 else 'them'}."
        )
    if not all_pngs:
        top = glob.glob(os.path.join(image_dir, "*.png"))
        where = (
            f" ({len(top)} PNGs lie directly in it: Cityscapes keeps images in one sub-folder per "
            "city)"
            if top
            else ""
        )
        raise DatasetError(
            f"Dataset '{dataset}': the split folder {image_dir.rstrip('/')} holds no images "
            f"(expected <city>/<name>{IMAGE_SUFFIX}){where}. {_WHAT_TO_DO}"
        )
    images = {p[len(image_dir) : -len(IMAGE_SUFFIX)]: p for p in all_pngs}

    problems: List[str] = []
    pairs: List[Tuple[str, Dict[str, str]]] = []
    for stem, img in sorted(images.items()):
        files = {}
        for suf in label_suffixes:
            lbl = gt_dir + stem + suf
            if not os.path.isfile(lbl):
                hint = ""
                if suf == TRAIN_IDS_SUFFIX and os.path.isfile(gt_dir + stem + LABEL_IDS_SUFFIX):
                    hint = (
                        " (its labelIds file exists: create the trainId files with "
                        f"`CITYSCAPES_DATASET={root} csCreateTrainIdLabelImgs`)"
                    )
                problems.append(f"image {img} has no label file {lbl}{hint}")
            files[suf] = lbl
        pairs.append((img, files))
    orphans: Dict[str, List[str]] = {}  # stem -> its gtFine files, in label_suffixes order
    for suf in label_suffixes:
        for p in sorted(glob.glob(os.path.join(gt_dir, "*", "*" + suf))):
            stem = p[len(gt_dir) : -len(suf)]
            if stem not in images:
                orphans.setdefault(stem, []).append(p)
    for stem in sorted(orphans):
        first, *others = orphans[stem]
        also = f" (nor {'do' if len(others) > 1 else 'does'} {', '.join(others)})" if others else ""
        problems.append(f"label file {first} has no image {image_dir + stem + IMAGE_SUFFIX}{also}")
    if problems:
        raise_problems(
            dataset,
            problems,
            "images and label files do not pair up",
            "Every leftImg8bit/<split>/<city>/<name>_leftImg8bit.png needs its "
            "gtFine/<split>/<city>/"
            "<name>_gtFine_* files and vice versa: restore the missing files or remove the "
            f"orphans. Cityscapes root: {root} ({origin}).",
        )
    return pairs


# --------------------------------------------------------------------------------------
# loaders
# --------------------------------------------------------------------------------------
def _find_bad_json(paths: List[str]) -> Optional[str]:
    for p in paths:
        try:
            with open(p, "r") as f:
                obj = json.load(f)
            int(obj["imgHeight"]), int(obj["imgWidth"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            return (
                f"{p} cannot be read as a Cityscapes polygon annotation ({type(e).__name__}: {e})"
            )
    return None


def load_cityscapes_semantic_validated(
    image_dir: str,
    gt_dir: str,
    *,
    dataset_name: str = "cityscapes",
    root: Optional[str] = None,
    root_origin: str = "",
    mode: Optional[str] = None,
    progress: Optional[bool] = None,
) -> List[dict]:
    """Validate a Cityscapes split, then return detectron2's ``load_cityscapes_semantic`` dicts.

    Each dict has ``file_name``, ``sem_seg_file_name`` (the ``*_gtFine_labelTrainIds.png``),
    ``height``, ``width`` (from the polygon JSON, checked against the image).
    """
    root = root or os.path.dirname(os.path.dirname(image_dir.rstrip("/")).rstrip("/"))
    # cityscapesscripts' evaluation reads the labelIds files of the splits it scores (val; test
    # for a local check), so those are validated with the trainIds, before any training starts
    evaluated = os.path.basename(gt_dir.rstrip("/")) in ("val", "test")
    suffixes = (TRAIN_IDS_SUFFIX, POLYGONS_SUFFIX) + ((LABEL_IDS_SUFFIX,) if evaluated else ())
    pairs = _scan(dataset_name, root, root_origin, image_dir, gt_dir, suffixes)
    try:
        dicts = load_cityscapes_semantic(image_dir, gt_dir)
    except Exception as e:  # JSON decode errors from detectron2 do not name the file
        bad = _find_bad_json([f[POLYGONS_SUFFIX] for _, f in pairs])
        if bad is None:
            raise
        raise DatasetError(
            f"Dataset '{dataset_name}': {bad}. Restore the file from the gtFine download "
            "(or re-generate the synthetic set)."
        ) from e
    by_image = {d["file_name"]: d for d in dicts}
    samples = []
    for img, files in pairs:
        d = by_image.get(img)
        samples.append(
            Sample(
                image=img,
                labels=(LabelFile(files[TRAIN_IDS_SUFFIX], TRAIN_ID_TABLE, ("L", "P")),)
                + (
                    (LabelFile(files[LABEL_IDS_SUFFIX], LABEL_ID_TABLE, ("L", "P")),)
                    if evaluated
                    else ()
                ),
                expected_size=(d["width"], d["height"]) if d else None,
                expected_size_source=f"its annotation {files[POLYGONS_SUFFIX]} (imgWidth x "
                "imgHeight)",
            )
        )
    validate_samples(samples, dataset=dataset_name, root=root, mode=mode, progress=progress)
    if len(dicts) != len(pairs):  # pragma: no cover - both glob the same files
        raise DatasetError(
            f"Dataset '{dataset_name}': detectron2 found {len(dicts)} images in {image_dir}, "
            f"the validation {len(pairs)}."
        )
    return dicts


def load_cityscapes_instances_validated(
    image_dir: str,
    gt_dir: str,
    *,
    dataset_name: str = "cityscapes",
    root: Optional[str] = None,
    root_origin: str = "",
    mode: Optional[str] = None,
    progress: Optional[bool] = None,
    from_json: bool = True,
    to_polygons: bool = True,
) -> List[dict]:
    """Validate a Cityscapes split, then return detectron2's ``load_cityscapes_instances``."""
    root = root or os.path.dirname(os.path.dirname(image_dir.rstrip("/")).rstrip("/"))
    suffixes = (INSTANCE_IDS_SUFFIX, LABEL_IDS_SUFFIX) + ((POLYGONS_SUFFIX,) if from_json else ())
    pairs = _scan(dataset_name, root, root_origin, image_dir, gt_dir, suffixes)
    samples = [
        Sample(
            image=img,
            labels=(
                LabelFile(files[INSTANCE_IDS_SUFFIX], INSTANCE_ID_TABLE),
                LabelFile(files[LABEL_IDS_SUFFIX], LABEL_ID_TABLE, ("L", "P")),
            ),
        )
        for img, files in pairs
    ]
    validate_samples(samples, dataset=dataset_name, root=root, mode=mode, progress=progress)
    if from_json:
        if importlib.util.find_spec("shapely") is None:
            raise ImportError(
                f"Loading '{dataset_name}' from the polygon JSONs (detectron2's "
                "load_cityscapes_instances(from_json=True)) needs shapely: pip install shapely"
            )
        bad = _find_bad_json([f[POLYGONS_SUFFIX] for _, f in pairs])
        if bad is not None:
            raise DatasetError(
                f"Dataset '{dataset_name}': {bad}. Restore the file from the gtFine download."
            )
    return load_cityscapes_instances(
        image_dir, gt_dir, from_json=from_json, to_polygons=to_polygons
    )


# --------------------------------------------------------------------------------------
# registration
# --------------------------------------------------------------------------------------
def _builtin_meta() -> dict:
    try:
        from detectron2.data.datasets.builtin_meta import _get_builtin_metadata

        meta = dict(_get_builtin_metadata("cityscapes"))
    except Exception:  # pragma: no cover - keep working if detectron2 moves it
        meta = {}
    meta.setdefault("thing_classes", list(CITYSCAPES_THING_CLASSES))
    meta.setdefault("stuff_classes", list(CITYSCAPES_STUFF_CLASSES))
    meta.setdefault("thing_colors", [tuple(c) for c in CITYSCAPES_THING_COLORS])
    meta.setdefault("stuff_colors", [tuple(c) for c in CITYSCAPES_STUFF_COLORS])
    return meta


def _reset(name: str) -> None:
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
    if name in MetadataCatalog.list():
        MetadataCatalog.remove(name)


def register_cityscapes(root: Optional[str] = None, splits=SPLITS) -> List[str]:
    """(Re-)register detectron2's Cityscapes names with validating loaders.

    Args:
        root: the folder holding ``leftImg8bit/`` and ``gtFine/``; default
            ``$DETECTRON2_DATASETS/cityscapes`` (``datasets/cityscapes``), read now, as
            detectron2 does.
        splits: which of train/val/test to register.

    Returns:
        the registered names.  Metadata is detectron2's builtin one (``thing_classes``,
        ``stuff_classes``, ``image_dir``, ``gt_dir``, ``evaluator_type``, ``ignore_label``
        255 for semantic) plus ``thing_colors``/``stuff_colors`` and ``dataset_root``.
        Idempotent.
    """
    explicit = root is not None
    root = os.path.expanduser(root) if explicit else default_cityscapes_root()
    origin = _root_origin(root, explicit)
    names = []
    for split in splits:
        image_dir = os.path.join(root, "leftImg8bit", split, "")
        gt_dir = os.path.join(root, "gtFine", split, "")
        meta = _builtin_meta()

        kinds = (
            (
                SEM_SEG_NAME,
                load_cityscapes_semantic_validated,
                "cityscapes_sem_seg",
                {"ignore_label": CITYSCAPES_IGNORE_LABEL},
            ),
            (INSTANCE_NAME, load_cityscapes_instances_validated, "cityscapes_instance", {}),
        )
        for name_format, loader, evaluator_type, extra in kinds:
            name = name_format.format(split=split)
            _reset(name)
            DatasetCatalog.register(
                name,
                lambda x=image_dir, y=gt_dir, n=name, load=loader: load(
                    x, y, dataset_name=n, root=root, root_origin=origin
                ),
            )
            MetadataCatalog.get(name).set(
                image_dir=image_dir,
                gt_dir=gt_dir,
                evaluator_type=evaluator_type,
                dataset_root=root,
                **extra,
                **meta,
            )
            names.append(name)
    return names
