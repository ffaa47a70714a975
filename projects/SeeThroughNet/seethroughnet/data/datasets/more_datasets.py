"""The other datasets of SeeThroughNet's CPP plug-in study, registered together: Pascal VOC 2012
(+SBD aug, :mod:`.pascal_voc`), Pascal Context 60 and 59 (:mod:`.pascal_context`) and
NYU-Depth-v2 40 (:mod:`.nyuv2`), each a folder dataset read from pairs files that its
``datasets/prepare_*.py`` script writes (see ``datasets/README.md``).

Names: ``voc2012_sem_seg_{train,val,train_aug}``, ``pascal_context{60,59}_sem_seg_{train,val}``,
``nyuv2_40_sem_seg_{train,test}``. Registration touches no files; loading validates them.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from .nyuv2 import NYUV2_40_CLASSES, NYUV2_DATASETS, register_nyuv2
from .pascal_context import (
    CONTEXT59_CLASSES,
    CONTEXT60_CLASSES,
    PASCAL_CONTEXT_DATASETS,
    register_pascal_context,
)
from .pascal_voc import PASCAL_VOC_DATASETS, VOC_CLASSES, register_pascal_voc

__all__ = [
    "VOC_CLASSES",
    "CONTEXT59_CLASSES",
    "CONTEXT60_CLASSES",
    "NYUV2_40_CLASSES",
    "MORE_DATASETS",
    "register_more_datasets",
]

#: name -> (dataset folder relative to $DETECTRON2_DATASETS, pairs file in it, classes)
MORE_DATASETS: Dict[str, tuple] = {
    **PASCAL_VOC_DATASETS,
    **PASCAL_CONTEXT_DATASETS,
    **NYUV2_DATASETS,
}


def register_more_datasets(root: Optional[str] = None) -> List[str]:
    """Register every name of :data:`MORE_DATASETS` (idempotent) under ``root`` (default
    ``$DETECTRON2_DATASETS``); ignore label 255 for all of them (VOC's boundary, the reduced 0 of
    Context 59 / NYUv2, and crop padding only for Context 60)."""
    return register_pascal_voc(root) + register_pascal_context(root) + register_nyuv2(root)
