"""Pascal VOC 2012 (+SBD aug), Pascal Context (59 classes) and NYU-Depth-v2 (40 classes), the other
datasets of SeeThroughNet's CPP plug-in study, registered as folder datasets
(:func:`register_folder_semseg`, evaluator ``sem_seg``).

All three are registered from *pairs files* (``image label`` lines relative to the file's folder)
that :func:`prepare_pairs_lists` writes, and Context / NYUv2 from label folders where the
"unlabelled" 0 has been moved to 255 and class ``c`` to ``c - 1`` (MMSegmentation's
``reduce_zero_label``), written by :func:`reduce_zero_label`. Layouts under
``$DETECTRON2_DATASETS`` (default ``datasets/``), see ``datasets/README.md``::

    VOCdevkit/VOC2012/JPEGImages/*.jpg
    VOCdevkit/VOC2012/SegmentationClass/*.png        # 0..20, 255 = boundary/void (ignored)
    VOCdevkit/VOC2012/SegmentationClassAug/*.png     # SBD-augmented labels (10,582 train_aug images)
    VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,train_aug}.txt
    VOCdevkit/VOC2012/cpp_pairs_{train,val,train_aug}.txt         # written by prepare_pairs_lists
    VOCdevkit/VOC2010/JPEGImages/*.jpg
    VOCdevkit/VOC2010/SegmentationClassContext/*.png  # 0 = background, 1..59 (detail API, MMSeg)
    VOCdevkit/VOC2010/SegmentationClassContext59/*.png  # 0..58, 255 -- written by reduce_zero_label
    VOCdevkit/VOC2010/ImageSets/SegmentationContext/{train,val}.txt
    VOCdevkit/VOC2010/cpp_pairs_context59_{train,val}.txt
    nyuv2/image/{train,test}/*.png                  # 795 / 654 RGB images
    nyuv2/label40/{train,test}/*.png                # 0 = unlabelled, 1..40
    nyuv2/label40_reduced/{train,test}/*.png        # 0..39, 255 -- written by reduce_zero_label
    nyuv2/cpp_pairs_{train,test}.txt

Names: ``voc2012_sem_seg_{train,val,train_aug}``, ``pascal_context59_sem_seg_{train,val}``,
``nyuv2_40_sem_seg_{train,test}``. Registration touches no files; loading validates them.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional

import numpy as np

from .folder_semseg import register_folder_semseg

__all__ = [
    "VOC_CLASSES", "CONTEXT59_CLASSES", "NYUV2_40_CLASSES", "register_more_datasets", "reduce_zero_label",
    "prepare_pairs_lists", "MORE_DATASETS",
]

VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]  # fmt: skip
# Pascal Context 59 (Mottaghi et al. 2014; the order of MMSegmentation's PascalContextDataset59)
CONTEXT59_CLASSES = [
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book", "bottle", "building",
    "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow", "cup", "curtain", "dog",
    "door", "fence", "floor", "flower", "food", "grass", "ground", "horse", "keyboard", "light", "motorbike",
    "mountain", "mouse", "person", "plate", "platform", "pottedplant", "road", "rock", "sheep", "shelves",
    "sidewalk", "sign", "sky", "snow", "sofa", "table", "track", "train", "tree", "truck", "tvmonitor", "wall",
    "water", "window", "wood",
]  # fmt: skip
# NYU-Depth-v2 40 classes (Gupta et al. CVPR 2013)
NYUV2_40_CLASSES = [
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
    "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor mat", "clothes",
    "ceiling", "books", "refridgerator", "television", "paper", "towel", "shower curtain", "box", "whiteboard",
    "person", "night stand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure", "otherfurniture",
    "otherprop",
]  # fmt: skip

#: name -> (dataset folder relative to $DETECTRON2_DATASETS, pairs file relative to it, classes)
MORE_DATASETS: Dict[str, tuple] = {
    "voc2012_sem_seg_train": ("VOCdevkit/VOC2012", "cpp_pairs_train.txt", VOC_CLASSES),
    "voc2012_sem_seg_val": ("VOCdevkit/VOC2012", "cpp_pairs_val.txt", VOC_CLASSES),
    "voc2012_sem_seg_train_aug": ("VOCdevkit/VOC2012", "cpp_pairs_train_aug.txt", VOC_CLASSES),
    "pascal_context59_sem_seg_train": ("VOCdevkit/VOC2010", "cpp_pairs_context59_train.txt", CONTEXT59_CLASSES),
    "pascal_context59_sem_seg_val": ("VOCdevkit/VOC2010", "cpp_pairs_context59_val.txt", CONTEXT59_CLASSES),
    "nyuv2_40_sem_seg_train": ("nyuv2", "cpp_pairs_train.txt", NYUV2_40_CLASSES),
    "nyuv2_40_sem_seg_test": ("nyuv2", "cpp_pairs_test.txt", NYUV2_40_CLASSES),
}


def _root(root: Optional[str]) -> str:
    return os.path.expanduser(root if root is not None else os.getenv("DETECTRON2_DATASETS", "datasets"))


def register_more_datasets(root: Optional[str] = None) -> List[str]:
    """Register every name of :data:`MORE_DATASETS` (idempotent); ignore label 255 for all three
    (VOC's boundary, and the reduced 0 of Context / NYUv2)."""
    base = _root(root)
    names = []
    for name, (folder, pairs, classes) in MORE_DATASETS.items():
        droot = os.path.join(base, folder)
        register_folder_semseg(
            name, image_root=droot, label_root=droot, class_names=classes, ignore_label=255,
            pairs_file=os.path.join(droot, pairs), dataset_root=droot,
            missing_hint=(f"Expected {os.path.join(droot, pairs)}: prepare the dataset as in datasets/README.md "
                          "('## Pascal VOC, Pascal Context, NYUv2') under $DETECTRON2_DATASETS."),
        )
        names.append(name)
    return names


def reduce_zero_label(src_dir: str, dst_dir: str) -> int:
    """Write every ``*.png`` label of ``src_dir`` to ``dst_dir`` with 0 -> 255 and ``c -> c - 1``
    (MMSegmentation ``reduce_zero_label``; a 255 stays 255). Returns the number of files."""
    from PIL import Image

    n = 0
    for dirpath, _, files in os.walk(src_dir):
        for fn in sorted(files):
            if not fn.endswith(".png"):
                continue
            lab = np.asarray(Image.open(os.path.join(dirpath, fn)))
            out = lab.astype(np.int32) - 1
            out[(lab == 0) | (lab == 255)] = 255
            dst = os.path.join(dst_dir, os.path.relpath(dirpath, src_dir), fn)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            Image.fromarray(out.astype(np.uint8)).save(dst)
            n += 1
    return n


def prepare_pairs_lists(root: Optional[str] = None, which=("voc", "context", "nyuv2")) -> Dict[str, str]:
    """Write the ``cpp_pairs_*.txt`` pairs files (in each dataset folder) from the official split lists (bare image ids);
    returns ``{pairs file: source}`` for the lists whose sources exist."""
    base = _root(root)
    jobs = []
    if "voc" in which:
        voc = os.path.join(base, "VOCdevkit/VOC2012")
        for split, lab in (("train", "SegmentationClass"), ("val", "SegmentationClass"), ("train_aug", "SegmentationClassAug")):
            jobs.append((voc, f"ImageSets/Segmentation/{split}.txt", f"cpp_pairs_{split}.txt", "JPEGImages", ".jpg", lab))
    if "context" in which:
        ctx = os.path.join(base, "VOCdevkit/VOC2010")
        for split in ("train", "val"):
            jobs.append((ctx, f"ImageSets/SegmentationContext/{split}.txt", f"cpp_pairs_context59_{split}.txt",
                         "JPEGImages", ".jpg", "SegmentationClassContext59"))
    written = {}
    for droot, src, dst, img_dir, img_suf, lab_dir in jobs:
        src_p = os.path.join(droot, src)
        if not os.path.isfile(src_p):
            continue
        with open(src_p) as f:
            ids = [line.split()[0] for line in f if line.strip()]
        _write(os.path.join(droot, dst), [f"{img_dir}/{i}{img_suf} {lab_dir}/{i}.png" for i in ids])
        written[os.path.join(droot, dst)] = src_p
    if "nyuv2" in which:
        nyu = os.path.join(base, "nyuv2")
        for split in ("train", "test"):
            img_root = os.path.join(nyu, "image", split)
            if not os.path.isdir(img_root):
                continue
            ids = sorted(os.path.splitext(f)[0] for f in os.listdir(img_root) if f.endswith(".png"))
            _write(os.path.join(nyu, f"cpp_pairs_{split}.txt"),
                   [f"image/{split}/{i}.png label40_reduced/{split}/{i}.png" for i in ids])
            written[os.path.join(nyu, f"cpp_pairs_{split}.txt")] = img_root
    return written


def _write(path: str, lines: List[str]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
