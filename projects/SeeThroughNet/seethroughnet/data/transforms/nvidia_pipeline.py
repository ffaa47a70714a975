"""The training pipeline of Tao et al. 2020 ([41], NVIDIA/semantic-segmentation) as detectron2
augmentations (``INPUT.PIPELINE: "nvidia"``, the W48 configs).

[41]'s training transform (``datasets/__init__.py setup_loaders``, commit 7726b14) is
``RandomSizeAndCrop(crop_size, crop_nopad=False, scale_min, scale_max, pre_size)`` ->
``RandomHorizontallyFlip()`` -> ``ColorJitter(color_aug x 4)`` -> (``RandomGaussianBlur()`` if
``--gblur``) -> ToTensor / Normalize (the model normalises here, ``MODEL.PIXEL_MEAN / STD``).
Each step below reproduces that transform's arithmetic and its random draws (the same Python
``random`` / ``numpy.random`` calls in the same order, so a seeded run draws what [41] draws):

* :func:`pre_scale`, :func:`scaled_size`, :func:`scaled_centroid` --
  ``joint_transforms.RandomSizeAndCrop``: ``s ~ random.uniform(scale_min, scale_max)``, times
  ``pre_size / long edge`` when ``pre_size`` is set; new size ``int(w * s) x int(h * s)``; the
  centroid ``(int(x * s), int(y * s))``; the image resized with PIL bicubic, the label with PIL
  nearest (:func:`resize_image`, :func:`resize_label`).
* :func:`crop_padding`, :func:`pad_both_sides` -- ``RandomCrop`` with ``nopad=False``: a side
  shorter than the crop gets ``(crop - side) // 2 + 1`` pixels on *both* ends (``ImageOps.expand``),
  image with 0 (``pad_color (0, 0, 0)``), label with the ignore value. [41] does not shift the
  centroid by this padding; neither does this.
* :func:`draw_crop_origin` -- ``RandomCrop.crop_in_image``: with a centroid ``(cx, cy)``,
  ``x0 = random.randint(cx - crop_w, cx)`` clamped to ``[0, w - crop_w]``, then ``y0`` likewise
  (the crop spans ``[x0, x0 + crop_w)``: it holds the centroid's column unless ``x0 = cx - crop_w``,
  probability ``1 / (crop_w + 1)``, or the clamp moves it; [41] as written); without, ``x0 =
  random.randint(0, w - crop_w)`` (0 and no draw when ``w == crop_w``), then ``y0``. An image
  exactly the crop's size is returned unchanged, with no draw.
* :class:`RandomFlip` -- ``RandomHorizontallyFlip``: flipped when ``random.random() < 0.5``.
* :func:`draw_color_jitter`, :func:`color_jitter` -- ``transforms.transforms.ColorJitter``:
  factors ``np.random.uniform(max(0, 1 - b), 1 + b)`` for brightness, then contrast, saturation,
  hue ``np.random.uniform(-h, h)`` (a zero setting draws nothing and skips its step), applied in
  the order of ``np.random.shuffle`` of that list, with PIL's operations (torchvision's
  ``adjust_brightness / contrast / saturation / hue`` on PIL images, the functions [41] copied).
* :func:`draw_blur_sigma`, :func:`gaussian_blur` -- ``RandomGaussianBlur``: ``sigma = 0.15 +
  random.random() * 1.15``; scikit-image's ``gaussian(img, sigma, multichannel=True)`` (the image
  as floats in [0, 1], each channel filtered with ``scipy.ndimage.gaussian_filter``, mode
  ``nearest``, truncate 4), times 255, truncated to uint8.
"""

from __future__ import annotations

import random
from typing import List, Optional, Sequence, Tuple

import numpy as np
from detectron2.data.transforms import (
    Augmentation,
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    ResizeTransform,
    TransformList,
)
from fvcore.transforms.transform import Transform
from PIL import Image

__all__ = [
    "pre_scale",
    "scaled_size",
    "scaled_centroid",
    "resize_image",
    "resize_label",
    "crop_padding",
    "pad_both_sides",
    "draw_crop_origin",
    "PadBothSidesTransform",
    "RandomSizeAndCrop",
    "RandomFlip",
    "JITTER_STEPS",
    "draw_color_jitter",
    "color_jitter",
    "ColorJitterTransform",
    "ColorJitter",
    "draw_blur_sigma",
    "gaussian_blur",
    "GaussianBlurTransform",
    "RandomGaussianBlur",
]


# ------------------------------------------------------------------------------ scale and crop
def pre_scale(width: int, height: int, pre_size: int) -> float:
    """``pre_size / long edge`` ([41] ``--pre_size``: the long edge brought to ``pre_size``
    before the random scale); the width counts as the long edge only when strictly longer."""
    return pre_size / width if width > height else pre_size / height


def scaled_size(width: int, height: int, scale: float) -> Tuple[int, int]:
    """``(int(width * scale), int(height * scale))``."""
    return int(width * scale), int(height * scale)


def scaled_centroid(centroid: Sequence[int], scale: float) -> Tuple[int, int]:
    """A centroid ``(x, y)`` in the resized image: ``(int(x * scale), int(y * scale))``."""
    return int(centroid[0] * scale), int(centroid[1] * scale)


def resize_image(image: np.ndarray, new_w: int, new_h: int) -> np.ndarray:
    """PIL bicubic resize of an H x W x 3 uint8 image."""
    return np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BICUBIC))


def resize_label(label: np.ndarray, new_w: int, new_h: int) -> np.ndarray:
    """PIL nearest resize of an H x W label map."""
    return np.asarray(Image.fromarray(label).resize((new_w, new_h), Image.NEAREST))


def crop_padding(width: int, height: int, crop_h: int, crop_w: int) -> Tuple[int, int]:
    """``(pad_w, pad_h)`` added on both ends of each side shorter than the crop:
    ``(crop - side) // 2 + 1``, else 0."""
    pad_w = (crop_w - width) // 2 + 1 if crop_w > width else 0
    pad_h = (crop_h - height) // 2 + 1 if crop_h > height else 0
    return pad_w, pad_h


def pad_both_sides(array: np.ndarray, pad_w: int, pad_h: int, value) -> np.ndarray:
    """``array`` (H x W or H x W x C) with ``pad_h`` rows above and below and ``pad_w`` columns
    left and right of ``value``."""
    widths = [(pad_h, pad_h), (pad_w, pad_w)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, mode="constant", constant_values=value)


def draw_crop_origin(
    width: int, height: int, crop_w: int, crop_h: int, centroid: Optional[Sequence[int]]
) -> Tuple[int, int]:
    """The crop's top-left ``(x0, y0)`` in a ``width x height`` image at least the crop's size
    (``random.randint`` draws as [41]'s ``RandomCrop.crop_in_image``; module docstring)."""
    if centroid is not None:
        cx, cy = centroid
        x0 = min(width - crop_w, max(0, random.randint(cx - crop_w, cx)))
        y0 = min(height - crop_h, max(0, random.randint(cy - crop_h, cy)))
        return x0, y0
    x0 = 0 if width == crop_w else random.randint(0, width - crop_w)
    y0 = 0 if height == crop_h else random.randint(0, height - crop_h)
    return x0, y0


class PadBothSidesTransform(Transform):
    """:func:`pad_both_sides`: image with ``pad_value``, label with ``ignore_value``."""

    def __init__(self, pad_w: int, pad_h: int, pad_value, ignore_value: int):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return pad_both_sides(img, self.pad_w, self.pad_h, self.pad_value)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return pad_both_sides(segmentation, self.pad_w, self.pad_h, self.ignore_value)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords[:, 0] += self.pad_w
        coords[:, 1] += self.pad_h
        return coords


class RandomSizeAndCrop(Augmentation):
    """[41]'s ``RandomSizeAndCrop(crop_size, crop_nopad=False, scale_min, scale_max,
    pre_size)``: random scale (bicubic image, nearest label), padding of sides shorter than the
    crop (image ``pad_value``, label ``ignore_value``), a crop of ``crop_size`` (h, w) covering the
    sample's class-uniform centroid if it has one (``class_uniform_centroid``: ``(class_id, x,
    y)`` in the original label's pixels, set by the class-uniform loader; ``None`` otherwise).
    """

    input_args = ("image", "class_uniform_centroid")

    def __init__(
        self,
        crop_size: Sequence[int],
        scale_range: Sequence[float],
        pre_size: int = 0,
        pad_value=0,
        ignore_value: int = 255,
    ):
        super().__init__()
        self.crop_h, self.crop_w = (int(v) for v in crop_size)
        self.scale_min, self.scale_max = (float(v) for v in scale_range)
        self.pre_size, self.pad_value, self.ignore_value = int(pre_size), pad_value, ignore_value

    def get_transform(self, image, class_uniform_centroid=None):
        h, w = image.shape[:2]
        scale = random.uniform(self.scale_min, self.scale_max)
        if self.pre_size:
            scale *= pre_scale(w, h, self.pre_size)
        new_w, new_h = scaled_size(w, h, scale)
        centroid = None
        if class_uniform_centroid is not None:
            centroid = scaled_centroid(class_uniform_centroid[1:], scale)
        steps: List[Transform] = [ResizeTransform(h, w, new_h, new_w, Image.BICUBIC)]
        if (new_w, new_h) == (self.crop_w, self.crop_h):
            return TransformList(steps)
        pad_w, pad_h = crop_padding(new_w, new_h, self.crop_h, self.crop_w)
        if pad_w or pad_h:
            steps.append(PadBothSidesTransform(pad_w, pad_h, self.pad_value, self.ignore_value))
        padded_w, padded_h = new_w + 2 * pad_w, new_h + 2 * pad_h
        x0, y0 = draw_crop_origin(padded_w, padded_h, self.crop_w, self.crop_h, centroid)
        steps.append(CropTransform(x0, y0, self.crop_w, self.crop_h, padded_w, padded_h))
        return TransformList(steps)


class RandomFlip(Augmentation):
    """[41]'s ``RandomHorizontallyFlip``: a horizontal flip when ``random.random() < prob``
    (prob 0.5 in [41])."""

    def __init__(self, prob: float = 0.5):
        super().__init__()
        self.prob = prob

    def get_transform(self, image):
        if random.random() < self.prob:
            return HFlipTransform(image.shape[1])
        return NoOpTransform()


# ------------------------------------------------------------------------------------- colour
#: the jitter steps in the order [41] draws their factors
JITTER_STEPS = ("brightness", "contrast", "saturation", "hue")


def draw_color_jitter(
    brightness: float, contrast: float, saturation: float, hue: float
) -> List[Tuple[str, float]]:
    """The ``(step, factor)`` list [41]'s ``ColorJitter.get_params`` draws, in the order it
    applies them: factors with ``np.random.uniform`` in :data:`JITTER_STEPS` order (steps set to 0
    left out), then ``np.random.shuffle`` of the list."""
    steps = []
    for name, amount in zip(JITTER_STEPS, (brightness, contrast, saturation, hue)):
        if amount > 0:
            low, high = (-amount, amount) if name == "hue" else (max(0.0, 1 - amount), 1 + amount)
            steps.append((name, float(np.random.uniform(low, high))))
    order = list(range(len(steps)))
    np.random.shuffle(order)  # [41] shuffles its list of lambdas: the same permutation draw
    return [steps[i] for i in order]


def color_jitter(image: np.ndarray, steps: Sequence[Tuple[str, float]]) -> np.ndarray:
    """``image`` (H x W x 3 uint8 RGB) through torchvision's PIL ``adjust_<step>(factor)`` for each
    ``(step, factor)`` in order."""
    from torchvision.transforms import functional as F

    adjust = {
        "brightness": F.adjust_brightness,
        "contrast": F.adjust_contrast,
        "saturation": F.adjust_saturation,
        "hue": F.adjust_hue,
    }
    pil = Image.fromarray(image)
    for name, factor in steps:
        pil = adjust[name](pil, factor)
    return np.asarray(pil)


class ColorJitterTransform(Transform):
    """:func:`color_jitter` with drawn steps; labels unchanged."""

    def __init__(self, steps):
        super().__init__()
        self.steps = [tuple(s) for s in steps]

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return color_jitter(img, self.steps)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords


class ColorJitter(Augmentation):
    """[41]'s ``ColorJitter(brightness, contrast, saturation, hue)`` (``--color_aug 0.25``
    for all four)."""

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float):
        super().__init__()
        if not 0 <= hue <= 0.5:
            raise ValueError(f"hue jitter {hue!r} must lie in [0, 0.5]")
        self.amounts = (brightness, contrast, saturation, hue)

    def get_transform(self, image):
        return ColorJitterTransform(draw_color_jitter(*self.amounts))


# --------------------------------------------------------------------------------------- blur
def draw_blur_sigma() -> float:
    """[41]'s ``RandomGaussianBlur`` sigma: ``0.15 + random.random() * 1.15``."""
    return 0.15 + random.random() * 1.15


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """scikit-image ``gaussian(image, sigma, multichannel=True)`` of a uint8 image (floats in
    [0, 1], ``scipy.ndimage.gaussian_filter`` per channel, mode ``nearest``, truncate 4), times
    255, truncated to uint8 (``astype``), as [41]'s ``RandomGaussianBlur``."""
    from scipy.ndimage import gaussian_filter

    floats = image.astype(np.float64) / 255.0
    blurred = gaussian_filter(floats, sigma=(sigma, sigma, 0), mode="nearest", truncate=4.0)
    return (blurred * 255).astype(np.uint8)


class GaussianBlurTransform(Transform):
    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return gaussian_blur(img, self.sigma)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords


class RandomGaussianBlur(Augmentation):
    """[41]'s ``RandomGaussianBlur`` (``--gblur``; every image, sigma drawn)."""

    def get_transform(self, image):
        return GaussianBlurTransform(draw_blur_sigma())
