r"""Images per class of a split (SeeThroughNet's Table 3: the Cityscapes train split).

For every class of a semantic-segmentation split: the number of images that contain it (at
least ``--min-pixels`` label pixels of the class, default 1), that number as a fraction of the
split's images, and the class's pixels and share of the labelled (not ignored) pixels.

    # a registered dataset (detectron2 name; Cityscapes lives under $DETECTRON2_DATASETS/cityscapes)
    python tools/class_image_counts.py --dataset cityscapes_fine_sem_seg_train \
        --output-dir output/table3
    # a Cityscapes root and a split, from its gtFine *_gtFine_labelTrainIds.png files alone
    python tools/class_image_counts.py --cityscapes-root /data/cityscapes --split train \
        --output-dir output/table3

Writes ``<output-dir>/<name>_class_image_counts.{md,json,png}`` (``<name>``: ``--name``, default
the dataset name or ``cityscapes_<split>``): the markdown table (rows in class order, as the
paper's Table 3; also printed), the same numbers as JSON, and a bar chart of images per class.
Each file is written to a temporary name beside it and renamed into place.

Classes and label table: ``--dataset`` takes the dataset's metadata (``stuff_classes``,
``stuff_colors``, ``ignore_label``); the project's Cityscapes names and ``--cityscapes-root`` use
the 19 Cityscapes trainId classes (0-18, 255 ignored).  A label file that is missing, truncated or
corrupt, or that holds a value outside the label table, ends the run with one error naming every
such file and what to do; nothing is written then.  With ``--dataset`` the dataset's own loader
first pairs images with label files (header-level validation unless ``SEETHROUGHNET_VALIDATE``
says otherwise, see seethroughnet/data/datasets/validation.py); every label file is then decoded
once, here.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from seethroughnet.data.datasets.validation import (
    DatasetError,
    LabelTable,
    raise_problems,
    read_label,
    run_parallel,
    split_file_errors,
)
from seethroughnet.experiments.report import markdown_table, save_png
from seethroughnet.utils.atomic import check_writable_dir, write_text_atomic

TOOL = "tools/class_image_counts.py"
OUTPUT_SUFFIX = "_class_image_counts"
CITYSCAPES_TRAIN_IDS_SUFFIX = "_gtFine_labelTrainIds.png"


# --------------------------------------------------------------------------------------
# the counts
# --------------------------------------------------------------------------------------
@dataclass
class ClassImageCounts:
    """Per-class image and pixel counts of one split.

    ``images_per_class[c]``: images with at least ``min_pixels`` pixels of class ``c``;
    ``pixels_per_class[c]``: pixels of class ``c`` over all images (no threshold).
    """

    name: str
    source: str
    class_names: List[str]
    class_colors: List[Tuple[int, int, int]]
    ignore_label: int
    min_pixels: int
    num_images: int
    images_per_class: List[int]
    pixels_per_class: List[int]
    ignored_pixels: int
    id_column: str = "id"
    notes: List[str] = field(default_factory=list)

    @property
    def labelled_pixels(self) -> int:
        return int(sum(self.pixels_per_class))

    @property
    def total_pixels(self) -> int:
        return self.labelled_pixels + int(self.ignored_pixels)

    def image_fraction(self, c: int) -> float:
        return self.images_per_class[c] / self.num_images if self.num_images else 0.0

    def pixel_share(self, c: int) -> float:
        return self.pixels_per_class[c] / self.labelled_pixels if self.labelled_pixels else 0.0

    def to_json_dict(self) -> dict:
        return {
            "tool": TOOL,
            "name": self.name,
            "source": self.source,
            "num_images": self.num_images,
            "min_pixels": self.min_pixels,
            "ignore_label": self.ignore_label,
            "id_column": self.id_column,
            "labelled_pixels": self.labelled_pixels,
            "ignored_pixels": int(self.ignored_pixels),
            "classes": [
                {
                    "id": c,
                    "name": self.class_names[c],
                    "color": list(self.class_colors[c]),
                    "images": int(self.images_per_class[c]),
                    "image_fraction": self.image_fraction(c),
                    "pixels": int(self.pixels_per_class[c]),
                    "pixel_share": self.pixel_share(c),
                }
                for c in range(len(self.class_names))
            ],
            "notes": list(self.notes),
        }

    @classmethod
    def from_json_dict(cls, d: dict) -> "ClassImageCounts":
        classes = sorted(d["classes"], key=lambda e: e["id"])
        if [e["id"] for e in classes] != list(range(len(classes))):
            raise ValueError("the JSON's classes must have the ids 0..K-1")
        return cls(
            name=d["name"],
            source=d["source"],
            class_names=[e["name"] for e in classes],
            class_colors=[tuple(int(v) for v in e["color"]) for e in classes],
            ignore_label=int(d["ignore_label"]),
            min_pixels=int(d["min_pixels"]),
            num_images=int(d["num_images"]),
            images_per_class=[int(e["images"]) for e in classes],
            pixels_per_class=[int(e["pixels"]) for e in classes],
            ignored_pixels=int(d["ignored_pixels"]),
            id_column=d.get("id_column", "id"),
            notes=list(d.get("notes", [])),
        )


def _label_pixel_counts(
    path: str, table: LabelTable, num_classes: int, ignore_label: int
) -> Tuple[np.ndarray, int]:
    """``(pixels of each class 0..K-1, ignored pixels)`` of one label file.

    Decoding and the value check are the dataset validation's ``read_label``: a missing,
    corrupt or multi-channel file, or a value outside ``table``, is a DatasetError naming ``path``.
    """
    labels = read_label(path, table)
    counts = np.bincount(labels.ravel(), minlength=max(num_classes, int(labels.max(initial=0)) + 1))
    class_pixels = counts[:num_classes].astype(np.int64)
    ignored = int(counts[ignore_label]) if 0 <= ignore_label < counts.size else 0
    return class_pixels, ignored


def count_class_images(
    label_files: Sequence[str],
    *,
    name: str,
    source: str,
    class_names: Sequence[str],
    table: LabelTable,
    ignore_label: int = 255,
    class_colors: Optional[Sequence[Sequence[int]]] = None,
    min_pixels: int = 1,
    workers: int = 1,
    progress: bool = False,
    id_column: str = "id",
) -> ClassImageCounts:
    """Count, per class, the label files holding at least ``min_pixels`` pixels of it.

    Every file is read (``workers`` threads; PIL's decoders release the GIL); problems are
    collected over all files and raised as one :class:`DatasetError` listing them.
    """
    if min_pixels < 1:
        raise ValueError(f"min_pixels must be >= 1, not {min_pixels}")
    k = len(class_names)
    if class_colors is None:
        from seethroughnet.data.datasets.folder_semseg import default_colors

        class_colors = default_colors(k)
    files = list(label_files)
    results = run_parallel(
        lambda f: _label_pixel_counts(f, table, k, ignore_label),
        files,
        f"{name}: reading label files",
        progress,
        workers=max(1, workers),
    )
    unreadable, bad_values = split_file_errors(results)
    what = [
        "missing, truncated or corrupt label files" if unreadable else "",
        "label values outside the label table" if bad_values else "",
    ]
    raise_problems(
        name, unreadable + bad_values, " and ".join(w for w in what if w)
    )  # one error for all

    images = np.zeros(k, dtype=np.int64)
    pixels = np.zeros(k, dtype=np.int64)
    ignored = 0
    for class_pixels, ignored_pixels in results:
        images += class_pixels >= min_pixels
        pixels += class_pixels
        ignored += ignored_pixels
    notes = []
    if files and pixels.sum() == 0:
        notes.append(
            f"Every pixel is ignore_label {ignore_label}: the split has no labels (e.g. the "
            "Cityscapes test split, whose public gtFine is a dummy)."
        )
    return ClassImageCounts(
        name=name,
        source=source,
        class_names=list(class_names),
        class_colors=[tuple(int(v) for v in c) for c in class_colors],
        ignore_label=int(ignore_label),
        min_pixels=int(min_pixels),
        num_images=len(files),
        images_per_class=[int(v) for v in images],
        pixels_per_class=[int(v) for v in pixels],
        ignored_pixels=int(ignored),
        id_column=id_column,
        notes=notes,
    )


# --------------------------------------------------------------------------------------
# where the label files come from
# --------------------------------------------------------------------------------------
@dataclass
class LabelSource:
    name: str
    source: str
    label_files: List[str]
    class_names: List[str]
    class_colors: List[Tuple[int, int, int]]
    ignore_label: int
    table: LabelTable
    id_column: str = "id"


def _cityscapes_classes():
    from seethroughnet.data.datasets.cityscapes import (
        CITYSCAPES_IGNORE_LABEL,
        CITYSCAPES_STUFF_CLASSES,
        CITYSCAPES_STUFF_COLORS,
        TRAIN_ID_TABLE,
    )

    return (
        list(CITYSCAPES_STUFF_CLASSES),
        list(CITYSCAPES_STUFF_COLORS),
        CITYSCAPES_IGNORE_LABEL,
        TRAIN_ID_TABLE,
    )


def cityscapes_label_source(root: str, split: str, name: Optional[str] = None) -> LabelSource:
    """The ``gtFine/<split>/<city>/*_gtFine_labelTrainIds.png`` files of a Cityscapes root."""
    root = os.path.expanduser(root)
    gt_dir = os.path.join(root, "gtFine", split)
    if not os.path.isdir(root):
        raise DatasetError(
            f"the Cityscapes root {root} does not exist (absolute: {os.path.abspath(root)}); pass "
            "the folder that holds gtFine/ (and leftImg8bit/) with --cityscapes-root."
        )
    if not os.path.isdir(gt_dir):
        raise DatasetError(
            f"the label folder {gt_dir} does not exist; the Cityscapes root {root} must hold "
            f"gtFine/{split}/<city>/*{CITYSCAPES_TRAIN_IDS_SUFFIX} (unpack gtFine_trainvaltest.zip "
            "there)."
        )
    files = sorted(glob.glob(os.path.join(gt_dir, "*", "*" + CITYSCAPES_TRAIN_IDS_SUFFIX)))
    if not files:
        has_label_ids = glob.glob(os.path.join(gt_dir, "*", "*_gtFine_labelIds.png"))
        hint = (
            f" Its *_gtFine_labelIds.png files exist: create the trainId files with "
            f"`CITYSCAPES_DATASET={root} csCreateTrainIdLabelImgs` (cityscapesscripts)."
            if has_label_ids
            else " Expected one sub-folder per city holding the gtFine files."
        )
        raise DatasetError(
            f"the label folder {gt_dir} holds no <city>/*{CITYSCAPES_TRAIN_IDS_SUFFIX} files.{hint}"
        )
    classes, colors, ignore, table = _cityscapes_classes()
    return LabelSource(
        name=name or f"cityscapes_{split}",
        source=f"{gt_dir}/<city>/*{CITYSCAPES_TRAIN_IDS_SUFFIX}",
        label_files=files,
        class_names=classes,
        class_colors=colors,
        ignore_label=ignore,
        table=table,
        id_column="trainId",
    )


@contextmanager
def _validation_level(level: str):
    """Set ``SEETHROUGHNET_VALIDATE`` for the loader unless the user set it already."""
    key = "SEETHROUGHNET_VALIDATE"
    old = os.environ.get(key)
    if old is None or not old.strip():
        os.environ[key] = level
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def registered_label_source(dataset: str, name: Optional[str] = None) -> LabelSource:
    """The ``sem_seg_file_name`` files of a registered dataset, classes from its metadata."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    import seethroughnet.data.datasets  # noqa: F401  (registers the project's datasets)
    from seethroughnet.data.datasets.folder_semseg import default_colors, folder_label_table

    if dataset not in DatasetCatalog.list():
        raise DatasetError(
            f"no dataset named '{dataset}' is registered; list the names with "
            "`python tools/check_dataset.py --list`, or pass --cityscapes-root and --split."
        )
    # The loader pairs images with label files and checks sizes; the label values are checked
    # below as every file is decoded, so a full validation here would decode each file twice.
    with _validation_level("header"):
        dicts = DatasetCatalog.get(dataset)
    if not dicts:
        raise DatasetError(f"Dataset '{dataset}' has no images.")
    missing_key = [d.get("file_name", "?") for d in dicts if "sem_seg_file_name" not in d]
    if missing_key:
        raise DatasetError(
            f"Dataset '{dataset}' has no semantic label files (its records, e.g. for "
            f"{missing_key[0]}, lack 'sem_seg_file_name'): pass a semantic-segmentation dataset, "
            "e.g. cityscapes_fine_sem_seg_train (see `python tools/check_dataset.py --list`)."
        )
    meta = MetadataCatalog.get(dataset)
    if meta.get("evaluator_type") == "cityscapes_sem_seg":
        classes, colors, ignore, table = _cityscapes_classes()
        id_column = "trainId"
    else:
        classes = list(meta.get("stuff_classes") or [])
        if not classes:
            raise DatasetError(
                f"Dataset '{dataset}' has no class names (metadata 'stuff_classes'); register it "
                "with its class names (see register_folder_semseg)."
            )
        ignore = int(meta.get("ignore_label", 255))
        colors = [
            tuple(int(v) for v in c)
            for c in (meta.get("stuff_colors") or default_colors(len(classes)))
        ]
        table = folder_label_table(dataset, len(classes), ignore)
        id_column = "id"
    return LabelSource(
        name=name or dataset,
        source=f"registered dataset {dataset}",
        label_files=[d["sem_seg_file_name"] for d in dicts],
        class_names=classes,
        class_colors=colors,
        ignore_label=ignore,
        table=table,
        id_column=id_column,
    )


# --------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------
def format_markdown(counts: ClassImageCounts) -> str:
    """The table, one row per class in class order, with a title line and a footer."""
    n = counts.num_images
    at_least = (
        "1 label pixel holds"
        if counts.min_pixels == 1
        else f"{counts.min_pixels} label pixels hold"
    )
    lines = [
        f"**Images per class: {counts.name}** ({n} image{'' if n == 1 else 's'}; an image "
        f"contains a class when at least {at_least} it; source: {counts.source})",
        "",
    ]
    headers = [counts.id_column, "class", "images", "% of images", "pixels", "% of labelled pixels"]
    rows = [
        [
            c,
            cls,
            counts.images_per_class[c],
            f"{100 * counts.image_fraction(c):.1f}",
            counts.pixels_per_class[c],
            f"{100 * counts.pixel_share(c):.2f}",
        ]
        for c, cls in enumerate(counts.class_names)
    ]
    align = ("right", "left", "right", "right", "right", "right")
    lines.append(markdown_table(headers, rows, colalign=align))
    total = counts.total_pixels
    ignored_share = 100 * counts.ignored_pixels / total if total else 0.0
    lines += [
        "",
        f"Labelled pixels: {counts.labelled_pixels}; ignored (label {counts.ignore_label}): "
        f"{counts.ignored_pixels} ({ignored_share:.2f}% of all {total} pixels).",
    ]
    absent = [cls for c, cls in enumerate(counts.class_names) if counts.images_per_class[c] == 0]
    if absent and counts.labelled_pixels:
        lines.append(f"Classes in no image: {', '.join(absent)}.")
    lines += counts.notes
    return "\n".join(lines) + "\n"


def draw_bar_chart(counts: ClassImageCounts, path: str) -> None:
    """Images per class as bars in the class colours, the split's image count as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    k = len(counts.class_names)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * k + 2.0), 4.8), dpi=120)
    try:
        x = np.arange(k)
        colors = [tuple(v / 255.0 for v in c) for c in counts.class_colors]
        bars = ax.bar(x, counts.images_per_class, color=colors, edgecolor="black", linewidth=0.6)
        for bar, value in zip(bars, counts.images_per_class):
            ax.annotate(
                str(value),
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
            )
        ax.axhline(
            counts.num_images,
            color="0.3",
            linestyle="--",
            linewidth=1.0,
            label=f"all {counts.num_images} images",
        )
        ax.set_xticks(x)
        ax.set_xticklabels(counts.class_names, rotation=45, ha="right", fontsize=8)
        ax.set_xlim(-0.6, k - 0.4)
        ax.set_ylim(0, max(1, counts.num_images) * 1.12)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("images containing the class")
        at_least = "" if counts.min_pixels == 1 else f" (>= {counts.min_pixels} pixels)"
        ax.set_title(f"Images per class{at_least}: {counts.name}", fontsize=10)
        ax.legend(loc="upper right", fontsize=8, frameon=False)
        fig.tight_layout()
        save_png(fig, path, dpi=None)
    finally:
        plt.close(fig)


def write_outputs(counts: ClassImageCounts, output_dir: str) -> Dict[str, str]:
    """Write ``<name>_class_image_counts.{md,json,png}`` into ``output_dir``; returns the paths."""
    stem = os.path.join(output_dir, counts.name + OUTPUT_SUFFIX)
    paths = {"markdown": stem + ".md", "json": stem + ".json", "chart": stem + ".png"}
    write_text_atomic(paths["markdown"], format_markdown(counts))
    write_text_atomic(paths["json"], json.dumps(counts.to_json_dict(), indent=1) + "\n")
    draw_bar_chart(counts, paths["chart"])
    return paths


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--dataset",
        help="a registered semantic-segmentation dataset, e.g. cityscapes_fine_sem_seg_train",
    )
    where.add_argument(
        "--cityscapes-root", help="a Cityscapes folder holding gtFine/ (use with --split)"
    )
    p.add_argument(
        "--split", help="with --cityscapes-root: train, val or test (any gtFine/<split> folder)"
    )
    p.add_argument(
        "--output-dir", required=True, help="folder for <name>_class_image_counts.{md,json,png}"
    )
    p.add_argument(
        "--name",
        help="name in titles and file names (default: the dataset name or cityscapes_<split>)",
    )
    p.add_argument(
        "--min-pixels",
        type=_positive_int,
        default=1,
        help="an image contains a class when at least this many of its pixels hold it (default: 1)",
    )
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=min(4, os.cpu_count() or 1),
        help="threads reading label files (default: min(4, CPU count))",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.cityscapes_root is not None and not args.split:
        p.error("--cityscapes-root needs --split (e.g. --split train)")
    if args.dataset is not None and args.split:
        p.error(
            "--split goes with --cityscapes-root; a registered dataset name already names its split"
        )
    if args.name is not None and (not args.name or os.sep in args.name):
        p.error(f"--name {args.name!r} must be a plain file-name stem")
    return args


def main(argv=None) -> int:
    args = _parse(argv)
    try:
        check_writable_dir(args.output_dir, "--output-dir", "pass a folder you can write to.")
        if args.dataset is not None:
            src = registered_label_source(args.dataset, args.name)
        else:
            src = cityscapes_label_source(args.cityscapes_root, args.split, args.name)
        counts = count_class_images(
            src.label_files,
            name=src.name,
            source=src.source,
            class_names=src.class_names,
            table=src.table,
            ignore_label=src.ignore_label,
            class_colors=src.class_colors,
            min_pixels=args.min_pixels,
            workers=args.workers,
            progress=not args.no_progress,
            id_column=src.id_column,
        )
        paths = write_outputs(counts, args.output_dir)
    except (DatasetError, PermissionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_markdown(counts), end="")
    print("\nwrote " + ", ".join(paths[k] for k in ("markdown", "json", "chart")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
