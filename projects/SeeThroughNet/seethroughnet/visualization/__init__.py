"""Visualisation: Grad-CAM for segmentation classes (:mod:`.gradcam`, plain PyTorch), figures
(:mod:`.figures`, matplotlib / detectron2's Visualizer) and model loading (:mod:`.models`).
The command lines are ``tools/gradcam.py``, ``tools/compare_models.py``,
``tools/overlay_predictions.py``, ``tools/plot_iou_comparison.py`` and
``tools/plot_training_curves.py``; see ``docs/visualization.md``."""
from .gradcam import DEFAULT_LAYERS, GradCAMResult, grad_cam, resolve_class, resolve_layer, segmentation_forward

__all__ = ["DEFAULT_LAYERS", "GradCAMResult", "grad_cam", "resolve_class", "resolve_layer", "segmentation_forward"]
