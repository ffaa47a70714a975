"""Dataset mapper for semantic segmentation: reads an image and its label map, checks the
label values against the dataset's label table, augments both, and returns tensors.

The dataset's own ignore value (``metadata.ignore_label``, e.g. 255 for Cityscapes trainIds,
11 for CamVid's "void") is rewritten to the model's ``MODEL.SEM_SEG_HEAD.IGNORE_VALUE``, so
one model config serves every dataset.
"""

import copy
import zlib

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from ..datasets.validation import read_label

__all__ = ["SemanticSegmentationMapper"]


def build_train_augmentations(cfg):
    """Scale jitter, a crop that limits any single class's area, optional colour jitter, and a
    horizontal flip: the standard Cityscapes recipe (HRNet-OCR, DeepLab) in detectron2 terms."""
    augs = [
        T.ResizeShortestEdge(
            cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING
        )
    ]
    if cfg.INPUT.CROP.ENABLED:
        augs.append(
            T.RandomCrop_CategoryAreaConstraint(
                cfg.INPUT.CROP.TYPE,
                cfg.INPUT.CROP.SIZE,
                cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA,
                cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            )
        )
    if cfg.INPUT.COLOR_AUG:
        augs += [
            T.RandomBrightness(0.8, 1.2),
            T.RandomContrast(0.8, 1.2),
            T.RandomSaturation(0.8, 1.2),
        ]
    if cfg.INPUT.RANDOM_FLIP != "none":
        augs.append(
            T.RandomFlip(
                horizontal=cfg.INPUT.RANDOM_FLIP == "horizontal",
                vertical=cfg.INPUT.RANDOM_FLIP == "vertical",
            )
        )
    return augs


def build_test_augmentations(cfg):
    """Test images keep their size unless INPUT.MIN_SIZE_TEST asks for a resize (0: no resize);
    predictions are compared with the full-resolution labels either way."""
    if cfg.INPUT.MIN_SIZE_TEST == 0:
        return []
    return [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, "choice")]


class SemanticSegmentationMapper:
    """Maps a detectron2 semantic-segmentation dataset dict (``file_name``,
    ``sem_seg_file_name``) to ``{"image": uint8 CHW tensor, "sem_seg": int64 HW tensor, ...}``."""

    @configurable
    def __init__(
        self,
        is_train: bool,
        *,
        augmentations,
        image_format: str,
        num_classes: int,
        ignore_value: int,
        dataset_ignore_label: int,
    ):
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.num_classes = num_classes
        self.ignore_value = ignore_value
        self.dataset_ignore_label = dataset_ignore_label
        self.valid_label_values = set(range(num_classes)) | {dataset_ignore_label}

    @classmethod
    def from_config(cls, cfg, is_train: bool = True, dataset_name: str = None):
        if dataset_name is None:
            names = cfg.DATASETS.TRAIN if is_train else cfg.DATASETS.TEST
            dataset_name = names[0]
        meta = MetadataCatalog.get(dataset_name)
        return {
            "is_train": is_train,
            "augmentations": build_train_augmentations(cfg)
            if is_train
            else build_test_augmentations(cfg),
            "image_format": cfg.INPUT.FORMAT,
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "ignore_value": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            "dataset_ignore_label": meta.get("ignore_label", cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE),
        }

    def __call__(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)
        try:
            image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        except (
            OSError,
            SyntaxError,
            ValueError,
            EOFError,
            zlib.error,
        ) as e:  # PIL's truncated / corrupt-file errors
            from ..datasets.validation import DatasetError

            raise DatasetError(
                f"image {dataset_dict['file_name']} cannot be decoded ({type(e).__name__}: {e}); "
                "restore "
                "or re-export it (SEETHROUGHNET_VALIDATE=full checks every file before training)"
            ) from e
        utils.check_image_size(dataset_dict, image)
        sem_seg = None
        if "sem_seg_file_name" in dataset_dict:
            path = dataset_dict.pop("sem_seg_file_name")
            sem_seg = read_label(path, self.valid_label_values)
            if sem_seg.shape != image.shape[:2]:
                from ..datasets.validation import DatasetError

                raise DatasetError(
                    f"{path}: label size {sem_seg.shape[1]}x{sem_seg.shape[0]} (WxH) differs from "
                    f"its image {dataset_dict['file_name']} ({image.shape[1]}x{image.shape[0]})"
                )
            if self.dataset_ignore_label != self.ignore_value:
                sem_seg = sem_seg.astype(np.int64)
                sem_seg[sem_seg == self.dataset_ignore_label] = self.ignore_value
            # detectron2's resize keeps uint8 maps exact (PIL nearest); wider ids go through
            # float32, which is exact for integers below 2**24
            sem_seg = sem_seg.astype(np.uint8 if sem_seg.max(initial=0) <= 255 else np.float32)
        elif self.is_train:
            raise ValueError(
                f"{dataset_dict['file_name']}: a training sample has no sem_seg_file_name"
            )

        aug_input = T.AugInput(image, sem_seg=sem_seg)
        self.augmentations(aug_input)
        image, sem_seg = aug_input.image, aug_input.sem_seg
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if sem_seg is not None:
            dataset_dict["sem_seg"] = torch.as_tensor(sem_seg.astype(np.int64))
        return dataset_dict
