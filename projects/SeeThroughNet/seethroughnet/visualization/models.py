"""Class metadata, images and predictions for the visualisation tools (the model itself comes
from :func:`seethroughnet.experiments.models.load_model`)."""

from __future__ import annotations

import os

import numpy as np
import torch

__all__ = [
    "class_metadata",
    "model_input",
    "predict",
    "predict_logits",
    "read_image",
    "to_input_format",
]


def class_metadata(cfg):
    """Metadata with ``stuff_classes`` / ``stuff_colors`` for ``MODEL.SEM_SEG_HEAD.NUM_CLASSES``:
    the first of ``DATASETS.TEST`` / ``DATASETS.TRAIN`` whose class list has that length, else
    the Cityscapes palette for 19 classes, else ``class 0..K-1`` with fixed random colours."""
    from detectron2.data import MetadataCatalog
    from detectron2.data.catalog import Metadata

    import seethroughnet.data.datasets  # noqa: F401

    k = int(cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES)
    for name in list(cfg.DATASETS.TEST) + list(cfg.DATASETS.TRAIN):
        md = MetadataCatalog.get(name)
        classes = md.get("stuff_classes", None)
        if classes is not None and len(classes) == k:
            colors = md.get("stuff_colors", None)
            if colors is None or len(colors) != k:
                colors = _colors(k)
            return Metadata(
                name=f"vis_{name}",
                stuff_classes=list(classes),
                stuff_colors=[tuple(c) for c in colors],
            )
    if k == 19:
        md = MetadataCatalog.get("cityscapes_fine_sem_seg_val")
        return Metadata(
            name="vis_cityscapes",
            stuff_classes=list(md.stuff_classes),
            stuff_colors=list(md.stuff_colors),
        )
    return Metadata(
        name=f"vis_{k}_classes",
        stuff_classes=[f"class {i}" for i in range(k)],
        stuff_colors=_colors(k),
    )


def _colors(k):
    rng = np.random.default_rng(0)
    return [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(k)]


def read_image(path: str) -> np.ndarray:
    """An image file as ``(H, W, 3)`` uint8 RGB (EXIF orientation applied)."""
    from detectron2.data.detection_utils import read_image as d2_read

    if not os.path.isfile(path):
        raise FileNotFoundError(f"image {path} does not exist")
    return np.ascontiguousarray(d2_read(path, format="RGB"))


def to_input_format(image_rgb: np.ndarray, input_format: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 array in ``INPUT.FORMAT`` (``RGB`` or ``BGR``) from an RGB array, as
    detectron2's ``read_image(path, format=INPUT.FORMAT)`` gives the evaluation loader."""
    if input_format == "BGR":
        return np.ascontiguousarray(image_rgb[:, :, ::-1])
    if input_format != "RGB":
        raise ValueError(
            f"INPUT.FORMAT {input_format!r} is not supported by the visualisation tools (RGB or "
            "BGR)"
        )
    return np.ascontiguousarray(image_rgb)


def model_input(cfg, image_rgb: np.ndarray, mapper=None) -> dict:
    """Evaluation's model input for an RGB image: ``{"image", "height", "width"}`` from the
    test mapper of ``cfg`` (``SemanticSegmentationMapper.model_input``: the test-time resize
    of ``INPUT.MIN_SIZE_TEST`` / ``INPUT.RESIZE.TEST_SCALE`` applied, ``height`` x ``width``
    the image's own size, to which the model resizes its output). ``mapper``: that mapper built
    once by the caller (:class:`seethroughnet.predictor.Predictor`), else built here."""
    if mapper is None:
        from seethroughnet.data.dataset_mappers import SemanticSegmentationMapper

        mapper = SemanticSegmentationMapper.for_test_images(cfg)
    return mapper.model_input(to_input_format(image_rgb, cfg.INPUT.FORMAT))


@torch.no_grad()
def predict_logits(model, cfg, image_rgb: np.ndarray, mapper=None) -> torch.Tensor:
    """The model's eval-mode logits ``(K, H, W)`` for an RGB image ``(H, W, 3)``, computed as
    evaluation computes them: :func:`model_input` (test-time resize), then
    ``model([input])[0]["sem_seg"]`` (test scales / flip per the config, output resized back
    to the image size)."""
    return model([model_input(cfg, image_rgb, mapper)])[0]["sem_seg"]


def predict(model, cfg, image_rgb: np.ndarray) -> np.ndarray:
    """:func:`predict_logits` as ``(H, W)`` int64 class indices."""
    return predict_logits(model, cfg, image_rgb).argmax(0).cpu().numpy().astype(np.int64)
