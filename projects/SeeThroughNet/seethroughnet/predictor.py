"""A trained model applied to your own images, exactly as evaluation applies it.

    from seethroughnet.predictor import Predictor

    predictor = Predictor("projects/SeeThroughNet/configs/Cityscapes/seethroughnet_W48.yaml",
                          weights="model_final.pth", device="cuda")
    pred = predictor("frame.png")              # a path, or an (H, W, 3) uint8 array
    pred.classes                               # (H, W) int64 class indices (trainIds)
    pred.overlay()                             # (H, W, 3) uint8 RGB, palette + class names
    predictor(bgr_array, format="BGR", probabilities=True).probabilities   # (K, H, W) float32
    for pred in predictor.predict_many(["a.png", "folder/", "frames/*.jpg"]):
        ...

The model comes from :func:`seethroughnet.experiments.models.load_model` (strict, safe
loading). The input goes through evaluation's test mapper
(``SemanticSegmentationMapper.for_test_images``: ``INPUT.MIN_SIZE_TEST`` or
``INPUT.RESIZE.TEST_SCALE``), then ``model([input])[0]["sem_seg"]``: the model's own inference,
chosen by the config (``TEST.SEE_THROUGH.SCALES`` / ``FLIP`` / ``MERGE`` / ``MODE`` for
SeeThroughNet: single scale, multi-scale + flip, sliding window; ``TEST.CPP_SEGMENTOR.MODE`` for
the CPP plug-in models), its output resized back to the image size. Pass those keys in ``opts``
to change the inference mode. One image per forward call, as evaluation's test loader does
(batch 1: a bigger batch would pad images to a common size and change the logits).

Images that are not 8-bit colour are converted, with an :class:`InputConversionWarning`:
grayscale (8 or 16 bit) has its channel repeated into R, G, B; 16-bit values are scaled to
8 bits (``round(v / 257)``). Float arrays, other channel counts and files that cannot be decoded
are refused with an :class:`InputError` naming the input. The command line is
``demo/demo.py`` (:mod:`seethroughnet.visualization.demo`); see ``docs/predictor.md``.
"""

from __future__ import annotations

import glob
import os
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch

__all__ = [
    "IMAGE_EXTENSIONS",
    "InputConversionWarning",
    "InputError",
    "Prediction",
    "Predictor",
    "as_rgb",
    "list_images",
    "read_image_file",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

ImageLike = Union[str, os.PathLike, np.ndarray]


class InputError(ValueError):
    """An input the predictor cannot use (the message names it and says what to do)."""


class InputConversionWarning(UserWarning):
    """A grayscale or 16-bit image was converted to 8-bit colour before prediction."""


# ----------------------------------------------------------------------------------------------
# inputs
def _to_uint8(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16 or (array.dtype.kind in "iu" and array.size and array.max() > 255):
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise InputError(
                f"{name}: integer values outside 0..65535 (range {array.min()}..{array.max()}); "
                "give an 8-bit or 16-bit image"
            )
        warnings.warn(
            f"{name}: 16-bit image scaled to 8 bits (round(v / 257)); the model was trained on "
            "8-bit images",
            InputConversionWarning,
            stacklevel=3,
        )
        return np.round(array.astype(np.float64) / 257.0).astype(np.uint8)
    if array.dtype.kind in "iu" or array.dtype == np.bool_:
        if array.size and array.min() < 0:
            raise InputError(f"{name}: negative pixel values; give a uint8 image (0..255)")
        return array.astype(np.uint8)
    raise InputError(
        f"{name}: pixel type {array.dtype} is not supported; give a uint8 (0..255) or uint16 image "
        "(a float image in [0, 1]: (image * 255).round().astype(np.uint8))"
    )


def as_rgb(image: np.ndarray, format: str = "RGB", name: str = "image") -> np.ndarray:
    """An array as ``(H, W, 3)`` uint8 RGB. ``image``: ``(H, W, 3)`` in ``format`` (``RGB`` or
    ``BGR``), or grayscale ``(H, W)`` / ``(H, W, 1)``; uint8, or uint16 (scaled to 8 bits).
    Grayscale and 16-bit inputs are converted with an :class:`InputConversionWarning`."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name}: expected a path or a numpy array, got {type(image).__name__}")
    fmt = str(format).upper()
    if fmt not in ("RGB", "BGR"):
        raise InputError(f"{name}: format {format!r} is not supported; use 'RGB' or 'BGR'")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = _to_uint8(image, name)
        warnings.warn(
            f"{name}: grayscale image; its channel is repeated into R, G and B (the model was "
            "trained on colour images)",
            InputConversionWarning,
            stacklevel=2,
        )
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    if image.ndim != 3 or image.shape[2] != 3:
        hint = " (drop the alpha channel: image[..., :3])" if image.ndim == 3 else ""
        raise InputError(
            f"{name}: expected an (H, W, 3) colour or (H, W) grayscale array, got shape "
            f"{tuple(image.shape)}{hint}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"{name}: empty image of shape {tuple(image.shape)}")
    image = _to_uint8(image, name)
    if fmt == "BGR":
        image = image[:, :, ::-1]
    return np.ascontiguousarray(image)


def read_image_file(path) -> np.ndarray:
    """An image file as ``(H, W, 3)`` uint8 RGB, decoded as the evaluation loader decodes it
    (detectron2's ``read_image``, EXIF orientation applied); grayscale and 16-bit files are
    converted as :func:`as_rgb` converts arrays."""
    from PIL import Image, ImageOps

    from .visualization.models import read_image

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode.startswith("I") or mode == "F":  # 16/32-bit integer or float grayscale
                im = ImageOps.exif_transpose(im)
                array = np.array(im)
                if mode == "F":
                    raise InputError(
                        f"{path}: floating-point image (PIL mode F) is not supported; save it as "
                        "an 8-bit or 16-bit PNG"
                    )
                if array.size and array.min() >= 0 and array.max() <= 65535:
                    array = array.astype(np.uint16)  # PIL's mode I holds 16-bit PNGs as int32
                return as_rgb(array, "RGB", name=path)
        image = read_image(path)
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError) as e:  # PIL's undecodable / truncated files
        raise InputError(
            f"{path} cannot be decoded as an image ({type(e).__name__}: {e}); give a PNG or JPEG "
            "file"
        ) from None
    if mode in ("L", "LA", "1"):
        warnings.warn(
            f"{path}: grayscale image; its channel is repeated into R, G and B (the model was "
            "trained on colour images)",
            InputConversionWarning,
            stacklevel=2,
        )
    return image


def list_images(inputs: Union[str, os.PathLike, Sequence]) -> List[str]:
    """Image paths from files, glob patterns and folders (a folder: its files with an image
    extension, :data:`IMAGE_EXTENSIONS`, sorted; not recursive). An input that matches nothing
    raises an :class:`InputError` naming it."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths: List[str] = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            found = sorted(
                os.path.join(item, f)
                for f in os.listdir(item)
                if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(item, f))
            )
            if not found:
                raise InputError(
                    f"folder {item} holds no image file ({', '.join(IMAGE_EXTENSIONS)}); "
                    "check the path"
                )
        elif os.path.isfile(item):
            found = [item]
        elif glob.has_magic(item):
            found = sorted(p for p in glob.glob(item) if os.path.isfile(p))
            if not found:
                raise InputError(
                    f"pattern {item} matches no file; check the path (quote the pattern so "
                    "that the shell does not expand it)"
                )
        else:
            raise InputError(f"input {item} does not exist (neither a file, a folder nor a glob)")
        paths.extend(found)
    return paths


# ----------------------------------------------------------------------------------------------
@dataclass
class Prediction:
    """One image's prediction. ``classes``: ``(H, W)`` int64 class indices (trainIds for
    Cityscapes) at the image size; ``image``: the ``(H, W, 3)`` uint8 RGB image;
    ``logits``: ``(K, H, W)`` float32 scores as evaluation computes them (on request);
    ``probabilities``: their softmax over classes (on request); ``source``: the path, or
    ``None`` for an array."""

    classes: np.ndarray
    image: np.ndarray
    metadata: object = field(repr=False)
    logits: Optional[torch.Tensor] = field(default=None, repr=False)
    probabilities: Optional[np.ndarray] = field(default=None, repr=False)
    source: Optional[str] = None

    def overlay(self, alpha: float = 0.6, names: bool = True, scale: float = 1.0) -> np.ndarray:
        """The classes in the dataset palette over the image, ``(H, W, 3)`` uint8 RGB (times
        ``scale``). ``names``: detectron2's ``Visualizer.draw_sem_seg`` (class names written on the
        segments); else a plain blend ``(1 - alpha) * image + alpha * palette`` (faster, for
        video)."""
        from .visualization.figures import colorize, draw_sem_seg

        if names:
            return draw_sem_seg(self.image, self.classes, self.metadata, alpha=alpha, scale=scale)
        out = (1.0 - alpha) * self.image.astype(np.float32) + alpha * colorize(
            self.classes, self.metadata.stuff_colors
        ).astype(np.float32)
        out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
        if scale != 1.0:
            from PIL import Image

            h, w = out.shape[:2]
            size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
            out = np.asarray(Image.fromarray(out).resize(size, Image.BILINEAR))
        return out

    def label_map(self, ids: str = "train") -> np.ndarray:
        """``(H, W)`` label image to save as PNG: ``ids="train"``: the class indices (uint8, or
        uint16 above 256 classes); ``ids="cityscapes"``: Cityscapes labelIds (uint8, the
        benchmark's format; 19-class Cityscapes models only)."""
        if ids == "train":
            k = len(self.metadata.stuff_classes)
            return self.classes.astype(np.uint8 if k <= 256 else np.uint16)
        if ids == "cityscapes":
            from .data.datasets import CITYSCAPES_STUFF_CLASSES
            from .experiments.export import trainid_to_labelid_lut

            classes = list(self.metadata.stuff_classes)
            if classes != list(CITYSCAPES_STUFF_CLASSES):
                raise InputError(
                    f"Cityscapes labelIds need a 19-class Cityscapes model; this model's "
                    f"{len(classes)} classes are {classes[:4]}...: write trainIds instead"
                )
            return trainid_to_labelid_lut()[self.classes.astype(np.uint8)]
        raise ValueError(f"ids must be 'train' or 'cityscapes', got {ids!r}")


class Predictor:
    """A model from a config and weights, applied to images as evaluation applies it.

    Args:
        config: config file path, or a built ``CfgNode`` (used as it is).
        weights: checkpoint; ``None``: ``MODEL.WEIGHTS`` (random init if empty); ``""``: random
            init.
        opts: ``KEY VALUE`` overrides (e.g. ``TEST.SEE_THROUGH.SCALES "[0.5, 1.0, 2.0]"
            TEST.SEE_THROUGH.FLIP True``, ``TEST.SEE_THROUGH.MODE slide``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ``None``: ``MODEL.DEVICE``.
        input_format: channel order of the arrays given to :meth:`__call__` (``"RGB"`` or
            ``"BGR"``); ``None``: the config's ``INPUT.FORMAT``, as detectron2's
            ``DefaultPredictor``. Paths are always decoded correctly whatever this is.
        allow_unsafe_config, trust_weights: ``--allow-unsafe-config`` / ``--trust-weights-file``
            (:mod:`seethroughnet.utils.safe_load`).
    """

    def __init__(
        self,
        config,
        weights: Optional[str] = None,
        opts: Sequence[str] = (),
        device: Optional[str] = None,
        *,
        input_format: Optional[str] = None,
        allow_unsafe_config: bool = False,
        trust_weights: bool = False,
    ):
        from .experiments.models import load_model

        if not isinstance(config, (str, os.PathLike)):
            if opts or device:
                config = config.clone()
                config.defrost()
                config.merge_from_list(list(opts))
                if device:
                    config.MODEL.DEVICE = device
        cfg, model = load_model(
            config,
            weights,
            opts,
            device,
            allow_unsafe_config=allow_unsafe_config,
            trust_weights=trust_weights,
        )
        self._setup(cfg, model, input_format)

    @classmethod
    def from_model(cls, cfg, model, *, input_format: Optional[str] = None) -> "Predictor":
        """A predictor around an already built model (put in eval mode) and its config."""
        self = cls.__new__(cls)
        model.eval()
        self._setup(cfg, model, input_format)
        return self

    def _setup(self, cfg, model, input_format):
        from .data.dataset_mappers import SemanticSegmentationMapper
        from .visualization.models import class_metadata

        fmt = (input_format or cfg.INPUT.FORMAT).upper()
        if fmt not in ("RGB", "BGR"):
            raise InputError(f"input_format {fmt!r} is not supported; use 'RGB' or 'BGR'")
        self.cfg, self.model, self.input_format = cfg, model, fmt
        self.mapper = SemanticSegmentationMapper.for_test_images(cfg)
        self.metadata = class_metadata(cfg)

    @property
    def device(self) -> torch.device:
        p = next(iter(self.model.parameters()), None)
        return p.device if p is not None else torch.device(self.cfg.MODEL.DEVICE)

    @property
    def class_names(self) -> List[str]:
        return list(self.metadata.stuff_classes)

    def read(self, image: ImageLike, format: Optional[str] = None) -> np.ndarray:
        """``image`` (path or array in ``format``, default :attr:`input_format`) as RGB uint8."""
        if isinstance(image, (str, os.PathLike)):
            return read_image_file(image)
        return as_rgb(image, format or self.input_format)

    @torch.no_grad()
    def __call__(
        self,
        image: ImageLike,
        *,
        format: Optional[str] = None,
        probabilities: bool = False,
        logits: bool = False,
    ) -> Prediction:
        """Predict one image: a path, or an ``(H, W, 3)`` uint8 array in ``format`` (default
        :attr:`input_format`); see :class:`Prediction`."""
        from .visualization.models import predict_logits

        rgb = self.read(image, format)
        scores = predict_logits(self.model, self.cfg, rgb, self.mapper).float()
        classes = scores.argmax(0).cpu().numpy().astype(np.int64)
        probs = scores.softmax(0).cpu().numpy() if probabilities else None
        return Prediction(
            classes=classes,
            image=rgb,
            metadata=self.metadata,
            logits=scores.cpu() if logits else None,
            probabilities=probs,
            source=os.fspath(image) if isinstance(image, (str, os.PathLike)) else None,
        )

    def predict_many(
        self, inputs: Union[str, os.PathLike, Iterable[ImageLike]], **kwargs
    ) -> Iterator[Prediction]:
        """Predictions for several images, one at a time (lazily, batch 1 as evaluation):
        ``inputs`` is a folder, a glob pattern, a path, or a list of paths / patterns / folders /
        arrays. Paths are expanded by :func:`list_images` before the first prediction (an input
        that matches nothing fails at once). ``kwargs``: as :meth:`__call__`."""
        if isinstance(inputs, (str, os.PathLike)):
            items: list = list_images(inputs)
        else:
            items = []
            for item in inputs:
                items.extend([item] if isinstance(item, np.ndarray) else list_images(item))
        for item in items:
            yield self(item, **kwargs)
