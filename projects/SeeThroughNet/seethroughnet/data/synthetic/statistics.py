"""Class statistics measured from the label PNGs of a generated dataset, their Markdown table,
and a preview grid of images next to their colour labels."""

from __future__ import annotations

import os

import numpy as np
from cityscapesscripts.helpers.labels import id2label, name2label
from cityscapesscripts.helpers.labels import labels as CS_LABELS
from PIL import Image

from seethroughnet.experiments.report import markdown_table

from .common import MANIFEST_NAME, SyntheticDatasetError, sample_paths
from .writer import png_bytes, read_manifest, write_bytes


def compute_statistics(root: str, splits=("train", "val")) -> dict:
    """Class statistics measured from the label PNGs on disk (not from the generator's state):
    per split, the fraction of pixels of each label (``pixels``) and the number of thing instances
    (``instances``, ids >= 1000) and crowd regions (``groups``) per class, and ``images``."""
    out = {}
    for split in splits:
        pix = np.zeros(256, np.int64)
        inst, groups, n_img = {}, {}, 0
        gt_root = os.path.join(root, "gtFine", split)
        if not os.path.isdir(gt_root):
            continue
        for city in sorted(os.listdir(gt_root)):
            for fn in sorted(os.listdir(os.path.join(gt_root, city))):
                if not fn.endswith("_gtFine_labelIds.png"):
                    continue
                path = os.path.join(gt_root, city, fn)
                lab = np.asarray(Image.open(path))
                ins = np.asarray(Image.open(path.replace("_labelIds.png", "_instanceIds.png")))
                pix += np.bincount(lab.ravel(), minlength=256)
                for v in np.unique(ins):
                    v = int(v)
                    if v >= 1000:
                        name = id2label[v // 1000].name
                        inst[name] = inst.get(name, 0) + 1
                    elif id2label[v].hasInstances:
                        name = id2label[v].name
                        groups[name] = groups.get(name, 0) + 1
                n_img += 1
        total = max(int(pix.sum()), 1)
        out[split] = {
            "images": n_img,
            "pixels": {id2label[i].name: float(pix[i]) / total for i in np.nonzero(pix)[0]},
            "instances": inst,
            "groups": groups,
        }
    return out


def format_statistics(stats: dict) -> str:
    """A Markdown table of :func:`compute_statistics`' output: evaluated classes, then void."""
    splits = list(stats)
    headers = ["class", "trainId"] + [f"{s} pixels %" for s in splits]
    headers += [f"{s} instances" for s in splits]
    rows = []
    evaluated = sorted(
        (l for l in CS_LABELS if l.trainId not in (255, -1)), key=lambda l: l.trainId
    )
    for l in evaluated + [None]:
        if l is None:
            name, tid = "void (ignored)", "255"
            pct = [
                100
                * sum(
                    v for k, v in stats[s]["pixels"].items() if name2label[k].trainId in (255, -1)
                )
                for s in splits
            ]
        else:
            name, tid = l.name, str(l.trainId)
            pct = [100 * stats[s]["pixels"].get(l.name, 0.0) for s in splits]
        ins = []
        for s in splits:
            if l is not None and l.hasInstances:
                g = stats[s]["groups"].get(l.name, 0)
                groups = f" (+{g} groups)" if g else ""
                ins.append(str(stats[s]["instances"].get(l.name, 0)) + groups)
            else:
                ins.append("")
        rows.append([name, tid] + [f"{p:.2f}" for p in pct] + ins)
    rows.append(["images", ""] + [stats[s]["images"] for s in splits] + [""] * len(splits))
    return markdown_table(headers, rows)


def write_preview(root: str, out_path: str, split: str = "train", n: int = 4, indices=None) -> str:
    """A PNG grid: ``n`` images of ``split`` (left) next to their colour labels (right)."""
    manifest = read_manifest(root)
    if manifest is None:
        raise SyntheticDatasetError(f"{root}: no {MANIFEST_NAME}; generate the dataset first")
    count = manifest["params"]["num_images"].get(split, 0)
    if count == 0:
        raise SyntheticDatasetError(f"{root}: the {split!r} split is empty; nothing to preview")
    indices = list(range(min(n, count))) if indices is None else list(indices)
    rows = []
    for i in indices:
        p = sample_paths(root, split, i)
        img = np.asarray(Image.open(p["image"]).convert("RGB"))
        colour = np.asarray(Image.open(p["color"]).convert("RGB"))
        sep = np.full((img.shape[0], 4, 3), 255, np.uint8)
        rows.append(np.concatenate([img, sep, colour], axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    grid = np.concatenate(rows[:-1], axis=0)
    write_bytes(os.path.abspath(out_path), png_bytes(grid))
    return out_path
