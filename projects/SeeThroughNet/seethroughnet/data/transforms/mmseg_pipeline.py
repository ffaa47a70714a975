"""MMSegmentation 1.x's training and test pipelines as detectron2 augmentations (the Table 1 models,
``INPUT.PIPELINE: "mmseg"``).

MMSegmentation 1.2.2 (``configs/_base_/datasets/{cityscapes,pascal_voc12_aug,pascal_context}.py``)
trains with ``RandomResize(scale, ratio_range=(0.5, 2.0), keep_ratio=True)`` ->
``RandomCrop(crop_size, cat_max_ratio=0.75)`` -> ``RandomFlip(prob=0.5)`` ->
``PhotoMetricDistortion()`` (-> ``Pad(size=crop_size)`` for VOC-aug), then its model's
``SegDataPreProcessor`` normalises and pads to ``crop_size`` (image 0, label 255); it tests with
``Resize(scale, keep_ratio=True)``. Each step below reproduces that transform's arithmetic and its
random draws (the same ``numpy.random`` calls in the same order, so a seeded run draws what
MMSegmentation draws):

* :func:`keep_ratio_size` / :class:`RescaleTransform` -- mmcv's ``imrescale``: the scale
  ``(a, b)`` bounds the image's longer side by ``max(a, b)`` and its shorter side by
  ``min(a, b)``; factor ``f = min(max(a, b) / long, min(a, b) / short)``; new side
  ``int(side * f + 0.5)``; OpenCV ``INTER_LINEAR`` for images, ``INTER_NEAREST`` for labels.
* :class:`RandomRescale` -- mmcv's ``RandomResize``: ``r ~ U[lo, hi)``
  (``np.random.random_sample``), scale ``(int(a * r), int(b * r))``, then the keep-ratio rescale.
* :func:`crop_is_accepted` / :class:`CatMaxRatioCrop` -- mmseg's ``RandomCrop``: offsets
  ``randint(0, max(H - h, 0) + 1)`` (rows, then columns); with ``cat_max_ratio < 1`` a box is kept
  when its label crop holds more than one class (ignore excluded) and the largest class covers
  less than ``cat_max_ratio`` of the non-ignored pixels; up to 10 boxes are checked and, if all
  fail, an 11th is drawn and used unchecked.
* :class:`RandomFlip` -- mmcv's ``RandomFlip(prob)``: one ``random_sample() < prob`` draw
  (what ``np.random.choice(["horizontal", None], p=[prob, 1 - prob])`` draws).
* :func:`photometric_distortion` / :class:`PhotoMetricDistortion` -- mmseg's
  ``PhotoMetricDistortion``: brightness (``+ U(-32, 32)``), then contrast first or last
  (``randint(2)``), saturation (HSV channel 1 ``x U(0.5, 1.5)``), hue (HSV channel 0
  ``+ randint(-18, 18)`` mod 180, i.e. -18..17: numpy's upper bound is exclusive), contrast
  (``x U(0.5, 1.5)``); each step with probability 1/2; every step rounds to uint8 by clipping to
  0..255 and truncating, as MMSegmentation does. MMSegmentation's images are BGR and this
  project's RGB: the HSV conversions use OpenCV's ``RGB2HSV`` / ``HSV2RGB``, which give the same
  values as ``BGR2HSV`` / ``HSV2BGR`` on the channel-reversed image.
* :func:`pad_to_size` -- mmcv's ``Pad(size=crop_size)`` (bottom / right).

The pure functions take explicit parameters (the deterministic steps that
``tests/mmseg/test_mmseg_pipeline.py`` compares with MMSegmentation's transforms); the
augmentations draw those parameters. Padding in normalised space (``SegDataPreProcessor``) is the
model's: :class:`~seethroughnet.modeling.segmentors.CPPSegmentor` with ``INPUT.PAD.MODE
"normalized"``.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
from detectron2.data.transforms import Augmentation, CropTransform, HFlipTransform, NoOpTransform
from fvcore.transforms.transform import Transform

__all__ = [
    "keep_ratio_size",
    "random_rescale_scale",
    "RescaleTransform",
    "Rescale",
    "RandomRescale",
    "crop_is_accepted",
    "CatMaxRatioCrop",
    "RandomFlip",
    "photometric_distortion",
    "PhotometricTransform",
    "PhotoMetricDistortion",
    "pad_to_size",
    "CROP_TRIES",
]

#: boxes checked against ``cat_max_ratio`` before an unchecked one is used (mmseg's RandomCrop)
CROP_TRIES = 10


# ------------------------------------------------------------------------------------- resize
def keep_ratio_size(height: int, width: int, scale: Sequence[float]) -> Tuple[int, int]:
    """``(new_height, new_width)`` of mmcv's keep-ratio ``imrescale`` of an ``height x width``
    image to ``scale`` (two numbers; their larger bounds the longer side, their smaller the shorter
    side)."""
    long_bound, short_bound = max(scale), min(scale)
    factor = min(long_bound / max(height, width), short_bound / min(height, width))
    return int(height * float(factor) + 0.5), int(width * float(factor) + 0.5)


def random_rescale_scale(scale: Sequence[int], ratio_range: Sequence[float]) -> Tuple[int, int]:
    """The scale mmcv's ``RandomResize(scale, ratio_range)`` draws: ``r ~ U[lo, hi)`` (one
    ``np.random.random_sample()``), ``(int(scale[0] * r), int(scale[1] * r))``."""
    lo, hi = ratio_range
    ratio = np.random.random_sample() * (hi - lo) + lo
    return int(scale[0] * ratio), int(scale[1] * ratio)


class RescaleTransform(Transform):
    """Resize ``h x w`` -> ``new_h x new_w`` with OpenCV: bilinear for images, nearest for label
    maps (mmcv's ``imresize`` with the cv2 backend)."""

    def __init__(self, h: int, w: int, new_h: int, new_w: int):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return _cv2_resize(img, self.new_h, self.new_w, cv2.INTER_LINEAR)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return _cv2_resize(segmentation, self.new_h, self.new_w, cv2.INTER_NEAREST)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords[:, 0] = coords[:, 0] * (self.new_w * 1.0 / self.w)
        coords[:, 1] = coords[:, 1] * (self.new_h * 1.0 / self.h)
        return coords

    def inverse(self) -> Transform:
        return RescaleTransform(self.new_h, self.new_w, self.h, self.w)


def _cv2_resize(array: np.ndarray, new_h: int, new_w: int, interpolation: int) -> np.ndarray:
    if array.shape[:2] == (new_h, new_w) and interpolation == cv2.INTER_NEAREST:
        return array
    out = cv2.resize(array, (new_w, new_h), interpolation=interpolation)
    if array.ndim == 3 and out.ndim == 2:  # OpenCV drops a trailing channel axis of length 1
        out = out[:, :, None]
    return out


class Rescale(Augmentation):
    """Keep-ratio resize to a fixed ``scale`` (mmseg's test ``Resize(scale, keep_ratio=True)``)."""

    def __init__(self, scale: Sequence[int]):
        super().__init__()
        self.scale = tuple(scale)

    def get_transform(self, image):
        h, w = image.shape[:2]
        return RescaleTransform(h, w, *keep_ratio_size(h, w, self.scale))


class RandomRescale(Augmentation):
    """Keep-ratio resize to ``scale`` times a ratio drawn uniformly from ``ratio_range`` (mmcv's
    ``RandomResize(scale, ratio_range, keep_ratio=True)``)."""

    def __init__(self, scale: Sequence[int], ratio_range: Sequence[float]):
        super().__init__()
        self.scale = tuple(scale)
        self.ratio_range = tuple(ratio_range)

    def get_transform(self, image):
        h, w = image.shape[:2]
        drawn = random_rescale_scale(self.scale, self.ratio_range)
        return RescaleTransform(h, w, *keep_ratio_size(h, w, drawn))


# --------------------------------------------------------------------------------------- crop
def crop_is_accepted(label_crop: np.ndarray, cat_max_ratio: float, ignore_value: int) -> bool:
    """mmseg's ``RandomCrop`` test of one box: more than one non-ignored class in ``label_crop``
    and the largest of them below ``cat_max_ratio`` of the non-ignored pixels."""
    labels, counts = np.unique(label_crop, return_counts=True)
    counts = counts[labels != ignore_value]
    return len(counts) > 1 and np.max(counts) / np.sum(counts) < cat_max_ratio


class CatMaxRatioCrop(Augmentation):
    """A random ``crop_size`` (h, w) box (the whole side where the image is smaller), redrawn while
    one class dominates it (mmseg's ``RandomCrop(crop_size, cat_max_ratio, ignore_index)``;
    ``cat_max_ratio >= 1`` draws one box)."""

    def __init__(self, crop_size: Sequence[int], cat_max_ratio: float, ignore_value: int):
        super().__init__()
        self.crop_size = tuple(int(s) for s in crop_size)
        self.cat_max_ratio = float(cat_max_ratio)
        self.ignore_value = ignore_value

    def _box(self, h: int, w: int) -> Tuple[int, int, int, int]:
        ch, cw = self.crop_size
        y0 = np.random.randint(0, max(h - ch, 0) + 1)
        x0 = np.random.randint(0, max(w - cw, 0) + 1)
        return y0, x0, min(ch, h), min(cw, w)

    def get_transform(self, image, sem_seg):
        h, w = image.shape[:2]
        y0, x0, ch, cw = self._box(h, w)
        if self.cat_max_ratio < 1.0:
            for _ in range(CROP_TRIES):
                crop = sem_seg[y0 : y0 + ch, x0 : x0 + cw]
                if crop_is_accepted(crop, self.cat_max_ratio, self.ignore_value):
                    break
                y0, x0, ch, cw = self._box(h, w)
        return CropTransform(x0, y0, cw, ch)


class RandomFlip(Augmentation):
    """Horizontal flip with probability ``prob`` (mmcv's ``RandomFlip(prob)``, one uniform draw)."""

    def __init__(self, prob: float):
        super().__init__()
        self.prob = float(prob)

    def get_transform(self, image):
        if np.random.random_sample() < self.prob:
            return HFlipTransform(image.shape[1])
        return NoOpTransform()


# -------------------------------------------------------------------------------- photometric
def _scaled_uint8(x: np.ndarray, alpha: float = 1, beta: float = 0) -> np.ndarray:
    """``x * alpha + beta`` in float32, clipped to 0..255, truncated to uint8."""
    return np.clip(x.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def photometric_distortion(
    image: np.ndarray,
    brightness: Optional[float] = None,
    contrast: Optional[float] = None,
    contrast_first: bool = False,
    saturation: Optional[float] = None,
    hue: Optional[int] = None,
) -> np.ndarray:
    """mmseg's ``PhotoMetricDistortion`` with given factors on an RGB uint8 image ``(H, W, 3)``;
    ``None`` skips a step. Order: brightness (add), contrast (multiply) if ``contrast_first``,
    saturation (multiply HSV channel 1), hue (add to HSV channel 0, mod 180), contrast if not
    ``contrast_first``."""
    img = image
    if brightness is not None:
        img = _scaled_uint8(img, beta=brightness)
    if contrast_first and contrast is not None:
        img = _scaled_uint8(img, alpha=contrast)
    if saturation is not None:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[:, :, 1] = _scaled_uint8(hsv[:, :, 1], alpha=saturation)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if hue is not None:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + hue) % 180
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if not contrast_first and contrast is not None:
        img = _scaled_uint8(img, alpha=contrast)
    return img


class PhotometricTransform(Transform):
    """:func:`photometric_distortion` with drawn factors; label maps and coordinates unchanged."""

    def __init__(self, brightness, contrast, contrast_first, saturation, hue):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(
                f"PhotoMetricDistortion needs an RGB uint8 image (H, W, 3), got {img.dtype} "
                f"{img.shape}; INPUT.PHOTOMETRIC needs INPUT.FORMAT RGB"
            )
        return photometric_distortion(
            img, self.brightness, self.contrast, self.contrast_first, self.saturation, self.hue
        )

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def inverse(self) -> Transform:
        raise NotImplementedError("a photometric distortion has no inverse")


class PhotoMetricDistortion(Augmentation):
    """Draws mmseg's ``PhotoMetricDistortion`` factors in its order: brightness? (``randint(2)``)
    ``U(-d, d)``; contrast-last? (``randint(2)``); [contrast? ``U(lo, hi)`` if first]; saturation?
    ``U(lo, hi)``; hue? ``randint(-d, d)``; [contrast? ``U(lo, hi)`` if last]."""

    def __init__(
        self,
        brightness_delta: float = 32,
        contrast_range: Sequence[float] = (0.5, 1.5),
        saturation_range: Sequence[float] = (0.5, 1.5),
        hue_delta: int = 18,
    ):
        super().__init__()
        self.brightness_delta = brightness_delta
        self.contrast_range = tuple(contrast_range)
        self.saturation_range = tuple(saturation_range)
        self.hue_delta = int(hue_delta)

    def _contrast(self):
        return np.random.uniform(*self.contrast_range) if np.random.randint(2) else None

    def get_transform(self, image):
        d = self.brightness_delta
        brightness = np.random.uniform(-d, d) if np.random.randint(2) else None
        contrast_first = np.random.randint(2) == 1
        contrast = self._contrast() if contrast_first else None
        saturation = np.random.uniform(*self.saturation_range) if np.random.randint(2) else None
        d = self.hue_delta
        hue = int(np.random.randint(-d, d)) if np.random.randint(2) else None
        if not contrast_first:
            contrast = self._contrast()
        return PhotometricTransform(brightness, contrast, contrast_first, saturation, hue)


# ---------------------------------------------------------------------------------------- pad
def pad_to_size(array: np.ndarray, size: Sequence[int], value) -> np.ndarray:
    """``array`` (H, W[, C]) padded at the bottom and right with ``value`` to at least ``size``
    (h, w) (mmcv's ``Pad(size=crop_size)``; a larger side stays)."""
    h, w = array.shape[:2]
    ph, pw = max(int(size[0]) - h, 0), max(int(size[1]) - w, 0)
    if ph == 0 and pw == 0:
        return array
    widths = [(0, ph), (0, pw)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, mode="constant", constant_values=value)
