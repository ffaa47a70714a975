"""Nearest-neighbour vs Class Probability Preserving targets of one label map (SeeThroughNet
Figs. 2-3).

Writes two PNGs:

* ``--out`` (Figure 2): the label map, then for 1/4, 1/8, 1/16, 1/32 the nearest-neighbour
  down-sampled labels (top row) and the CPP targets (Eq. 1; bottom row) drawn as the
  class-probability-weighted mix of the palette colours (ignored fraction drawn black).
* ``--out-channels`` (Figure 3): one region at ``--region-scale`` -- its labels, the nearest and
  CPP targets, then one panel per class present with that class's CPP channel (0..1).

Examples::

    python tools/plot_cpp_targets.py ../shared/data/camvid/trainannot/0001TP_006690.png \\
        --palette camvid --out /tmp/camvid_cpp.png
    python tools/plot_cpp_targets.py frankfurt_000000_000294_gtFine_labelTrainIds.png \\
        --palette cityscapes --out /tmp/cityscapes_cpp.png

Each PNG is written atomically (:func:`seethroughnet.experiments.report.save_png`). The command
line is ``tools/plot_cpp_targets.py`` (:func:`main`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from seethroughnet.experiments.report import save_png  # noqa: E402
from seethroughnet.nn.cpp import cpp_targets, nearest_downsample  # noqa: E402

# name -> (class names, RGB colours, ignore value). Cityscapes: the 19 train ids and their official
# colours; CamVid: the SegNet tutorial's 11 classes and colours, 11 = void.
PALETTES: Dict[str, Tuple[List[str], List[Tuple[int, int, int]], int]] = {
    "cityscapes": (
        [
            "road",
            "sidewalk",
            "building",
            "wall",
            "fence",
            "pole",
            "traffic light",
            "traffic sign",
            "vegetation",
            "terrain",
            "sky",
            "person",
            "rider",
            "car",
            "truck",
            "bus",
            "train",
            "motorcycle",
            "bicycle",
        ],
        [
            (128, 64, 128),
            (244, 35, 232),
            (70, 70, 70),
            (102, 102, 156),
            (190, 153, 153),
            (153, 153, 153),
            (250, 170, 30),
            (220, 220, 0),
            (107, 142, 35),
            (152, 251, 152),
            (70, 130, 180),
            (220, 20, 60),
            (255, 0, 0),
            (0, 0, 142),
            (0, 0, 70),
            (0, 60, 100),
            (0, 80, 100),
            (0, 0, 230),
            (119, 11, 32),
        ],
        255,
    ),
    "camvid": (
        [
            "sky",
            "building",
            "pole",
            "road",
            "pavement",
            "tree",
            "sign/symbol",
            "fence",
            "car",
            "pedestrian",
            "bicyclist",
        ],
        [
            (128, 128, 128),
            (128, 0, 0),
            (192, 192, 128),
            (128, 64, 128),
            (60, 40, 222),
            (128, 128, 0),
            (192, 128, 128),
            (64, 64, 128),
            (64, 0, 128),
            (64, 64, 0),
            (0, 128, 192),
        ],
        11,
    ),
}
IGNORE_RGB = (0, 0, 0)


def load_label_png(path: str) -> torch.Tensor:
    """A single-channel label PNG as an ``(H, W)`` int64 tensor."""
    img = Image.open(path)
    if img.mode not in ("L", "P", "I", "I;16"):
        raise ValueError(
            f"{path}: expected a single-channel label PNG (mode L/P/I), got mode {img.mode}; "
            f"colour-coded label images are not supported"
        )
    return torch.from_numpy(np.array(img).astype(np.int64))


def palette_array(name: str) -> Tuple[List[str], np.ndarray, int]:
    names, colours, ignore = PALETTES[name]
    table = np.array(list(colours) + [IGNORE_RGB], dtype=np.float64) / 255.0  # (K+1, 3)
    return names, table, ignore


def colour_labels(labels: np.ndarray, table: np.ndarray, ignore: int) -> np.ndarray:
    K = table.shape[0] - 1
    idx = np.where(labels == ignore, K, labels)
    return table[idx]


def colour_fractions(fractions: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``(K+1, h, w)`` class fractions -> ``(h, w, 3)`` probability-weighted colour mix."""
    return np.clip(np.einsum("chw,cd->hwd", fractions, table), 0.0, 1.0)


def _atomic_savefig(fig, out: str, dpi: int) -> None:
    save_png(fig, out, dpi)


def pick_region(fractions: np.ndarray, cells: int) -> Tuple[int, int]:
    """Top-left cell of the ``cells x cells`` window with the largest summed class entropy."""
    p = fractions
    ent = -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)).sum(0)  # (h, w)
    h, w = ent.shape
    ch, cw = min(cells, h), min(cells, w)
    csum = np.pad(ent, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    win = csum[ch:, cw:] - csum[:-ch, cw:] - csum[ch:, :-cw] + csum[:-ch, :-cw]
    i, j = np.unravel_index(np.argmax(win), win.shape)
    return int(i), int(j)


def plot(
    label_path: str,
    palette: str,
    out: str,
    out_channels: Optional[str] = None,
    scales: Sequence[int] = (4, 8, 16, 32),
    region_scale: int = 8,
    region_cells: int = 12,
    region: Optional[Tuple[int, int]] = None,
    dpi: int = 100,
) -> Tuple[str, str]:
    names, table, ignore = palette_array(palette)
    K = len(names)
    labels = load_label_png(label_path)
    H, W = labels.shape
    all_scales = sorted(set(scales) | {region_scale})
    targets = dict(zip(all_scales, cpp_targets(labels, all_scales, K, ignore)))
    lab_np = labels.numpy()

    # ---------------- Figure 2: nearest vs CPP at every scale
    ncol = len(scales) + 1
    fig, axes = plt.subplots(2, ncol, figsize=(3.2 * ncol, 2 * 3.2 * H / W + 0.8), squeeze=False)
    axes[0, 0].imshow(colour_labels(lab_np, table, ignore), interpolation="nearest")
    axes[0, 0].set_title(f"labels {H}x{W}")
    axes[1, 0].axis("off")
    for k, s in enumerate(scales, start=1):
        t = targets[s]
        near = nearest_downsample(labels, tuple(t.shape[-2:])).numpy()
        axes[0, k].imshow(colour_labels(near, table, ignore), interpolation="nearest")
        axes[0, k].set_title(f"nearest 1/{s}")
        axes[1, k].imshow(colour_fractions(t.numpy(), table), interpolation="nearest")
        axes[1, k].set_title(f"CPP 1/{s}")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        f"{Path(label_path).name}: nearest-neighbour vs class probability preserving targets"
    )
    fig.tight_layout()
    _atomic_savefig(fig, out, dpi)
    plt.close(fig)

    # ---------------- Figure 3: per-class channels of one region
    if out_channels is None:
        root, _ = os.path.splitext(out)
        out_channels = root + "_channels.png"
    t = targets[region_scale].numpy()
    if region is None:
        i0, j0 = pick_region(t, region_cells)
    else:
        i0, j0 = region[0] // region_scale, region[1] // region_scale
    i1, j1 = min(t.shape[1], i0 + region_cells), min(t.shape[2], j0 + region_cells)
    crop_t = t[:, i0:i1, j0:j1]
    present = [c for c in range(K + 1) if crop_t[c].max() > 0]
    y0, y1 = i0 * region_scale, min(H, i1 * region_scale)
    x0, x1 = j0 * region_scale, min(W, j1 * region_scale)
    near = nearest_downsample(labels, tuple(t.shape[-2:])).numpy()[i0:i1, j0:j1]
    panels = 3 + len(present)
    ncol = min(panels, 6)
    nrow = -(-panels // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.8 * ncol, 2.9 * nrow), squeeze=False)
    flat = axes.ravel()
    flat[0].imshow(colour_labels(lab_np[y0:y1, x0:x1], table, ignore), interpolation="nearest")
    flat[0].set_title(f"labels, rows {y0}-{y1 - 1}\ncols {x0}-{x1 - 1}", fontsize=9)
    flat[1].imshow(colour_labels(near, table, ignore), interpolation="nearest")
    flat[1].set_title(f"nearest 1/{region_scale}", fontsize=9)
    flat[2].imshow(colour_fractions(crop_t, table), interpolation="nearest")
    flat[2].set_title(f"CPP 1/{region_scale}", fontsize=9)
    for k, c in enumerate(present, start=3):
        im = flat[k].imshow(crop_t[c], vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
        name = names[c] if c < K else f"ignore ({ignore})"
        flat[k].set_title(f"channel {c}: {name}", fontsize=9)
        fig.colorbar(im, ax=flat[k], fraction=0.046, pad=0.04)
    for ax in flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in flat[panels:]:
        ax.axis("off")
    fig.suptitle(f"CPP channels of a {i1 - i0}x{j1 - j0}-cell region at 1/{region_scale}")
    fig.tight_layout()
    _atomic_savefig(fig, out_channels, dpi)
    plt.close(fig)
    return out, out_channels


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "label", help="single-channel label PNG (Cityscapes labelTrainIds, CamVid annot)"
    )
    ap.add_argument(
        "--palette",
        choices=sorted(PALETTES),
        required=True,
        help="class names/colours and ignore value: cityscapes (19 + 255), camvid (11 + 11)",
    )
    ap.add_argument("--out", required=True, help="Figure 2 PNG (nearest vs CPP at every scale)")
    ap.add_argument(
        "--out-channels", default=None, help="Figure 3 PNG (default: <out>_channels.png)"
    )
    ap.add_argument("--scales", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--region-scale", type=int, default=8)
    ap.add_argument("--region-cells", type=int, default=12, help="region side, in cells")
    ap.add_argument(
        "--region",
        type=int,
        nargs=2,
        metavar=("Y", "X"),
        default=None,
        help="top-left pixel of the region (default: the most mixed region)",
    )
    ap.add_argument("--dpi", type=int, default=100)
    args = ap.parse_args(argv)
    fig2, fig3 = plot(
        args.label,
        args.palette,
        args.out,
        args.out_channels,
        args.scales,
        args.region_scale,
        args.region_cells,
        tuple(args.region) if args.region else None,
        args.dpi,
    )
    print(fig2)
    print(fig3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
