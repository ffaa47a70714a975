"""Dataset registration for SeeThroughNet (detectron2 glue).

Importing this package registers (via :func:`register_all`):

* detectron2's Cityscapes names ``cityscapes_fine_{sem_seg,instance_seg}_{train,val,test}``
  under ``$DETECTRON2_DATASETS/cityscapes``, re-registered with validating loaders;
* ``camvid_train``, ``camvid_val``, ``camvid_trainval`` (void = 11 = ``metadata.ignore_label``;
  the project's mapper rewrites it to ``MODEL.SEM_SEG_HEAD.IGNORE_VALUE``, default 255);
* Pascal VOC 2012 (:mod:`.pascal_voc`), Pascal Context 60 and 59 (:mod:`.pascal_context`) and
  NYUv2 40 (:mod:`.nyuv2`), from the pairs files their ``datasets/prepare_*.py`` scripts write;
* Mapillary Vistas v1.2 (:mod:`.mapillary_vistas`): ``mapillary_vistas_sem_seg_{train,val}`` (65
  native classes, ignore 65) and ``mapillary_vistas_cityscapes19_sem_seg_{train,val}`` (mapped to
  the 19 Cityscapes classes by ``datasets/prepare_mapillary_vistas.py``, ``on-rails`` ignored as
  the paper's Mapillary data has no train label; ``..._cityscapes19_onrails_train_...``: on-rails
  -> train).

Registration touches no files; loading (``DatasetCatalog.get``) validates the files and
raises :class:`DatasetError` naming the file and what to do.  ``SEETHROUGHNET_VALIDATE``
= ``header`` | ``full`` (default) picks the depth of the check; see :mod:`.validation`.
"""

from .validation import DatasetError, LabelTable, read_label, validation_mode  # noqa: I001
from .cityscapes import (
    CITYSCAPES_STUFF_CLASSES,
    CITYSCAPES_STUFF_COLORS,
    CITYSCAPES_THING_CLASSES,
    INSTANCE_ID_TABLE,
    LABEL_ID_TABLE,
    TRAIN_ID_TABLE,
    register_cityscapes,
)
from .folder_semseg import register_folder_semseg
from .camvid import CAMVID_CLASSES, CAMVID_COLORS, CAMVID_IGNORE_LABEL, register_camvid
from .mapillary_vistas import register_mapillary_vistas
from .more_datasets import register_more_datasets
from .nyuv2 import register_nyuv2
from .pascal_context import register_pascal_context
from .pascal_voc import register_pascal_voc

__all__ = [
    "DatasetError",
    "LabelTable",
    "read_label",
    "validation_mode",
    "register_all",
    "register_cityscapes",
    "register_folder_semseg",
    "register_camvid",
    "register_more_datasets",
    "register_mapillary_vistas",
    "register_pascal_voc",
    "register_pascal_context",
    "register_nyuv2",
    "CITYSCAPES_STUFF_CLASSES",
    "CITYSCAPES_STUFF_COLORS",
    "CITYSCAPES_THING_CLASSES",
    "TRAIN_ID_TABLE",
    "LABEL_ID_TABLE",
    "INSTANCE_ID_TABLE",
    "CAMVID_CLASSES",
    "CAMVID_COLORS",
    "CAMVID_IGNORE_LABEL",
]


def register_all() -> list:
    """(Re-)register every dataset SeeThroughNet knows; safe to call any number of times.

    Paths are read from the environment at call time (``DETECTRON2_DATASETS``,
    ``SEETHROUGHNET_CAMVID``), so call it again after changing them.
    """
    return (
        register_cityscapes()
        + register_camvid()
        + register_more_datasets()
        + register_mapillary_vistas()
    )


register_all()
