"""Dataset mapper for semantic segmentation: reads an image and its label map, checks the
label values against the dataset's label table, augments both, and returns tensors.

Two augmentation recipes, chosen by ``INPUT.PIPELINE``: ``"detectron2"`` (ResizeShortestEdge,
category-area crop, optional colour jitter, flip), ``"mmseg"``, MMSegmentation 1.x's pipeline of
the Table 1 models (:mod:`seethroughnet.data.transforms.mmseg_pipeline`; keys ``INPUT.RESIZE``,
``INPUT.FLIP_PROB``, ``INPUT.PHOTOMETRIC``, ``INPUT.PAD``) and ``"nvidia"``, the pipeline of Tao
et al. [41] for the W48 configs (:mod:`seethroughnet.data.transforms.nvidia_pipeline`; keys
``INPUT.NVIDIA``, ``INPUT.CROP.SIZE``, ``INPUT.FLIP_PROB``), whose crop is centred on a sample's
class-uniform centroid (``class_uniform_centroid``, ``DATALOADER.CLASS_UNIFORM``).

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
from ..transforms import mmseg_pipeline as M
from ..transforms import nvidia_pipeline as N

__all__ = [
    "SemanticSegmentationMapper",
    "build_train_augmentations",
    "build_test_augmentations",
    "check_mmseg_pipeline_config",
    "check_nvidia_pipeline_config",
    "PIPELINES",
    "PAD_MODES",
]

#: values of INPUT.PIPELINE
PIPELINES = ("detectron2", "mmseg", "nvidia")
#: values of INPUT.PAD.MODE
PAD_MODES = ("none", "normalized", "pixel")


def _pair(cfg_node, key: str, name: str, integer: bool):
    value = cfg_node[key]
    ok = isinstance(value, (list, tuple)) and len(value) == 2
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ok = ok and all(v > 0 for v in value) and (not integer or all(int(v) == v for v in value))
    if not ok:
        kind = "positive integers" if integer else "positive numbers"
        raise ValueError(f"{name}: {value!r} must be two {kind}, e.g. (512, 1024)")
    return tuple(int(v) for v in value) if integer else tuple(float(v) for v in value)


def _range(cfg_node, key: str, name: str):
    lo, hi = _pair(cfg_node, key, name, integer=False)
    if lo > hi:
        raise ValueError(f"{name}: {(lo, hi)!r} must be (low, high) with low <= high")
    return lo, hi


def check_mmseg_pipeline_config(cfg) -> None:
    """Raise ``ValueError`` naming the first invalid key of the MMSegmentation pipeline
    (``INPUT.PIPELINE "mmseg"``) and of ``INPUT.PAD``."""
    i = cfg.INPUT
    if i.PIPELINE not in PIPELINES:
        raise ValueError(f"INPUT.PIPELINE: {i.PIPELINE!r}; valid choices: {', '.join(PIPELINES)}")
    if i.PAD.MODE not in PAD_MODES:
        raise ValueError(f"INPUT.PAD.MODE: {i.PAD.MODE!r}; valid choices: {', '.join(PAD_MODES)}")
    if i.PAD.MODE != "none" and not (i.CROP.ENABLED and i.CROP.TYPE == "absolute"):
        raise ValueError(
            f"INPUT.PAD.MODE {i.PAD.MODE!r} pads to INPUT.CROP.SIZE: it needs INPUT.CROP.ENABLED "
            f"True and INPUT.CROP.TYPE 'absolute' (got {i.CROP.ENABLED}, {i.CROP.TYPE!r})"
        )
    if i.PIPELINE == "nvidia":
        check_nvidia_pipeline_config(cfg)
    elif getattr(cfg.DATALOADER, "CLASS_UNIFORM", None) is not None and (
        cfg.DATALOADER.CLASS_UNIFORM.ENABLED
    ):
        raise ValueError(
            "DATALOADER.CLASS_UNIFORM.ENABLED: the crop centred on a class centroid is part of "
            f"INPUT.PIPELINE 'nvidia'; set that pipeline (got {i.PIPELINE!r}) or disable "
            "class-uniform sampling"
        )
    if i.PIPELINE != "mmseg":
        return
    if i.COLOR_AUG:
        raise ValueError(
            "INPUT.COLOR_AUG: detectron2's colour jitter is not part of INPUT.PIPELINE 'mmseg'; "
            "set it False (MMSegmentation's PhotoMetricDistortion is INPUT.PHOTOMETRIC)"
        )
    _pair(i.RESIZE, "TRAIN_SCALE", "INPUT.RESIZE.TRAIN_SCALE", integer=True)
    _pair(i.RESIZE, "TEST_SCALE", "INPUT.RESIZE.TEST_SCALE", integer=True)
    _range(i.RESIZE, "RATIO_RANGE", "INPUT.RESIZE.RATIO_RANGE")
    if not 0.0 <= i.FLIP_PROB <= 1.0:
        raise ValueError(f"INPUT.FLIP_PROB: {i.FLIP_PROB!r} must lie in [0, 1]")
    if i.CROP.ENABLED:
        if i.CROP.TYPE != "absolute":
            raise ValueError(
                f"INPUT.CROP.TYPE: {i.CROP.TYPE!r}; INPUT.PIPELINE 'mmseg' crops a fixed "
                "INPUT.CROP.SIZE (h, w): set 'absolute'"
            )
        _pair(i.CROP, "SIZE", "INPUT.CROP.SIZE", integer=True)
        if not 0.0 < i.CROP.SINGLE_CATEGORY_MAX_AREA <= 1.0:
            raise ValueError(
                "INPUT.CROP.SINGLE_CATEGORY_MAX_AREA: "
                f"{i.CROP.SINGLE_CATEGORY_MAX_AREA!r} must lie in (0, 1] (MMSegmentation's "
                "cat_max_ratio; 1.0: no constraint)"
            )
    p = i.PHOTOMETRIC
    if p.ENABLED:
        if i.FORMAT != "RGB":
            raise ValueError(
                f"INPUT.PHOTOMETRIC.ENABLED needs INPUT.FORMAT 'RGB' (got {i.FORMAT!r}): its hue "
                "and saturation steps convert RGB to HSV"
            )
        if not p.BRIGHTNESS_DELTA >= 0:
            raise ValueError(f"INPUT.PHOTOMETRIC.BRIGHTNESS_DELTA: {p.BRIGHTNESS_DELTA!r} < 0")
        _range(p, "CONTRAST_RANGE", "INPUT.PHOTOMETRIC.CONTRAST_RANGE")
        _range(p, "SATURATION_RANGE", "INPUT.PHOTOMETRIC.SATURATION_RANGE")
        if not (isinstance(p.HUE_DELTA, int) and 0 < p.HUE_DELTA <= 180):
            raise ValueError(
                f"INPUT.PHOTOMETRIC.HUE_DELTA: {p.HUE_DELTA!r} must be an integer in 1..180 "
                "(OpenCV hue units, 0..179)"
            )


def check_nvidia_pipeline_config(cfg) -> None:
    """Raise ``ValueError`` naming the first invalid key of [41]'s pipeline
    (``INPUT.PIPELINE "nvidia"``)."""
    i, n = cfg.INPUT, cfg.INPUT.NVIDIA
    if i.COLOR_AUG:
        raise ValueError(
            "INPUT.COLOR_AUG: detectron2's colour jitter is not part of INPUT.PIPELINE 'nvidia'; "
            "set it False ([41]'s ColorJitter is INPUT.NVIDIA.COLOR_JITTER)"
        )
    if i.PAD.MODE != "none":
        raise ValueError(
            f"INPUT.PAD.MODE {i.PAD.MODE!r}: INPUT.PIPELINE 'nvidia' pads in its crop "
            "(INPUT.NVIDIA.PAD_PIXEL_VALUE); set 'none'"
        )
    if not (i.CROP.ENABLED and i.CROP.TYPE == "absolute"):
        raise ValueError(
            "INPUT.PIPELINE 'nvidia' crops a fixed INPUT.CROP.SIZE (h, w): set INPUT.CROP.ENABLED "
            f"True and INPUT.CROP.TYPE 'absolute' (got {i.CROP.ENABLED}, {i.CROP.TYPE!r})"
        )
    _pair(i.CROP, "SIZE", "INPUT.CROP.SIZE", integer=True)
    _range(n, "SCALE_RANGE", "INPUT.NVIDIA.SCALE_RANGE")
    if not (isinstance(n.PRE_SIZE, int) and n.PRE_SIZE >= 0):
        raise ValueError(f"INPUT.NVIDIA.PRE_SIZE: {n.PRE_SIZE!r} must be an integer >= 0 (0: off)")
    if not 0.0 <= i.FLIP_PROB <= 1.0:
        raise ValueError(f"INPUT.FLIP_PROB: {i.FLIP_PROB!r} must lie in [0, 1]")
    jitter = n.COLOR_JITTER
    if not (
        isinstance(jitter, (list, tuple))
        and len(jitter) == 4
        and all(isinstance(v, (int, float)) and v >= 0 for v in jitter)
        and jitter[3] <= 0.5
    ):
        raise ValueError(
            f"INPUT.NVIDIA.COLOR_JITTER: {jitter!r} must be (brightness, contrast, saturation, "
            "hue), each >= 0, hue <= 0.5"
        )
    if i.FORMAT != "RGB" and any(jitter):
        raise ValueError(
            f"INPUT.NVIDIA.COLOR_JITTER needs INPUT.FORMAT 'RGB' (got {i.FORMAT!r}): its "
            "saturation and hue steps work on RGB"
        )


def build_nvidia_train_augmentations(cfg):
    """[41]'s training pipeline: RandomSizeAndCrop (class-uniform centroid) -> flip ->
    ColorJitter -> optional Gaussian blur (nvidia_pipeline.py)."""
    i, n = cfg.INPUT, cfg.INPUT.NVIDIA
    augs = [
        N.RandomSizeAndCrop(
            i.CROP.SIZE,
            n.SCALE_RANGE,
            n.PRE_SIZE,
            n.PAD_PIXEL_VALUE,
            cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
        ),
        N.RandomFlip(i.FLIP_PROB),
    ]
    if any(n.COLOR_JITTER):
        augs.append(N.ColorJitter(*n.COLOR_JITTER))
    if n.GAUSSIAN_BLUR:
        augs.append(N.RandomGaussianBlur())
    return augs


def build_mmseg_train_augmentations(cfg):
    """MMSegmentation's training pipeline: RandomResize -> RandomCrop(cat_max_ratio) ->
    RandomFlip -> PhotoMetricDistortion (padding: the mapper / the model, ``INPUT.PAD.MODE``)."""
    check_mmseg_pipeline_config(cfg)
    i = cfg.INPUT
    augs = [M.RandomRescale(i.RESIZE.TRAIN_SCALE, i.RESIZE.RATIO_RANGE)]
    if i.CROP.ENABLED:
        augs.append(
            M.CatMaxRatioCrop(
                i.CROP.SIZE, i.CROP.SINGLE_CATEGORY_MAX_AREA, cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE
            )
        )
    augs.append(M.RandomFlip(i.FLIP_PROB))
    if i.PHOTOMETRIC.ENABLED:
        p = i.PHOTOMETRIC
        augs.append(
            M.PhotoMetricDistortion(
                p.BRIGHTNESS_DELTA, p.CONTRAST_RANGE, p.SATURATION_RANGE, p.HUE_DELTA
            )
        )
    return augs


def build_train_augmentations(cfg):
    """The training augmentations of ``INPUT.PIPELINE``."""
    check_mmseg_pipeline_config(cfg)
    if cfg.INPUT.PIPELINE == "mmseg":
        return build_mmseg_train_augmentations(cfg)
    if cfg.INPUT.PIPELINE == "nvidia":
        return build_nvidia_train_augmentations(cfg)
    return build_detectron2_train_augmentations(cfg)


def build_detectron2_train_augmentations(cfg):
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
    """``INPUT.PIPELINE "mmseg"``: keep-ratio resize to ``INPUT.RESIZE.TEST_SCALE``
    (MMSegmentation's test ``Resize(scale, keep_ratio=True)``). ``"detectron2"``: test images keep
    their size unless INPUT.MIN_SIZE_TEST asks for a resize (0: no resize); ``"nvidia"`` tests as
    ``"detectron2"`` ([41] evaluates Cityscapes at full size, Mapillary with the long edge at
    2177: MIN_SIZE_TEST = MAX_SIZE_TEST = 2177). Predictions are
    compared with the full-resolution labels either way."""
    check_mmseg_pipeline_config(cfg)
    if cfg.INPUT.PIPELINE == "mmseg":
        return [M.Rescale(cfg.INPUT.RESIZE.TEST_SCALE)]
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
        pad_size=None,
        pad_pixel_value=0,
    ):
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.num_classes = num_classes
        self.ignore_value = ignore_value
        self.dataset_ignore_label = dataset_ignore_label
        self.valid_label_values = set(range(num_classes)) | {dataset_ignore_label}
        # INPUT.PAD.MODE "pixel" (training): image and label padded to this (h, w) after the
        # augmentations (mmcv's Pad(size=crop_size)); None: no padding here
        self.pad_size = tuple(pad_size) if pad_size is not None else None
        self.pad_pixel_value = pad_pixel_value

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
            "pad_size": tuple(cfg.INPUT.CROP.SIZE)
            if is_train and cfg.INPUT.PAD.MODE == "pixel"
            else None,
            "pad_pixel_value": cfg.INPUT.PAD.PIXEL_VALUE,
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

        # (class_id, x, y) of a class-uniform sample (DATALOADER.CLASS_UNIFORM), else None
        centroid = dataset_dict.pop("class_uniform_centroid", None)
        image, sem_seg = self._augment(image, sem_seg, centroid)
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if sem_seg is not None:
            dataset_dict["sem_seg"] = torch.as_tensor(sem_seg.astype(np.int64))
        return dataset_dict

    def _augment(self, image, sem_seg=None, centroid=None):
        """``(image, sem_seg)`` after the augmentations (and the training pad, if any)."""
        aug_input = T.AugInput(image, sem_seg=sem_seg)
        aug_input.class_uniform_centroid = centroid
        self.augmentations(aug_input)
        image, sem_seg = aug_input.image, aug_input.sem_seg
        if self.pad_size is not None:
            image = M.pad_to_size(image, self.pad_size, self.pad_pixel_value)
            if sem_seg is not None:
                sem_seg = M.pad_to_size(sem_seg, self.pad_size, self.ignore_value)
        return image, sem_seg

    def model_input(self, image: np.ndarray) -> dict:
        """The model input of an image already in memory, ``(H, W, 3)`` uint8 in
        ``INPUT.FORMAT``, prepared as :meth:`__call__` prepares a dataset image:
        ``{"image": augmented CHW tensor, "height": H, "width": W}`` (the model resizes its
        output back to ``height`` x ``width``). The visualisation tools use it, so that their
        predictions are evaluation's (test-time resize included)."""
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3):
            shape = getattr(image, "shape", None)
            raise ValueError(f"image must be an (H, W, 3) array, got shape {shape}")
        h, w = image.shape[:2]
        out, _ = self._augment(image)
        tensor = torch.as_tensor(np.ascontiguousarray(out.transpose(2, 0, 1)))
        return {"image": tensor, "height": h, "width": w}

    @classmethod
    def for_test_images(cls, cfg):
        """The test-time mapper of ``cfg`` without a dataset (images given in memory to
        :meth:`model_input`): the augmentations of ``build_test_augmentations(cfg)``, as the
        evaluation loader's ``SemanticSegmentationMapper(cfg, is_train=False)`` has them."""
        ignore = cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE
        return cls(
            False,
            augmentations=build_test_augmentations(cfg),
            image_format=cfg.INPUT.FORMAT,
            num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            ignore_value=ignore,
            dataset_ignore_label=ignore,
        )
