"""The command lines behind ``tools/gradcam.py``, ``tools/compare_models.py``,
``tools/overlay_predictions.py``, ``tools/plot_iou_comparison.py`` and
``tools/plot_training_curves.py``. Each ``*_main(argv)`` returns 0 on success and 2 with a
one-paragraph ``error:`` message on stderr for bad input (unknown class or layer, missing
file, a checkpoint that does not match the config, ...)."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import Optional, Sequence

import numpy as np

__all__ = ["compare_main", "gradcam_main", "iou_main", "overlay_main", "curves_main", "explain"]

UNTRAINED = "random-init model: the maps show its untrained structure, not what it learnt"


def _cli(fn):
    """Bad input -> ``error: ...`` on stderr and exit status 2 instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(argv: Optional[Sequence[str]] = None) -> int:
        from seethroughnet.checkpoint import CheckpointMismatchError, UnreadableCheckpointError

        try:
            return fn(argv)
        except CheckpointMismatchError as e:
            print(f"error: the checkpoint does not match the config: {e}", file=sys.stderr)
        except (FileNotFoundError, ValueError, KeyError, TypeError, UnreadableCheckpointError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            print(f"error: {msg}", file=sys.stderr)
        return 2

    return wrapper


def _model_args(ap, prefix="", required=True, what="the model"):
    dash = f"--{prefix}-" if prefix else "--"
    ap.add_argument(
        f"{dash}config-file", required=required, metavar="YAML", help=f"detectron2 config of {what}"
    )
    ap.add_argument(
        f"{dash}weights",
        default=None,
        metavar="PTH",
        help=f"checkpoint of {what} (default: MODEL.WEIGHTS of the config; random init if empty)",
    )


def _safety_args(ap):
    from seethroughnet.utils.safe_load import add_safety_arguments

    add_safety_arguments(ap)


def _safety(a):
    return {"allow_unsafe_config": a.allow_unsafe_config, "trust_weights": a.trust_weights_file}


def _box(values):
    return tuple(int(round(float(v))) for v in values) if values is not None else None


def explain(model, cfg, image_rgb: np.ndarray, class_name, layer: Optional[str] = None, box=None):
    """Grad-CAM of ``class_name`` (name or index) for ``image_rgb`` ``(H, W, 3)`` uint8 with a
    model loaded by :func:`seethroughnet.experiments.models.load_model`; returns the
    :class:`.gradcam.GradCAMResult`."""
    from .gradcam import default_layer, grad_cam, resolve_class, segmentation_forward
    from .models import class_metadata, model_input

    md = class_metadata(cfg)
    k = resolve_class(class_name, md.stuff_classes)
    layer = layer or default_layer(model)
    inp = model_input(cfg, image_rgb)  # evaluation's input: the test-time resize applied
    fwd = segmentation_forward(model, inp["image"], output_size=(inp["height"], inp["width"]))
    return grad_cam(model, fwd, layer, k, box=box)


def _weights_note(weights, cfg):
    return UNTRAINED if not (weights or cfg.MODEL.WEIGHTS) else None


def _report(res, names, prefix=""):
    kind = {
        "predicted": "pixels predicted as the class",
        "box": "pixels in the box",
        "all": "whole image (no pixel is predicted as the class)",
    }[res.region_kind]
    print(
        f"{prefix}Grad-CAM '{names[res.class_index]}' at {res.layer} {res.activation_shape}: "
        f"{int(res.region.sum())} pixels summed ({kind}), score {res.score:.3g}, "
        "map peak at (row, col) "
        f"{tuple(int(v) for v in np.unravel_index(int(np.argmax(res.cam)), res.cam.shape))}"
    )


# ----------------------------------------------------------------------------------------------
@_cli
def gradcam_main(argv=None) -> int:
    """Grad-CAM of one class for one image, written as a jet overlay at the image size."""
    ap = argparse.ArgumentParser(prog="tools/gradcam.py", description=gradcam_main.__doc__)
    _model_args(ap)
    ap.add_argument("--image", required=True)
    ap.add_argument("--class", dest="cls", required=True, help="class name (e.g. car) or index")
    ap.add_argument(
        "--layer",
        default=None,
        help="module name from model.named_modules(), NAME:KEY for dict/list outputs "
        "(default: net.encoder:res5 for SeeThroughNet, backbone.res5 for SemanticSegmentor)",
    )
    ap.add_argument(
        "--box",
        nargs=4,
        type=float,
        default=None,
        metavar=("X0", "Y0", "X1", "Y1"),
        help="sum the class logits over this box (pixels, x1/y1 exclusive) instead of the "
        "predicted pixels",
    )
    ap.add_argument(
        "--alpha", type=float, default=0.5, help="weight of the heat map in the overlay"
    )
    ap.add_argument("--output", required=True, help="overlay PNG")
    ap.add_argument("--device", default=None, help="override MODEL.DEVICE")
    _safety_args(ap)
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    a = ap.parse_args(argv)
    from seethroughnet.experiments.models import load_model

    from .figures import draw_box, overlay_cam, save_image
    from .models import class_metadata, read_image

    image = read_image(a.image)
    cfg, model = load_model(a.config_file, a.weights, a.opts, a.device, **_safety(a))
    res = explain(model, cfg, image, a.cls, a.layer, _box(a.box))
    out = overlay_cam(image, res.cam, a.alpha)
    if a.box is not None:
        out = draw_box(out, _box(a.box))
    save_image(out, a.output)
    _report(res, class_metadata(cfg).stuff_classes)
    print(f"wrote {a.output}")
    return 0


@_cli
def compare_main(argv=None) -> int:
    """image | baseline prediction | CPP prediction | baseline Grad-CAM | CPP Grad-CAM, with an
    optional zoomed box (SeeThroughNet Figs. 1 and 7)."""
    ap = argparse.ArgumentParser(prog="tools/compare_models.py", description=compare_main.__doc__)
    _model_args(ap, "baseline", what="the baseline (e.g. without CPP)")
    _model_args(ap, "cpp", what="the CPP model")
    ap.add_argument("--image", required=True)
    ap.add_argument("--class", dest="cls", required=True, help="class name (e.g. car) or index")
    ap.add_argument(
        "--box",
        nargs=4,
        type=float,
        default=None,
        metavar=("X0", "Y0", "X1", "Y1"),
        help="region to zoom into; also the pixels whose class logits Grad-CAM sums "
        "(unless --cam-region predicted)",
    )
    ap.add_argument(
        "--cam-region",
        choices=("box", "predicted"),
        default="box",
        help="with --box: explain the box (default) or each model's predicted pixels",
    )
    ap.add_argument(
        "--layer",
        default=None,
        help="Grad-CAM layer for both models (default per meta-architecture)",
    )
    ap.add_argument("--labels", nargs=2, default=("baseline", "CPP"), metavar=("BASELINE", "CPP"))
    ap.add_argument("--note", default=None, help="caption under the figure")
    ap.add_argument("--output", required=True)
    ap.add_argument("--dpi", type=int, default=100)
    ap.add_argument("--device", default=None)
    _safety_args(ap)
    ap.add_argument(
        "opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides for both models"
    )
    a = ap.parse_args(argv)
    from seethroughnet.experiments.models import load_model

    from .figures import comparison_figure, save_figure
    from .models import class_metadata, predict, read_image

    image = read_image(a.image)
    box = _box(a.box)
    if box is not None:  # validate against the image before the (slow) model loads
        from .gradcam import check_box

        box = check_box(box, *image.shape[:2])
    preds, cams, notes, names = {}, {}, [], None
    for label, config, weights in (
        (a.labels[0], a.baseline_config_file, a.baseline_weights),
        (a.labels[1], a.cpp_config_file, a.cpp_weights),
    ):
        try:
            cfg, model = load_model(config, weights, a.opts, a.device, **_safety(a))
        except Exception as e:
            if hasattr(e, "args") and e.args and isinstance(e.args[0], str):
                e.args = (f"{label} model: {e.args[0]}",) + e.args[1:]
            raise
        md = class_metadata(cfg)
        names = names or md
        preds[label] = predict(model, cfg, image)
        res = explain(model, cfg, image, a.cls, a.layer, box if a.cam_region == "box" else None)
        cams[label] = res.cam
        _report(res, md.stuff_classes, prefix=f"{label}: ")
        if _weights_note(weights, cfg):
            notes.append(f"{label}: random init")
    cls_name = names.stuff_classes[res.class_index]
    note = a.note if a.note is not None else ("; ".join(notes) if notes else None)
    fig = comparison_figure(image, preds, cams, names.stuff_colors, cls_name, box, note=note)
    save_figure(fig, a.output, dpi=a.dpi)
    print(f"wrote {a.output}")
    return 0


@_cli
def overlay_main(argv=None) -> int:
    """Predictions drawn over the images in the dataset palette (detectron2's
    Visualizer.draw_sem_seg); with --gt the ground truth is drawn beside them."""
    ap = argparse.ArgumentParser(
        prog="tools/overlay_predictions.py", description=overlay_main.__doc__
    )
    _model_args(ap)
    ap.add_argument("--input", nargs="+", required=True, metavar="IMAGE")
    ap.add_argument(
        "--gt",
        nargs="+",
        default=None,
        metavar="LABEL_PNG",
        help="train-id label PNGs, one per image (ignored value drawn transparent)",
    )
    ap.add_argument(
        "--output",
        required=True,
        help="a .png path for one image, else a folder (<stem>_overlay.png per image)",
    )
    ap.add_argument("--alpha", type=float, default=0.6)
    ap.add_argument("--scale", type=float, default=1.0, help="output size relative to the image")
    ap.add_argument("--device", default=None)
    _safety_args(ap)
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    a = ap.parse_args(argv)
    from PIL import Image

    from seethroughnet.experiments.models import load_model

    from .figures import draw_sem_seg, save_image
    from .models import class_metadata, predict, read_image

    if a.gt is not None and len(a.gt) != len(a.input):
        raise ValueError(
            f"--gt needs one label PNG per --input image ({len(a.input)}), got {len(a.gt)}"
        )
    single = len(a.input) == 1 and a.output.lower().endswith(".png")
    for p in a.input + (a.gt or []):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p} does not exist")
    cfg, model = load_model(a.config_file, a.weights, a.opts, a.device, **_safety(a))
    md = class_metadata(cfg)
    for i, path in enumerate(a.input):
        image = read_image(path)
        pred = predict(model, cfg, image)
        out = draw_sem_seg(image, pred, md, alpha=a.alpha, scale=a.scale)
        if a.gt is not None:
            gt = np.array(Image.open(a.gt[i]))
            if gt.ndim != 2 or gt.shape != image.shape[:2]:
                raise ValueError(
                    f"{a.gt[i]}: expected a single-channel label map of size {image.shape[:2]}, "
                    f"got {gt.shape}"
                )
            gt_vis = draw_sem_seg(
                image, gt.astype(np.int64), md, alpha=a.alpha, scale=a.scale
            )  # ids >= K are not drawn
            gap = np.full((out.shape[0], 8, 3), 255, np.uint8)
            out = np.concatenate([gt_vis, gap, out], axis=1)
        dest = (
            a.output
            if single
            else os.path.join(
                a.output, os.path.splitext(os.path.basename(path))[0] + "_overlay.png"
            )
        )
        save_image(out, dest)
        print(f"wrote {dest}")
    return 0


def _dataset_order(ious):
    """``ious`` in the class order of the first known dataset (Cityscapes, CamVid) holding all
    its classes; unchanged otherwise."""
    from seethroughnet.data.datasets import CAMVID_CLASSES, CITYSCAPES_STUFF_CLASSES

    for order in (CITYSCAPES_STUFF_CLASSES, CAMVID_CLASSES):
        if set(ious) <= set(order):
            return {c: ious[c] for c in order if c in ious}
    return ious


@_cli
def iou_main(argv=None) -> int:
    """Per-class IoU of two evaluations side by side (bars, difference written above)."""
    ap = argparse.ArgumentParser(prog="tools/plot_iou_comparison.py", description=iou_main.__doc__)
    ap.add_argument(
        "first", help="metrics.json (last evaluation line) or a result JSON/.pth of the baseline"
    )
    ap.add_argument("second", help="the same for the model compared (e.g. with CPP)")
    ap.add_argument("--labels", nargs=2, default=("baseline", "CPP"), metavar=("FIRST", "SECOND"))
    ap.add_argument(
        "--prefix", default="sem_seg", help="evaluator key prefix (sem_seg, cityscapes_sem_seg)"
    )
    ap.add_argument("--title", default=None)
    ap.add_argument("--output", required=True)
    ap.add_argument("--dpi", type=int, default=100)
    a = ap.parse_args(argv)
    from .figures import iou_comparison_figure, read_iou, save_figure

    ia, ma = read_iou(a.first, a.prefix)
    ib, mb = read_iou(a.second, a.prefix)
    ia = _dataset_order(ia)  # metrics.json keys are sorted alphabetically
    title = a.title
    if title is None and ma is not None and mb is not None:
        title = f"mIoU {a.labels[0]} {ma:.2f} vs {a.labels[1]} {mb:.2f} ({mb - ma:+.2f})"
    save_figure(iou_comparison_figure(ia, ib, a.labels, (ma, mb), title), a.output, dpi=a.dpi)
    print(f"wrote {a.output}")
    return 0


@_cli
def curves_main(argv=None) -> int:
    """Training curves from detectron2's metrics.json: total_loss, each loss term, lr, mIoU."""
    ap = argparse.ArgumentParser(
        prog="tools/plot_training_curves.py", description=curves_main.__doc__
    )
    ap.add_argument("metrics", help="OUTPUT_DIR/metrics.json")
    ap.add_argument(
        "--output", default=None, help="PNG (default: training_curves.png beside metrics.json)"
    )
    ap.add_argument(
        "--smooth", type=int, default=1, help="running median over this many logged points (losses)"
    )
    ap.add_argument(
        "--separate",
        action="store_true",
        help="one panel per quantity instead of four grouped panels",
    )
    ap.add_argument("--miou-key", default="sem_seg/mIoU")
    ap.add_argument("--title", default=None)
    ap.add_argument("--dpi", type=int, default=100)
    a = ap.parse_args(argv)
    from .figures import load_metrics, save_figure, training_curves_figure

    records = load_metrics(a.metrics)
    out = a.output or os.path.join(
        os.path.dirname(os.path.abspath(a.metrics)), "training_curves.png"
    )
    fig = training_curves_figure(
        records, smooth=a.smooth, separate=a.separate, miou_key=a.miou_key, title=a.title
    )
    save_figure(fig, out, dpi=a.dpi)
    print(f"wrote {out}")
    return 0
