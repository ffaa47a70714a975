"""Pascal Context with 60 and with 59 classes, as MMSegmentation's two datasets:

* ``pascal_context60_sem_seg_{train,val}`` -- ``PascalContextDataset``: the 60-label maps as they
  are (0 = background, a class like the others; ``reduce_zero_label=False``). The Table 1 default
  (configs/CPP-Plugin/Context/Base-Context.yaml says why).
* ``pascal_context59_sem_seg_{train,val}`` -- ``PascalContextDataset59``: the 59 classes, the
  background 0 of the 60-label maps ignored (``reduce_zero_label=True``: 0 -> 255, c -> c - 1).

Layout under ``$DETECTRON2_DATASETS`` (default ``datasets/``)::

    VOCdevkit/VOC2010/JPEGImages/*.jpg
    VOCdevkit/VOC2010/SegmentationClassContext/*.png    # 0 = background, 1..59 (60 labels)
    VOCdevkit/VOC2010/ImageSets/SegmentationContext/{train,val}.txt
    # written by python datasets/prepare_pascal_context.py:
    VOCdevkit/VOC2010/SegmentationClassContext59/*.png  # 0..58, 255
    VOCdevkit/VOC2010/cpp_pairs_context{60,59}_{train,val}.txt

Registration touches no files; loading validates them.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from .folder_semseg import register_prepared_datasets

__all__ = [
    "CONTEXT59_CLASSES",
    "CONTEXT60_CLASSES",
    "PASCAL_CONTEXT_DATASETS",
    "register_pascal_context",
]

# Pascal Context 59 (Mottaghi et al. 2014; the order of MMSegmentation's PascalContextDataset59)
CONTEXT59_CLASSES = [
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book", "bottle",
    "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow",
    "cup", "curtain", "dog", "door", "fence", "floor", "flower", "food", "grass", "ground",
    "horse", "keyboard", "light", "motorbike", "mountain", "mouse", "person", "plate",
    "platform", "pottedplant", "road", "rock", "sheep", "shelves", "sidewalk", "sign", "sky",
    "snow", "sofa", "table", "track", "train", "tree", "truck", "tvmonitor", "wall", "water",
    "window", "wood",
]  # fmt: skip

#: Pascal Context 60 (MMSegmentation's PascalContextDataset): background (label 0) + the 59
CONTEXT60_CLASSES = ["background", *CONTEXT59_CLASSES]

#: name -> (dataset folder relative to $DETECTRON2_DATASETS, pairs file in it, classes)
PASCAL_CONTEXT_DATASETS: Dict[str, tuple] = {
    f"pascal_context{n}_sem_seg_{split}": (
        "VOCdevkit/VOC2010",
        f"cpp_pairs_context{n}_{split}.txt",
        classes,
    )
    for n, classes in ((60, CONTEXT60_CLASSES), (59, CONTEXT59_CLASSES))
    for split in ("train", "val")
}


def register_pascal_context(root: Optional[str] = None) -> List[str]:
    """Register ``pascal_context{60,59}_sem_seg_{train,val}`` (idempotent) under ``root``
    (default ``$DETECTRON2_DATASETS``)."""
    return register_prepared_datasets(
        PASCAL_CONTEXT_DATASETS, root, "datasets/prepare_pascal_context.py"
    )
