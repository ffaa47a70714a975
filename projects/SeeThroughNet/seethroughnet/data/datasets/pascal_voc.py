"""Pascal VOC 2012 with the SBD-augmented training labels: ``voc2012_sem_seg_{train,val,train_aug}``
(21 classes, background included; 255 = object boundaries, ignored).

Layout under ``$DETECTRON2_DATASETS`` (default ``datasets/``)::

    VOCdevkit/VOC2012/JPEGImages/*.jpg
    VOCdevkit/VOC2012/SegmentationClass/*.png        # 0..20, 255 = boundary/void (ignored)
    VOCdevkit/VOC2012/SegmentationClassAug/*.png     # SBD-augmented labels (10,582 train_aug)
    VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,train_aug}.txt
    VOCdevkit/VOC2012/cpp_pairs_{train,val,train_aug}.txt   # python datasets/prepare_pascal_voc.py

Registration touches no files; loading validates them.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from .folder_semseg import register_prepared_datasets

__all__ = ["VOC_CLASSES", "PASCAL_VOC_DATASETS", "register_pascal_voc"]

VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]  # fmt: skip

#: name -> (dataset folder relative to $DETECTRON2_DATASETS, pairs file in it, classes)
PASCAL_VOC_DATASETS: Dict[str, tuple] = {
    f"voc2012_sem_seg_{split}": ("VOCdevkit/VOC2012", f"cpp_pairs_{split}.txt", VOC_CLASSES)
    for split in ("train", "val", "train_aug")
}


def register_pascal_voc(root: Optional[str] = None) -> List[str]:
    """Register ``voc2012_sem_seg_{train,val,train_aug}`` (idempotent) under ``root``
    (default ``$DETECTRON2_DATASETS``)."""
    return register_prepared_datasets(PASCAL_VOC_DATASETS, root, "datasets/prepare_pascal_voc.py")
