"""NYU-Depth-v2 with 40 classes (Gupta et al. CVPR 2013): ``nyuv2_40_sem_seg_{train,test}``
(the 795 / 654 split; the unlabelled 0 is ignored).

Layout under ``$DETECTRON2_DATASETS`` (default ``datasets/``)::

    nyuv2/image/{train,test}/*.png                  # RGB frames
    nyuv2/label40/{train,test}/*.png                # 0 = unlabelled, 1..40
    # written by python datasets/prepare_nyuv2.py:
    nyuv2/label40_reduced/{train,test}/*.png        # 0..39, 255
    nyuv2/cpp_pairs_{train,test}.txt

Registration touches no files; loading validates them.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from .folder_semseg import register_prepared_datasets

__all__ = ["NYUV2_40_CLASSES", "NYUV2_DATASETS", "register_nyuv2"]

NYUV2_40_CLASSES = [
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor mat", "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel",
    "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
    "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop",
]  # fmt: skip

#: name -> (dataset folder relative to $DETECTRON2_DATASETS, pairs file in it, classes)
NYUV2_DATASETS: Dict[str, tuple] = {
    f"nyuv2_40_sem_seg_{split}": ("nyuv2", f"cpp_pairs_{split}.txt", NYUV2_40_CLASSES)
    for split in ("train", "test")
}


def register_nyuv2(root: Optional[str] = None) -> List[str]:
    """Register ``nyuv2_40_sem_seg_{train,test}`` (idempotent) under ``root``
    (default ``$DETECTRON2_DATASETS``)."""
    return register_prepared_datasets(NYUV2_DATASETS, root, "datasets/prepare_nyuv2.py")
