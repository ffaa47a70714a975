"""The converted Cityscapes splits as detectron2 COCO datasets ``cityscapes_coco_{split}``.

``register_cityscapes_coco(root)`` calls detectron2's ``register_coco_instances`` for every split
with ``json_file=<json_dir>/instancesonly_gtFine_<split>.json`` and
``image_root=<root>/leftImg8bit/<split>`` (the converter writes file names relative to it).
Registering does not read anything; :func:`check_datasets` gives a clear error, with the command
to run, when a JSON is missing.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, Optional

from .cityscapes_to_coco import THING_CLASSES, default_output_path

__all__ = [
    "DATASET_NAME",
    "default_cityscapes_root",
    "register_cityscapes_coco",
    "check_datasets",
    "check_mask_format",
    "json_segmentation_format",
    "DatasetMissingError",
]

DATASET_NAME = "cityscapes_coco_{split}"
SPLITS = ("train", "val", "test")
# Official Cityscapes colours of the eight thing classes (cityscapesscripts labels.py).
THING_COLORS = [
    (220, 20, 60),
    (255, 0, 0),
    (0, 0, 142),
    (0, 0, 70),
    (0, 60, 100),
    (0, 80, 100),
    (0, 0, 230),
    (119, 11, 32),
]


class DatasetMissingError(ValueError):
    pass


def default_cityscapes_root() -> str:
    return os.path.join(os.environ.get("DETECTRON2_DATASETS", "datasets"), "cityscapes")


def register_cityscapes_coco(
    root: Optional[str] = None, json_dir: Optional[str] = None, splits: Iterable[str] = SPLITS
) -> Dict[str, str]:
    """Register ``cityscapes_coco_{split}``; re-registers a name that points elsewhere.
    Returns ``{name: json_file}``."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances

    root = os.path.abspath(root or default_cityscapes_root())
    out = {}
    for split in splits:
        name = DATASET_NAME.format(split=split)
        json_file = os.path.abspath(default_output_path(root, split, json_dir))
        image_root = os.path.join(root, "leftImg8bit", split)
        if name in DatasetCatalog.list():
            meta = MetadataCatalog.get(name)
            if (
                getattr(meta, "json_file", None) == json_file
                and getattr(meta, "image_root", None) == image_root
            ):
                out[name] = json_file
                continue
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        register_coco_instances(
            name,
            {"thing_classes": list(THING_CLASSES), "thing_colors": THING_COLORS},
            json_file,
            image_root,
        )
        out[name] = json_file
    return out


def check_datasets(names: Iterable[str]) -> None:
    """Every ``cityscapes_coco_*`` name in ``names`` must have its JSON on disk."""
    from detectron2.data import MetadataCatalog

    for name in names:
        if not name.startswith("cityscapes_coco_"):
            continue
        meta = MetadataCatalog.get(name)
        json_file = getattr(meta, "json_file", None)
        if json_file is None:
            raise DatasetMissingError(
                f"dataset {name!r} is not registered (call register_cityscapes_coco)"
            )
        if not os.path.isfile(json_file):
            root = os.path.dirname(os.path.dirname(meta.image_root))
            raise DatasetMissingError(
                f"dataset {name!r}: {json_file} does not exist; convert the Cityscapes annotations "
                f"first: python -m transfer.convert_cityscapes_to_coco --root {root} --splits "
                f"{name[len('cityscapes_coco_'):]}"
                + (
                    f" --out-dir {os.path.dirname(json_file)}"
                    if os.path.dirname(json_file) != os.path.join(root, "annotations")
                    else ""
                )
            )


def json_segmentation_format(json_file: str) -> Optional[str]:
    """The ``info.segmentation`` ("rle" / "polygon") that ``convert_cityscapes_to_coco`` writes
    at the start of its JSON, read from the file's first bytes (not the whole file); None for a
    JSON from elsewhere."""
    import re

    try:
        with open(json_file, "rb") as f:
            head = f.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return None
    m = re.match(r'\s*\{\s*"info"\s*:\s*\{[^{}]*?"segmentation"\s*:\s*"(\w+)"', head)
    return m.group(1) if m else None


def check_mask_format(names: Iterable[str], mask_format: str) -> None:
    """Training with ``INPUT.MASK_FORMAT polygon`` needs polygon annotations: a converted split
    written as RLE (``--segmentation rle``) is refused with the command that fixes it."""
    from detectron2.data import MetadataCatalog

    if mask_format != "polygon":
        return
    for name in names:
        if not name.startswith("cityscapes_coco_"):
            continue
        json_file = MetadataCatalog.get(name).json_file
        if json_segmentation_format(json_file) == "rle":
            root = os.path.dirname(os.path.dirname(MetadataCatalog.get(name).image_root))
            raise DatasetMissingError(
                f"dataset {name!r}: {json_file} holds RLE masks but INPUT.MASK_FORMAT is "
                "'polygon'; convert "
                f"it with polygons (python -m transfer.convert_cityscapes_to_coco --root {root} "
                f"--splits {name[len('cityscapes_coco_'):]} --segmentation polygon) or train with "
                "INPUT.MASK_FORMAT bitmask"
            )
