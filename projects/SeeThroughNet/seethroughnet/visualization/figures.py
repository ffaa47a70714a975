"""Figures: Grad-CAM overlays, the baseline-vs-CPP comparison (SeeThroughNet Figs. 1, 6, 7),
prediction overlays in a dataset palette (detectron2's ``Visualizer.draw_sem_seg``), per-class
IoU bars and training curves from detectron2's ``metrics.json``.

Every PNG is written to a temporary file beside the destination and renamed into place.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import matplotlib
import numpy as np

from ..experiments.report import save_png
from ..utils.atomic import atomic_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

__all__ = [
    "colorize",
    "comparison_figure",
    "draw_box",
    "draw_sem_seg",
    "iou_comparison_figure",
    "load_metrics",
    "overlay_cam",
    "read_iou",
    "save_figure",
    "save_image",
    "training_curves_figure",
]

Box = Tuple[int, int, int, int]


# ----------------------------------------------------------------------------------------------
# writing
def save_figure(fig, path: str, dpi: int = 100) -> str:
    """Save a matplotlib figure as PNG (temporary file, then rename) and close it."""
    try:
        return save_png(fig, path, dpi, bbox_inches="tight", pad_inches=0.05)
    finally:
        plt.close(fig)


def save_image(array: np.ndarray, path: str) -> str:
    """Save an ``(H, W, 3)`` uint8 array as PNG (temporary file, then rename)."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array.astype(np.uint8))).save(
            tmp, format="PNG", optimize=True
        )
    return path


# ----------------------------------------------------------------------------------------------
# image panels
def overlay_cam(
    image_rgb: np.ndarray, cam: np.ndarray, alpha: float = 0.5, colormap: str = "jet"
) -> np.ndarray:
    """The ``[0, 1]`` map ``cam`` in ``colormap`` blended over the image (``alpha``: map weight)."""
    if cam.shape != image_rgb.shape[:2]:
        raise ValueError(f"map {cam.shape} and image {image_rgb.shape[:2]} sizes differ")
    heat = matplotlib.colormaps[colormap](np.clip(cam, 0.0, 1.0))[..., :3] * 255.0
    out = (1.0 - alpha) * image_rgb.astype(np.float64) + alpha * heat
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def colorize(
    labels: np.ndarray, colors: Sequence[Sequence[int]], ignore_rgb=(0, 0, 0)
) -> np.ndarray:
    """Class indices ``(H, W)`` as palette colours; indices outside the palette in
    ``ignore_rgb``."""
    table = np.array(list(colors) + [ignore_rgb], dtype=np.uint8)
    idx = np.where((labels >= 0) & (labels < len(colors)), labels, len(colors))
    return table[idx]


def draw_sem_seg(
    image_rgb: np.ndarray,
    labels: np.ndarray,
    metadata,
    alpha: float = 0.6,
    area_threshold: Optional[int] = None,
    scale: float = 1.0,
) -> np.ndarray:
    """detectron2's ``Visualizer.draw_sem_seg`` (palette colours, class names written on the
    segments) over the image; ``(round(scale * H), round(scale * W), 3)`` uint8."""
    from detectron2.utils.visualizer import Visualizer

    vis = Visualizer(image_rgb, metadata, scale=scale)
    return vis.draw_sem_seg(labels, area_threshold=area_threshold, alpha=alpha).get_image()


def draw_box(
    image_rgb: np.ndarray, box: Optional[Box], color=(255, 255, 255), width: int = 2
) -> np.ndarray:
    """A copy with the outline of ``box`` (x0, y0, x1, y1; x1, y1 exclusive) drawn."""
    out = image_rgb.copy()
    if box is None:
        return out
    h, w = out.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, x1, y0, y1 = max(0, x0), min(w, x1), max(0, y0), min(h, y1)
    t = max(1, int(width))
    c = np.array(color, dtype=np.uint8)
    out[y0 : min(y0 + t, y1), x0:x1] = c
    out[max(y1 - t, y0) : y1, x0:x1] = c
    out[y0:y1, x0 : min(x0 + t, x1)] = c
    out[y0:y1, max(x1 - t, x0) : x1] = c
    return out


def comparison_figure(
    image_rgb: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    cams: Mapping[str, np.ndarray],
    colors: Sequence[Sequence[int]],
    class_name: str,
    box: Optional[Box] = None,
    pred_alpha: float = 0.7,
    cam_alpha: float = 0.5,
    note: Optional[str] = None,
):
    """image | prediction per model | Grad-CAM per model (one row), and with ``box`` a second
    row with the box region of every panel enlarged (as in SeeThroughNet Figs. 1 and 7)."""
    panels: List[Tuple[str, np.ndarray]] = [("image", image_rgb)]
    for name, pred in predictions.items():
        col = colorize(pred, colors)
        blend = ((1 - pred_alpha) * image_rgb + pred_alpha * col).astype(np.uint8)
        panels.append((f"{name}: prediction", blend))
    for name, cam in cams.items():
        panels.append((f"{name}: Grad-CAM '{class_name}'", overlay_cam(image_rgb, cam, cam_alpha)))
    h, w = image_rgb.shape[:2]
    n = len(panels)
    pw, title_h, note_h, wspace = 3.2, 0.3, 0.3 if note else 0.05, 0.03
    top_h = (pw - wspace) * h / w
    heights = [top_h]
    if box is not None:
        x0, y0, x1, y1 = box
        heights.append(min(max((pw - wspace) * (y1 - y0) / max(1, x1 - x0), 0.8), 2.5 * pw))
    rows = len(heights)
    fig_h = sum(heights) + title_h * rows + note_h
    fig = plt.figure(figsize=(pw * n, fig_h))
    gs = fig.add_gridspec(
        rows,
        n,
        height_ratios=heights,
        left=0.002,
        right=0.998,
        bottom=note_h / fig_h,
        top=1 - title_h / fig_h,
        hspace=title_h / (sum(heights) / rows),
        wspace=wspace,
    )
    for i, (title, arr) in enumerate(panels):
        ax = fig.add_subplot(gs[0, i])
        ax.imshow(arr, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
        if box is not None:
            x0, y0, x1, y1 = box
            ax.add_patch(
                Rectangle(
                    (x0 - 0.5, y0 - 0.5),
                    x1 - x0,
                    y1 - y0,
                    fill=False,
                    edgecolor="white",
                    linewidth=1.5,
                )
            )
            axz = fig.add_subplot(gs[1, i])
            axz.imshow(arr[y0:y1, x0:x1], interpolation="nearest")
            axz.set_title("zoom", fontsize=8)
            axz.set_axis_off()
    if note:
        fig.text(0.5, 0.1 * note_h / fig_h, note, ha="center", va="bottom", fontsize=8, color="0.3")
    return fig


# ----------------------------------------------------------------------------------------------
# metrics
def load_metrics(path: str) -> List[dict]:
    """detectron2's ``metrics.json`` (one JSON object per line) as a list of dicts sorted by
    ``iteration``; a resumed run's repeated iterations keep the later line; unreadable lines
    (e.g. a line cut by a crash) are skipped."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"metrics file {path} does not exist")
    records: Dict[int, dict] = {}
    unnumbered = []
    bad = 0
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if not isinstance(rec, dict):
                bad += 1
                continue
            it = rec.get("iteration")
            if isinstance(it, (int, float)):
                merged = records.get(int(it), {})
                merged.update(rec)  # eval results can land on their own line for the same iteration
                records[int(it)] = merged
            else:
                unnumbered.append(rec)
    out = [records[k] for k in sorted(records)] + unnumbered
    if not out:
        raise ValueError(
            f"{path}: no JSON lines found"
            + (f" ({bad} unreadable lines)" if bad else "")
            + "; expected detectron2's metrics.json (one JSON object per line)"
        )
    return out


_IOU = re.compile(r"^(?:(?P<prefix>.+)/)?IoU-(?P<cls>.+)$")


def _ious_from_flat(d: Mapping, prefix: str) -> Tuple[Dict[str, float], Optional[float]]:
    ious, miou = {}, None
    for k, v in d.items():
        m = _IOU.match(str(k))
        if m and (m.group("prefix") or prefix) == prefix and isinstance(v, (int, float)):
            ious[m.group("cls")] = float(v)
    for key in (f"{prefix}/mIoU", "mIoU"):
        if isinstance(d.get(key), (int, float)):
            miou = float(d[key])
            break
    return ious, miou


def read_iou(path: str, prefix: str = "sem_seg") -> Tuple[Dict[str, float], Optional[float]]:
    """``({class: IoU}, mIoU)`` from

    * detectron2's ``metrics.json``: the last line with ``<prefix>/IoU-<class>`` keys;
    * a JSON (or ``torch.save``'d ``.pth``) result dict: ``{"sem_seg": {"IoU-road": ...}}`` as
      ``SemSegEvaluator.evaluate`` returns, the flat ``{"IoU-road": ...}``, or
      ``{"per_class_IoU": {...}, "mIoU": ...}`` (``tools/run_demo.py``'s ``demo_results.json``).

    ``.pth`` / ``.pt`` files are read with ``torch.load(weights_only=True)`` and ``.pkl`` files
    by a restricted unpickler (numbers, strings, containers, numpy arrays): a result file never
    runs code (:class:`~seethroughnet.utils.safe_load.UnsafeFileError` otherwise).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"evaluation file {path} does not exist")
    if path.endswith((".pth", ".pt", ".pkl")):
        from ..utils.safe_load import load_weights_file

        hint = (
            "Save evaluation results as JSON (json.dump of the evaluator's dict) and pass that file"
        )
        obj = load_weights_file(path, hint=hint)
        candidates = [obj]
    else:
        with open(path) as f:
            text = f.read()
        try:
            candidates = [json.loads(text)]
        except json.JSONDecodeError:
            candidates = list(reversed(load_metrics(path)))  # JSON lines: the last evaluation first
    for obj in candidates:
        if not isinstance(obj, Mapping):
            continue
        if isinstance(obj.get("per_class_IoU"), Mapping):
            ious = {
                str(k): float(v)
                for k, v in obj["per_class_IoU"].items()
                if isinstance(v, (int, float))
            }
            miou = obj.get("mIoU")
            return ious, float(miou) if isinstance(miou, (int, float)) else None
        if isinstance(obj.get(prefix), Mapping):
            ious, miou = _ious_from_flat(obj[prefix], prefix)
        else:
            ious, miou = _ious_from_flat(obj, prefix)
        if ious:
            return ious, miou
    raise ValueError(
        f"{path}: no '{prefix}/IoU-<class>' values found (expected detectron2's metrics.json "
        "after an evaluation, or a SemSegEvaluator result dict)"
    )


def iou_comparison_figure(
    a: Mapping[str, float],
    b: Mapping[str, float],
    labels=("baseline", "CPP"),
    miou: Tuple[Optional[float], Optional[float]] = (None, None),
    title: Optional[str] = None,
):
    """Grouped bars of per-class IoU (classes in ``a``'s order, then those only in ``b``), the
    difference ``b - a`` written above each pair, and the mIoU pair at the end."""
    classes = list(a) + [c for c in b if c not in a]
    va = [a.get(c, float("nan")) for c in classes]
    vb = [b.get(c, float("nan")) for c in classes]
    if all(m is not None for m in miou):
        classes, va, vb = classes + ["mIoU"], va + [miou[0]], vb + [miou[1]]
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(classes) + 1.5), 4.0))
    bw = 0.4
    ax.bar(x - bw / 2, va, bw, label=labels[0], color="#9e9e9e")
    ax.bar(x + bw / 2, vb, bw, label=labels[1], color="#1f77b4")
    top = np.nanmax(np.concatenate([np.array(va, float), np.array(vb, float), [1.0]]))
    for i, (p, q) in enumerate(zip(va, vb)):
        if math.isfinite(p) and math.isfinite(q):
            d = q - p
            ax.text(
                i,
                max(p, q) + 0.01 * top,
                f"{d:+.1f}",
                ha="center",
                va="bottom",
                fontsize=7,
                color="#2a7d2a" if d > 0 else ("#b22222" if d < 0 else "0.3"),
            )
    ax.set_xticks(x)
    ax.set_xticklabels(classes, rotation=50, ha="right", fontsize=8)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, top * 1.12)
    ax.set_xlim(-0.6, len(classes) - 0.4)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _series(records: Iterable[dict], key: str) -> Tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for r in records:
        v = r.get(key)
        if (
            isinstance(v, (int, float))
            and isinstance(r.get("iteration"), (int, float))
            and math.isfinite(v)
        ):
            xs.append(r["iteration"])
            ys.append(v)
    return np.array(xs), np.array(ys, dtype=float)


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(y) < 2:
        return y
    return np.array([np.median(y[max(0, i - window + 1) : i + 1]) for i in range(len(y))])


def training_curves_figure(
    records: Sequence[dict],
    smooth: int = 1,
    separate: bool = False,
    miou_key: str = "sem_seg/mIoU",
    title: Optional[str] = None,
):
    """Curves over iterations: ``total_loss``, each ``loss_*`` term, ``lr`` and ``miou_key``.

    ``separate=False``: four panels (total loss | loss terms | lr | mIoU); ``True``: one panel per
    quantity. ``smooth``: running median over that many logged points (losses only)."""
    loss_keys = sorted({k for r in records for k in r if k.startswith("loss_")})
    quantities = (["total_loss"] if any("total_loss" in r for r in records) else []) + loss_keys
    if not quantities and not any("lr" in r for r in records):
        raise ValueError(
            "no 'total_loss', 'loss_*' or 'lr' values in the metrics; is this detectron2's "
            "metrics.json?"
        )
    if separate:
        groups = [(q, [q]) for q in quantities] + [("lr", ["lr"]), (miou_key, [miou_key])]
    else:
        groups = [
            ("total_loss", ["total_loss"]),
            ("loss terms", loss_keys),
            ("lr", ["lr"]),
            (miou_key, [miou_key]),
        ]
    ncols = 2 if not separate else min(3, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax, (name, keys) in zip(axes.flat, groups):
        drawn = 0
        for k in keys:
            x, y = _series(records, k)
            if len(x) == 0:
                continue
            if k.startswith("loss") or k == "total_loss":
                y = _smooth(y, smooth)
            ax.plot(x, y, marker="o" if len(x) < 12 else None, markersize=3, linewidth=1.2, label=k)
            drawn += 1
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if not drawn:
            ax.text(
                0.5,
                0.5,
                f"no '{keys[0] if len(keys) == 1 else name}' values in metrics.json",
                ha="center",
                va="center",
                transform=ax.transAxes,
                fontsize=8,
                color="0.4",
            )
        elif len(keys) > 1:
            ax.legend(fontsize=6, ncol=2 if drawn > 5 else 1)
        if name == "lr" and drawn:
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    its = [r["iteration"] for r in records if isinstance(r.get("iteration"), (int, float))]
    if its:  # the same iteration axis in every panel
        pad = max(1.0, 0.03 * (max(its) - min(its)))
        for ax in list(axes.flat)[: len(groups)]:
            ax.set_xlim(min(its) - pad, max(its) + pad)
    for ax in list(axes.flat)[len(groups) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
