#!/usr/bin/env python3
"""Prepare Pascal Context, 60 and 59 classes, for ``pascal_context{60,59}_sem_seg_{train,val}``.

    python datasets/prepare_pascal_context.py   # under $DETECTRON2_DATASETS, else datasets/
    python datasets/prepare_pascal_context.py --root /data [--overwrite] [--strict]

In ``VOCdevkit/VOC2010/`` (VOC 2010 ``VOCtrainval_03-May-2010.tar``):

1. The split lists ``ImageSets/SegmentationContext/{train,val}.txt``, when ``trainval/`` or
   ``trainval_merged.json`` is present: from the PASCAL in Detail API file
   ``trainval_merged.json`` (its ``images`` with ``phase`` train / val: MMSegmentation's lists,
   4,996 / 5,104 images, as its tools/dataset_converters/pascal_context.py writes them) when it is
   in this folder; otherwise, where the lists are absent, from VOC 2010's
   ``ImageSets/Main/{train,val}.txt`` (4,998 / 5,105 images) with one warning naming the
   difference. Lists already there and not derived from the json are kept.
2. From the official annotation release (Mottaghi et al. 2014, ``trainval.tar.gz`` of
   cs.stanford.edu/~roozbeh/pascal-context, unpacked here so that ``trainval/<id>.mat`` and
   ``labels.txt`` sit in this folder), when ``trainval/`` is present: writes the 60-label maps
   ``SegmentationClassContext/<id>.png`` (0 = background and the 400 other classes, 1..59 = the
   59 classes; MMSegmentation's PascalContextDataset reads them as they are). Files already
   converted are kept unless ``--overwrite``.
3. Writes the 59-label maps ``SegmentationClassContext59/`` from ``SegmentationClassContext/``
   (0 = background -> 255, ``c`` -> ``c - 1``: PascalContextDataset59), unless ``--skip-reduce``.
4. Checks that every image and label the lists name exists, writes
   ``cpp_pairs_context60_{train,val}.txt`` (labels ``SegmentationClassContext/``) and
   ``cpp_pairs_context59_{train,val}.txt`` (``SegmentationClassContext59/``) from
   ``ImageSets/SegmentationContext/``, and prints the split sizes and their source, and each
   split's count next to the full release's of that source (4,996 / 5,104 from the json,
   4,998 / 5,105 from the Main lists, either for lists already there): a difference is a
   warning, an error with ``--strict`` (checked before the conversion; no pairs file written).

Neither ``trainval/`` nor ``SegmentationClassContext/`` stops it, naming where it looked.

See datasets/README.md.
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from typing import Dict, List, Optional, Tuple

import numpy as np
from _official_formats import (
    LayoutError,
    check_ids,
    check_same_size,
    load_mat_v5,
    mat_variable,
    read_id_list,
    require_file,
    write_id_list,
)
from _prepare_common import (
    dataset_root,
    missing_files,
    prepare_main,
    progress,
    reduce_zero_label,
    report_sizes,
    save_png,
    write_pairs_file,
)
from _split_sizes import KNOWN_SIZES, refuse_mismatch

CONTEXT_FOLDER = "VOCdevkit/VOC2010"
VOC2010_HINT = "unpack VOCtrainval_03-May-2010.tar (VOC 2010) under the datasets root"
CONTEXT_HINT = (
    "unpack the Pascal Context release trainval.tar.gz (cs.stanford.edu/~roozbeh/pascal-context) "
    f"into {CONTEXT_FOLDER}/ so that trainval/<id>.mat and labels.txt sit there"
)
_LABEL_LINE = re.compile(r"^\s*(\d+)\s*:\s*(\S.*?)\s*$")
#: the PASCAL in Detail API annotation file, in ``VOCdevkit/VOC2010/`` (MMSegmentation's layout)
DETAIL_JSON = "trainval_merged.json"
DETAIL_HINT = (
    "use the PASCAL in Detail API file trainval_merged.json (a JSON object whose 'images' list "
    "has 'file_name' and 'phase' for every image), or remove it to use VOC 2010's Main lists"
)
#: split sizes of the two sources in the full release (MMSegmentation's docs; VOC 2010's lists)
DETAIL_SPLIT_SIZES = {s: KNOWN_SIZES["pascal_context"][s]["Detail API"] for s in ("train", "val")}
MAIN_SPLIT_SIZES = {s: KNOWN_SIZES["pascal_context"][s]["VOC 2010 Main"] for s in ("train", "val")}


class SplitSourceWarning(UserWarning):
    """The split lists come from VOC 2010's Main lists, not from MMSegmentation's Detail API
    lists (``trainval_merged.json`` absent)."""


def context59_classes() -> List[str]:
    """The 59 class names in the order of the registration (``seethroughnet.data.datasets.
    pascal_context.CONTEXT59_CLASSES``, MMSegmentation's ``PascalContextDataset59``)."""
    try:
        from seethroughnet.data.datasets.pascal_context import CONTEXT59_CLASSES
    except ImportError:  # not installed: use the source tree next to this script
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.join(here, os.pardir, "projects", "SeeThroughNet"))
        from seethroughnet.data.datasets.pascal_context import CONTEXT59_CLASSES
    return list(CONTEXT59_CLASSES)


def _key(name: str) -> str:
    """A class name compared without case and spaces ("potted plant" = "pottedplant")."""
    return name.replace(" ", "").lower()


def read_context_labels(path: str) -> Dict[int, str]:
    """The ``{id: name}`` of the release's ``labels.txt`` (one ``<id>: <name>`` a line; 459
    classes, ids from 1; 0 is "unlabeled" in the ``LabelMap``s and has no line). A missing file,
    a line of another form or a repeated id is an error naming ``path``."""
    require_file(path, CONTEXT_HINT)
    labels: Dict[int, str] = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            m = _LABEL_LINE.match(line)
            if m is None or int(m.group(1)) in labels:
                raise LayoutError(
                    f"{path} line {n} is not a new '<id>: <name>' entry ({line.strip()!r}): "
                    "use the labels.txt of the Pascal Context release"
                )
            labels[int(m.group(1))] = m.group(2)
    return labels


def context59_lookup(labels: Dict[int, str], labels_path: str) -> np.ndarray:
    """The table ``t`` with ``t[full id] = 1 + index in the 59 classes`` (0 for background,
    unlabeled and the 400 other classes), matched by NAME from ``labels.txt`` (case and spaces
    ignored), so that it does not depend on the 459 ids themselves.

    With the official labels.txt (alphabetical) this gives MMSegmentation's table
    (``tools/dataset_converters/pascal_context.py``: the 59 ids 2 (aeroplane), 9 (bag), ...,
    458 (wood) sorted and numbered 1..59). The release's ``59_labels.txt`` is not read: its
    order is not MMSegmentation's and it spells three classes differently (FCN's
    ``pascalcontext_layers.py`` maps diningtable/bedcloth/clothes to table/bedclothes/cloth).
    A labels.txt without one of the 59 names is an error naming ``labels_path``."""
    by_name = {_key(name): i for i, name in labels.items()}
    names = context59_classes()
    missing = [n for n in names if _key(n) not in by_name]
    if missing:
        raise LayoutError(
            f"{labels_path} lacks the Pascal Context 59 class(es) {', '.join(missing)}: "
            "use the labels.txt of the Pascal Context release (459 classes)"
        )
    table = np.zeros(max(labels) + 1, np.uint8)
    for index, name in enumerate(names):
        table[by_name[_key(name)]] = index + 1
    return table


def detail_split_ids(path: str) -> Dict[str, List[str]]:
    """``{"train": ids, "val": ids}`` (sorted) of the PASCAL in Detail API file ``path``
    (``trainval_merged.json``): the basenames without extension of the ``file_name`` of its
    ``images`` whose ``phase`` is ``train`` / ``val`` -- the lists MMSegmentation's
    tools/dataset_converters/pascal_context.py writes (``Detail(json, img_dir, phase)
    .getImgs()``; 4,996 / 5,104 images). A file that is not JSON, has no ``images`` list, an image
    without ``file_name`` / ``phase`` or no train or val image is a :class:`LayoutError` naming
    ``path``."""
    require_file(path, DETAIL_HINT)
    try:
        with open(path) as f:
            data = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise LayoutError(f"{path} is not a JSON file ({e}): {DETAIL_HINT}") from None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise LayoutError(f"{path} has no 'images' list: {DETAIL_HINT}")
    ids: Dict[str, set] = {"train": set(), "val": set()}
    for n, image in enumerate(images):
        if not (isinstance(image, dict) and "file_name" in image and "phase" in image):
            raise LayoutError(f"{path}: images[{n}] has no 'file_name' and 'phase': {DETAIL_HINT}")
        if image["phase"] in ids:
            ids[image["phase"]].add(os.path.splitext(os.path.basename(image["file_name"]))[0])
    empty = [phase for phase, found in ids.items() if not found]
    if empty:
        raise LayoutError(f"{path} has no image of phase {' or '.join(empty)}: {DETAIL_HINT}")
    return {phase: sorted(found) for phase, found in ids.items()}


def context_split_lists(droot: str, overwrite: bool = False) -> Tuple[Dict[str, str], str]:
    """Write ``ImageSets/SegmentationContext/{train,val}.txt``; returns ``({list written:
    source}, source of the lists)``.

    * ``trainval_merged.json`` in ``droot``: its train / val lists (:func:`detail_split_ids`,
      MMSegmentation's). A list already there with other ids is a :class:`LayoutError` naming it
      unless ``overwrite`` (e.g. one written from the Main lists before the json was added).
    * otherwise, lists already there are kept (e.g. MMSegmentation's converted release); absent
      ones are VOC 2010's ``ImageSets/Main/{train,val}.txt`` (4,998 / 5,105 images), with one
      :class:`SplitSourceWarning` naming the difference and the split sizes used."""
    sets = os.path.join(droot, "ImageSets", "SegmentationContext")
    detail = os.path.join(droot, DETAIL_JSON)
    written = {}
    if os.path.isfile(detail):
        for split, ids in detail_split_ids(detail).items():
            dst = os.path.join(sets, f"{split}.txt")
            if write_id_list(dst, ids, overwrite=overwrite):
                written[dst] = detail
        return written, DETAIL_JSON
    sizes = {}
    for split in ("train", "val"):
        dst = os.path.join(sets, f"{split}.txt")
        if os.path.isfile(dst):
            continue
        src = os.path.join(droot, "ImageSets", "Main", f"{split}.txt")
        ids = sorted(set(read_id_list(src, VOC2010_HINT)))
        write_id_list(dst, ids, overwrite=False)
        written[dst] = src
        sizes[split] = len(ids)
    if not sizes:
        return written, "existing ImageSets/SegmentationContext lists"
    used = ", ".join(f"{split} {n:,}" for split, n in sizes.items())
    warnings.warn(
        f"{detail} not found: the Pascal Context splits are VOC 2010's ImageSets/Main lists "
        f"(here {used} images; {MAIN_SPLIT_SIZES['train']:,} / {MAIN_SPLIT_SIZES['val']:,} in the "
        f"full release), not MMSegmentation's lists from the Detail API file {DETAIL_JSON} "
        f"({DETAIL_SPLIT_SIZES['train']:,} / {DETAIL_SPLIT_SIZES['val']:,}), so the splits differ "
        f"from MMSegmentation's by a few images. Put {DETAIL_JSON} in {droot} and rerun with "
        "--overwrite to use MMSegmentation's lists.",
        SplitSourceWarning,
        stacklevel=2,
    )
    return written, "ImageSets/Main"


def convert_context(droot: str, overwrite: bool = False) -> Dict[str, str]:
    """Convert the Pascal Context release under ``droot`` (``VOCdevkit/VOC2010``) to the 60-label
    PNGs ``SegmentationClassContext/<id>.png`` for every id of the train and val lists; returns
    ``{output: source}``.

    ``trainval/<id>.mat`` (MATLAB v5) holds ``LabelMap``, an ``H x W`` uint16 map of the
    labels.txt ids (0 = unlabeled), which :func:`context59_lookup` maps to 0..59. A missing
    ``.mat`` or image, a ``.mat`` without ``LabelMap``, ids beyond labels.txt or a size other
    than the image's are errors naming the file. Existing PNGs are kept unless ``overwrite``.
    The split lists must exist (:func:`context_split_lists`)."""
    written = {}
    labels_path = os.path.join(droot, "labels.txt")
    labels = read_context_labels(labels_path)
    table = context59_lookup(labels, labels_path)
    sets = os.path.join(droot, "ImageSets", "SegmentationContext")
    ids = sorted(
        {i for s in ("train", "val") for i in read_id_list(f"{sets}/{s}.txt", VOC2010_HINT)}
    )
    valid = [0, *labels]
    out_dir = os.path.join(droot, "SegmentationClassContext")
    for i in progress(ids, "Pascal Context -> SegmentationClassContext"):
        dst = os.path.join(out_dir, f"{i}.png")
        if os.path.exists(dst) and not overwrite:
            continue
        src = os.path.join(droot, "trainval", f"{i}.mat")
        full = np.asarray(mat_variable(load_mat_v5(src, CONTEXT_HINT), src, "LabelMap"))
        if full.ndim != 2:
            raise LayoutError(f"{src}: LabelMap is {full.shape}, not an H x W map")
        check_ids(full, src, valid, f"0 = unlabeled and the ids of {labels_path}")
        image = require_file(os.path.join(droot, "JPEGImages", f"{i}.jpg"), VOC2010_HINT)
        check_same_size(full.shape, image, src)
        save_png(dst, table[full])
    written[out_dir] = os.path.join(droot, "trainval")
    return written


#: the source names of ``_split_sizes.KNOWN_SIZES["pascal_context"]`` of the split sources
SIZE_SOURCES = {DETAIL_JSON: "Detail API", "ImageSets/Main": "VOC 2010 Main"}


def context_sources_missing(droot: str) -> str:
    """The message of a run that finds neither the release nor converted labels: where it
    looked."""
    return (
        f"no Pascal Context labels: looked for the release's {droot}/trainval/ (<id>.mat) with "
        f"{droot}/labels.txt ({CONTEXT_HINT}), and for converted labels in "
        f"{droot}/SegmentationClassContext/ with the lists "
        f"{droot}/ImageSets/SegmentationContext/{{train,val}}.txt (MMSegmentation's layout, "
        "written by its tools/dataset_converters/pascal_context.py). This script does not "
        f"convert the annotations of {DETAIL_JSON}; it only takes the split lists from it. "
        "See datasets/README.md"
    )


def prepare_pascal_context(
    root: Optional[str] = None,
    reduce: bool = True,
    overwrite: bool = False,
    strict: bool = False,
    report=None,
) -> Dict[str, str]:
    """Write the split lists when ``trainval/`` or ``trainval_merged.json`` is present
    (:func:`context_split_lists`), check the split sizes against the source's
    (``_prepare_common.report_sizes``; an error before the conversion with ``strict``), convert
    the release when ``trainval/`` is present (:func:`convert_context`), reduce the labels to 59
    classes (unless ``reduce=False``), check that every listed file exists, write the pairs
    files of both label sets and print the split sizes; returns ``{output: source}``. Neither
    the release nor converted labels is a ``FileNotFoundError`` naming where it looked."""
    droot = os.path.join(dataset_root(root), CONTEXT_FOLDER)
    written = {}
    source = "existing ImageSets/SegmentationContext lists"
    has_release = os.path.isdir(os.path.join(droot, "trainval"))
    if not has_release and not os.path.isdir(os.path.join(droot, "SegmentationClassContext")):
        raise FileNotFoundError(context_sources_missing(droot))
    if has_release or os.path.isfile(os.path.join(droot, DETAIL_JSON)):
        lists, source = context_split_lists(droot, overwrite)
        written.update(lists)
    sets = os.path.join(droot, "ImageSets", "SegmentationContext")
    ids = {
        split: read_id_list(os.path.join(sets, f"{split}.txt"), context_sources_missing(droot))
        for split in ("train", "val")
    }
    counts = {split: len(found) for split, found in ids.items()}
    size_source = SIZE_SOURCES.get(source)
    if strict:  # before the conversion
        refuse_mismatch("pascal_context", counts, size_source)
    if has_release:
        written.update(convert_context(droot, overwrite))
    if reduce:
        reduce_zero_label(
            os.path.join(droot, "SegmentationClassContext"),
            os.path.join(droot, "SegmentationClassContext59"),
            overwrite,
        )
    pairs = {
        (n, split): [f"JPEGImages/{i}.jpg {label_dir}/{i}.png" for i in ids[split]]
        for split in ("train", "val")
        for n, label_dir in ((60, "SegmentationClassContext"), (59, "SegmentationClassContext59"))
    }
    for (n, split), lines in pairs.items():
        missing_files(
            droot,
            lines,
            f"listed by {sets}/{split}.txt ({n} classes); {VOC2010_HINT}, and convert the "
            "labels (this script from the release, or --skip-reduce only when "
            "SegmentationClassContext59/ is complete)",
        )
    report_sizes(report, "pascal_context", counts, size_source)
    for (n, split), lines in pairs.items():
        dst = os.path.join(droot, f"cpp_pairs_context{n}_{split}.txt")
        write_pairs_file(dst, lines)
        written[dst] = os.path.join(sets, f"{split}.txt")
    shown = ", ".join(f"{split} {n:,} images" for split, n in counts.items())
    print(f"Pascal Context splits ({source}): {shown}")
    return written


def main(argv=None) -> int:
    return prepare_main(
        argv,
        __doc__.split("\n\n")[0],
        prepare_pascal_context,
        lambda root: "no split list under "
        f"{os.path.join(root, CONTEXT_FOLDER)}/ImageSets/SegmentationContext/",
        skip_reduce_help="only write the pairs files (SegmentationClassContext59/ already made)",
    )


if __name__ == "__main__":
    sys.exit(main())
