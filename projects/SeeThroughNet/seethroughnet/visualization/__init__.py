"""Visualisation: Grad-CAM for segmentation classes (:mod:`.gradcam`, plain PyTorch), figures
(:mod:`.figures`, matplotlib / detectron2's Visualizer) and class metadata, images and predictions
(:mod:`.models`; the model itself comes from :func:`seethroughnet.experiments.models.load_model`).
The command lines are ``tools/gradcam.py``, ``tools/compare_models.py``,
``tools/overlay_predictions.py``, ``tools/plot_iou_comparison.py`` and
``tools/plot_training_curves.py``; see ``docs/visualization.md``. ``demo/demo.py``
(:mod:`.demo`) runs :class:`seethroughnet.predictor.Predictor` on images, folders and videos; see
``docs/predictor.md``."""

from .gradcam import (
    DEFAULT_LAYERS,
    GradCAMResult,
    grad_cam,
    resolve_class,
    resolve_layer,
    segmentation_forward,
)

__all__ = [
    "DEFAULT_LAYERS",
    "GradCAMResult",
    "grad_cam",
    "resolve_class",
    "resolve_layer",
    "segmentation_forward",
]
