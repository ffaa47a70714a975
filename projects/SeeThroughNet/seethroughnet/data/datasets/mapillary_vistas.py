"""Mapillary Vistas v1.2 (66 labels): ``mapillary_vistas_sem_seg_{train,val}`` in the dataset's own
classes, and ``mapillary_vistas_cityscapes19[_onrails_train]_sem_seg_{train,val}`` mapped to the 19
Cityscapes training classes (for pre-training a Cityscapes model, Table 6 of the paper).

Layout under ``$DETECTRON2_DATASETS/mapillary_vistas`` (default ``datasets/mapillary_vistas``), as
the research edition unpacks; two label layouts are recognised:

    config.json                        # v1.0/v1.1 zips: "labels", 66 dicts {name, readable, color,
    {training,validation}/images/*.jpg #   instances, evaluate}; label PNGs (8-bit) hold 0..65,
    {training,validation}/labels/*.png #   the index into "labels" (65 = "void--unlabeled")

    config_v1.2.json                   # the v1.2 zip (v1.2 and v2.0 side by side; v1.2 is used)
    {training,validation}/images/*.jpg
    {training,validation}/v1.2/labels/*.png

    {training,validation}/labels_cityscapes19_onrails_{ignored,train}/*.png
                                       # python datasets/prepare_mapillary_vistas.py

Sources for the layout: the dataset's own README (v1.0: "{training,validation}/images",
"{training,validation}/labels", 8-bit, 66 object classes), NVIDIA/semantic-segmentation
``datasets/mapillary.py`` (reads ``config.json``'s ``labels``, ``{split}/images`` and
``{split}/labels``) and datumaro's ``MapillaryVistasPath`` (``config_v1.2.json``,
``{split}/v1.2/labels``).

**The native dataset** has 65 classes (indices 0..64) and ``ignore_label`` 65 ("void--unlabeled"),
as NVIDIA/semantic-segmentation trains it (``num_classes = 65``, ``ignore_label = 65``): the label
files are read unchanged; the project's mapper rewrites 65 to ``MODEL.SEM_SEG_HEAD.IGNORE_VALUE``.

**The Cityscapes-19 datasets** read labels that ``datasets/prepare_mapillary_vistas.py`` writes
once from the native ones through a name table (every label the table does not list -> 255). The
table follows ``CLASSES_AS_CITYSCAPES`` of kurt-stolle/unipercept
(``sources/unipercept/data/sets/vistas.py``); NVIDIA/semantic-segmentation has none (it pre-trains
on the 65 native classes).  datasets/README.md lists it as a table. Two variants, differing only in
``object--vehicle--on-rails``:

* ``mapillary_vistas_cityscapes19_sem_seg_{train,val}`` (default, :data:`MAPILLARY_TO_CITYSCAPES`):
  ``on-rails`` -> 255, so the pre-training sees no Cityscapes ``train`` pixel. This is the paper's
  stated setting: its Mapillary data "had no train class label" (the paper's words), and the
  paper builds its argument about the ``train`` class on that premise.
* ``mapillary_vistas_cityscapes19_onrails_train_sem_seg_{train,val}``
  (:data:`MAPILLARY_TO_CITYSCAPES_ONRAILS_TRAIN`): ``on-rails`` -> ``train``, unipercept's table
  unchanged.

The switch is the dataset name (``DATASETS.TRAIN`` / ``DATASETS.TEST``), not a config key: each
variant is a different set of label files on disk (:data:`MAPPED_LABEL_DIRS`), and the names are
registered when the package is imported, before any config is read. The prepare script writes both
folders. Neither folder is the ``labels_cityscapes19`` that earlier versions of the script wrote
(with ``on-rails`` -> ``train``), so such a folder is never read by mistake.

Registration touches no files. Loading reads the dataset's config file: it must list exactly the
66 v1.2 labels in v1.2 order (:data:`MAPILLARY_V12_LABELS`), else a :class:`DatasetError` names the
file; then the images and label files are validated as every folder dataset is (:mod:`.validation`).
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog

from .cityscapes import CITYSCAPES_STUFF_CLASSES, CITYSCAPES_STUFF_COLORS
from .folder_semseg import default_colors, load_folder_semseg
from .validation import DatasetError

__all__ = [
    "MAPILLARY_V12_LABELS",
    "MAPILLARY_TO_CITYSCAPES",
    "MAPILLARY_TO_CITYSCAPES_ONRAILS_TRAIN",
    "CITYSCAPES19_MAPPINGS",
    "MAPILLARY_IGNORE_LABEL",
    "MAPILLARY_SPLITS",
    "MAPPED_LABEL_DIRS",
    "mapillary_root",
    "find_layout",
    "read_mapillary_labels",
    "cityscapes19_lut",
    "register_mapillary_vistas",
]

#: The 66 label names of Mapillary Vistas v1.2, in label-index order (config.json "labels").
MAPILLARY_V12_LABELS = [
    "animal--bird", "animal--ground-animal",
    "construction--barrier--curb", "construction--barrier--fence",
    "construction--barrier--guard-rail", "construction--barrier--other-barrier",
    "construction--barrier--wall", "construction--flat--bike-lane",
    "construction--flat--crosswalk-plain", "construction--flat--curb-cut",
    "construction--flat--parking", "construction--flat--pedestrian-area",
    "construction--flat--rail-track", "construction--flat--road",
    "construction--flat--service-lane", "construction--flat--sidewalk",
    "construction--structure--bridge", "construction--structure--building",
    "construction--structure--tunnel", "human--person", "human--rider--bicyclist",
    "human--rider--motorcyclist", "human--rider--other-rider", "marking--crosswalk-zebra",
    "marking--general", "nature--mountain", "nature--sand", "nature--sky", "nature--snow",
    "nature--terrain", "nature--vegetation", "nature--water", "object--banner", "object--bench",
    "object--bike-rack", "object--billboard", "object--catch-basin", "object--cctv-camera",
    "object--fire-hydrant", "object--junction-box", "object--mailbox", "object--manhole",
    "object--phone-booth", "object--pothole", "object--street-light", "object--support--pole",
    "object--support--traffic-sign-frame", "object--support--utility-pole",
    "object--traffic-light", "object--traffic-sign--back", "object--traffic-sign--front",
    "object--trash-can", "object--vehicle--bicycle", "object--vehicle--boat",
    "object--vehicle--bus", "object--vehicle--car", "object--vehicle--caravan",
    "object--vehicle--motorcycle", "object--vehicle--on-rails", "object--vehicle--other-vehicle",
    "object--vehicle--trailer", "object--vehicle--truck", "object--vehicle--wheeled-slow",
    "void--car-mount", "void--ego-vehicle", "void--unlabeled",
]  # fmt: skip
MAPILLARY_IGNORE_LABEL = 65  # "void--unlabeled"

#: Mapillary label name -> Cityscapes training class; labels not listed become 255 (ignored).
#: Source: kurt-stolle/unipercept, sources/unipercept/data/sets/vistas.py, CLASSES_AS_CITYSCAPES,
#: except ``object--vehicle--on-rails`` (unipercept: ``train``), left out here so that it becomes
#: 255: the paper's Mapillary data "had no train class label" (the default; see the module
#: docstring). :data:`MAPILLARY_TO_CITYSCAPES_ONRAILS_TRAIN` is unipercept's table whole.
MAPILLARY_TO_CITYSCAPES: Dict[str, str] = {
    "construction--flat--road": "road",
    "construction--flat--bike-lane": "road",
    "construction--flat--crosswalk-plain": "road",
    "construction--flat--service-lane": "road",
    "marking--crosswalk-zebra": "road",
    "marking--general": "road",
    "object--manhole": "road",
    "object--pothole": "road",
    "construction--flat--sidewalk": "sidewalk",
    "construction--barrier--curb": "sidewalk",
    "construction--flat--curb-cut": "sidewalk",
    "construction--flat--pedestrian-area": "sidewalk",
    "construction--structure--building": "building",
    "construction--barrier--wall": "wall",
    "construction--barrier--fence": "fence",
    "object--support--pole": "pole",
    "object--street-light": "pole",
    "object--support--traffic-sign-frame": "pole",
    "object--support--utility-pole": "pole",
    "object--traffic-light": "traffic light",
    "object--traffic-sign--front": "traffic sign",
    "nature--vegetation": "vegetation",
    "nature--terrain": "terrain",
    "nature--mountain": "terrain",
    "nature--sand": "terrain",
    "nature--sky": "sky",
    "human--person": "person",
    "human--rider--bicyclist": "rider",
    "human--rider--motorcyclist": "rider",
    "human--rider--other-rider": "rider",
    "object--vehicle--car": "car",
    "object--vehicle--truck": "truck",
    "object--vehicle--bus": "bus",
    "object--vehicle--motorcycle": "motorcycle",
    "object--vehicle--bicycle": "bicycle",
}

#: the switch's table: unipercept's CLASSES_AS_CITYSCAPES whole, ``on-rails`` -> ``train``.
MAPILLARY_TO_CITYSCAPES_ONRAILS_TRAIN: Dict[str, str] = {
    **MAPILLARY_TO_CITYSCAPES,
    "object--vehicle--on-rails": "train",
}

#: Cityscapes-19 variant -> its name table
CITYSCAPES19_MAPPINGS: Dict[str, Dict[str, str]] = {
    "cityscapes19": MAPILLARY_TO_CITYSCAPES,
    "cityscapes19_onrails_train": MAPILLARY_TO_CITYSCAPES_ONRAILS_TRAIN,
}
#: Cityscapes-19 variant -> the folder, inside each split folder, where the prepare script writes
#: its labels (named after the on-rails rule; not the ``labels_cityscapes19`` of earlier versions)
MAPPED_LABEL_DIRS: Dict[str, str] = {
    "cityscapes19": "labels_cityscapes19_onrails_ignored",
    "cityscapes19_onrails_train": "labels_cityscapes19_onrails_train",
}

#: registered name -> (split folder, Cityscapes-19 variant of :data:`CITYSCAPES19_MAPPINGS`, or
#: ``None`` for the native 65 classes)
MAPILLARY_SPLITS: Dict[str, Tuple[str, Optional[str]]] = {
    "mapillary_vistas_sem_seg_train": ("training", None),
    "mapillary_vistas_sem_seg_val": ("validation", None),
    "mapillary_vistas_cityscapes19_sem_seg_train": ("training", "cityscapes19"),
    "mapillary_vistas_cityscapes19_sem_seg_val": ("validation", "cityscapes19"),
    "mapillary_vistas_cityscapes19_onrails_train_sem_seg_train": (
        "training",
        "cityscapes19_onrails_train",
    ),
    "mapillary_vistas_cityscapes19_onrails_train_sem_seg_val": (
        "validation",
        "cityscapes19_onrails_train",
    ),
}
#: config file -> the label folder (relative to a split folder) it goes with, in look-up order
LAYOUTS = (("config_v1.2.json", "v1.2/labels"), ("config.json", "labels"))
PREPARE = "datasets/prepare_mapillary_vistas.py"


def mapillary_root() -> str:
    """``$DETECTRON2_DATASETS/mapillary_vistas`` (``datasets/mapillary_vistas`` when unset)."""
    return os.path.join(
        os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets")), "mapillary_vistas"
    )


def _hint(root: str) -> str:
    return (
        f"Unpack Mapillary Vistas v1.2 (research edition) at {root} "
        "($DETECTRON2_DATASETS/mapillary_vistas), with config.json or config_v1.2.json and "
        "{training,validation}/images; see datasets/README.md, '## Mapillary Vistas'."
    )


def find_layout(root: str) -> Tuple[str, str]:
    """``(config file, label folder relative to a split folder)`` of the dataset at ``root``:
    ``config_v1.2.json`` with ``v1.2/labels`` when present, else ``config.json`` with ``labels``.
    A :class:`DatasetError` names the folder when it, or both config files, are missing."""
    if not os.path.isdir(root):
        raise DatasetError(
            f"Mapillary Vistas: the dataset folder {root} does not exist (absolute: "
            f"{os.path.abspath(root)}). {_hint(root)}"
        )
    for config, labels in LAYOUTS:
        path = os.path.join(root, config)
        if os.path.isfile(path):
            return path, labels
    names = " or ".join(os.path.join(root, c) for c, _ in LAYOUTS)
    raise DatasetError(f"Mapillary Vistas: no label config file {names}. {_hint(root)}")


def read_mapillary_labels(config_path: str) -> List[dict]:
    """The ``labels`` list of a Mapillary config file, checked: 66 entries whose ``name`` s are
    :data:`MAPILLARY_V12_LABELS` in order. Anything else is a :class:`DatasetError` naming the
    file (the label files index this list, so a different list would silently change classes)."""
    try:
        with open(config_path) as f:
            config = json.load(f)
    except FileNotFoundError:
        raise DatasetError(
            f"Mapillary Vistas: the config file {config_path} does not exist."
        ) from None
    except (OSError, ValueError) as e:
        raise DatasetError(
            f"Mapillary Vistas: the config file {config_path} is not readable JSON ({e})."
        ) from None
    labels = config.get("labels") if isinstance(config, dict) else None
    if not isinstance(labels, list):
        raise DatasetError(
            f"Mapillary Vistas: the config file {config_path} has no 'labels' list; expected "
            "the config.json of Mapillary Vistas v1.2."
        )
    if len(labels) != len(MAPILLARY_V12_LABELS):
        raise DatasetError(
            f"Mapillary Vistas: the config file {config_path} lists {len(labels)} labels, not "
            f"the {len(MAPILLARY_V12_LABELS)} of Mapillary Vistas v1.2 (v2.0 has 124 and is not "
            "supported here): point $DETECTRON2_DATASETS/mapillary_vistas at the v1.2 data."
        )
    for i, (entry, expected) in enumerate(zip(labels, MAPILLARY_V12_LABELS)):
        name = entry.get("name") if isinstance(entry, dict) else None
        if name != expected:
            raise DatasetError(
                f"Mapillary Vistas: the config file {config_path} names label {i} {name!r}, but "
                f"Mapillary Vistas v1.2 has {expected!r} there; the label files index this list, "
                "so it must be the v1.2 list in its order."
            )
    return labels


def cityscapes19_lut(labels: List[dict], mapping: Optional[Dict[str, str]] = None) -> np.ndarray:
    """A 256-entry uint8 look-up table: Mapillary label index -> Cityscapes trainId (0..18) per
    ``mapping`` (default :data:`MAPILLARY_TO_CITYSCAPES`; by the ``name`` of ``labels[i]``), 255
    for every other index (unmapped labels and values 66..255, which no v1.2 label file holds)."""
    mapping = MAPILLARY_TO_CITYSCAPES if mapping is None else mapping
    lut = np.full(256, 255, np.uint8)
    for i, entry in enumerate(labels):
        cls = mapping.get(entry["name"])
        if cls is not None:
            lut[i] = CITYSCAPES_STUFF_CLASSES.index(cls)
    return lut


def load_mapillary_vistas(name: str, root: str, split: str, mapped: Optional[str]) -> List[dict]:
    """Check the config file, then list and validate one split (detectron2 dicts); ``mapped``:
    the Cityscapes-19 variant (:data:`MAPPED_LABEL_DIRS`) or ``None`` for the native labels."""
    config, label_dir = find_layout(root)
    read_mapillary_labels(config)
    split_root = os.path.join(root, split)
    if mapped:
        label_root = os.path.join(split_root, MAPPED_LABEL_DIRS[mapped])
        k, ignore = len(CITYSCAPES_STUFF_CLASSES), 255
        hint = (
            f"The Cityscapes-19 labels are written by `python {PREPARE}` (once, after unpacking); "
            "see datasets/README.md, '## Mapillary Vistas'."
        )
    else:
        label_root = os.path.join(split_root, label_dir)
        k, ignore = MAPILLARY_IGNORE_LABEL, MAPILLARY_IGNORE_LABEL
        hint = _hint(root)
    return load_folder_semseg(
        name,
        os.path.join(split_root, "images"),
        label_root,
        k,
        ignore,
        ".png",
        (".jpg",),
        dataset_root=root,
        missing_hint=hint,
    )


def register_mapillary_vistas(root: Optional[str] = None) -> List[str]:
    """Register the six names of :data:`MAPILLARY_SPLITS` (idempotent) under ``root`` (default
    :func:`mapillary_root`). Metadata: the 65 native classes (ignore 65; colours from
    :func:`default_colors`, the dataset's own being in its config file) or the Cityscapes-19
    classes and colours (ignore 255, ``cityscapes19_mapping`` the variant's name table);
    ``evaluator_type="sem_seg"``."""
    root = os.path.expanduser(root) if root is not None else mapillary_root()
    names = []
    for name, (split, mapped) in MAPILLARY_SPLITS.items():
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
        if name in MetadataCatalog.list():
            MetadataCatalog.remove(name)
        DatasetCatalog.register(
            name, lambda n=name, s=split, m=mapped: load_mapillary_vistas(n, root, s, m)
        )
        meta = dict(
            evaluator_type="sem_seg",
            image_root=os.path.join(root, split, "images"),
            dataset_root=root,
        )
        if mapped:
            meta.update(
                stuff_classes=list(CITYSCAPES_STUFF_CLASSES),
                stuff_colors=[tuple(c) for c in CITYSCAPES_STUFF_COLORS],
                ignore_label=255,
                sem_seg_root=os.path.join(root, split, MAPPED_LABEL_DIRS[mapped]),
                cityscapes19_mapping=dict(CITYSCAPES19_MAPPINGS[mapped]),
            )
        else:  # the label folder depends on the layout, known only when loading
            classes = MAPILLARY_V12_LABELS[:MAPILLARY_IGNORE_LABEL]
            meta.update(
                stuff_classes=classes,
                stuff_colors=default_colors(len(classes)),
                ignore_label=MAPILLARY_IGNORE_LABEL,
            )
        MetadataCatalog.get(name).set(**meta)
        names.append(name)
    return names
