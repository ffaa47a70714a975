"""Cityscapes ``gtFine`` instance annotations to COCO instance JSON (eight thing classes).

One JSON per split, ``<root>/annotations/instancesonly_gtFine_<split>.json`` by default, with

* ``images``: ``file_name`` relative to the image root ``<root>/leftImg8bit/<split>``
  (``"<city>/<stem>_leftImg8bit.png"``), ``height``, ``width``, ids 1.. in sorted file order;
* ``categories``: ids 1..8 = person, rider, car, truck, bus, train, motorcycle, bicycle
  (Cityscapes labelIds 24, 25, 26, 27, 28, 31, 32, 33; ``caravan``/``trailer`` have instances
  but ``ignoreInEval`` and are left out, as by detectron2 and the Cityscapes benchmark);
* ``annotations``: ``segmentation`` (RLE by default, or polygons), ``area`` (mask pixel count),
  ``bbox`` ``[x, y, w, h]`` (the mask's pixel extent, = ``pycocotools.mask.toBbox``), ``iscrowd``.

Decisions (see ``transfer/README.md``):

* Source: ``*_gtFine_instanceIds.png`` (default) or, with ``source="polygons"``,
  ``*_gtFine_polygons.json`` rasterised exactly like cityscapesscripts' ``json2instanceImg``
  (which is how the official instanceIds PNGs were made): objects in file order, each
  overwriting the earlier ones, ``deleted`` objects skipped, ``<label>group`` = crowd.
* Segmentation: ``"rle"`` (default) is lossless: ``annToMask`` gives back the instance mask
  bit for bit, holes and split (occluded) parts included; train with
  ``INPUT.MASK_FORMAT: bitmask``. ``"polygon"`` gives detectron2's own conversion
  (``cv2.findContours(RETR_EXTERNAL, CHAIN_APPROX_NONE)``, contours with >= 3 points), which is
  compact but loses holes and about half a boundary pixel all round.
* Crowd regions (``cargroup`` etc.: instanceIds < 1000 with a thing labelId) are kept as
  ``iscrowd=1`` with an RLE mask (``crowd="keep"``, default): COCO evaluation then ignores
  detections on them instead of counting them as false positives, and detectron2's
  ``DatasetMapper`` drops them from training targets. ``crowd="drop"`` leaves them out.
* Filtering mirrors ``detectron2.data.datasets.cityscapes`` (``from_json=False``): an instance
  whose mask spans a single row or column is dropped (``min_extent=2``), and in polygon
  format an instance with no contour of >= 3 points is dropped. With these rules the
  per-class counts equal detectron2's loader on the same files; its boxes are
  ``(x, y, x + w - 1, y + h - 1)`` in ``XYXY_ABS`` (inclusive pixel indices) where ours are
  COCO ``[x, y, w, h]`` pixel extents.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from seethroughnet.utils.atomic import write_json_atomic

__all__ = [
    "THING_CLASSES",
    "THING_LABEL_IDS",
    "CATEGORIES",
    "CityscapesConversionError",
    "ConversionStats",
    "default_output_path",
    "find_split_files",
    "read_instance_ids",
    "rasterize_polygons",
    "instance_annotations",
    "convert_split",
    "convert_cityscapes",
]

logger = logging.getLogger(__name__)

#: The eight evaluated Cityscapes thing classes, in COCO category-id order 1..8.
THING_CLASSES = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
#: Their Cityscapes labelIds (cityscapesscripts ``labels.py``).
THING_LABEL_IDS = (24, 25, 26, 27, 28, 31, 32, 33)
LABEL_ID_TO_CATEGORY = {lid: i + 1 for i, lid in enumerate(THING_LABEL_IDS)}
CATEGORIES = [
    {
        "id": i + 1,
        "name": name,
        "supercategory": "human" if name in ("person", "rider") else "vehicle",
    }
    for i, name in enumerate(THING_CLASSES)
]

IMAGE_SUFFIX = "_leftImg8bit.png"
INSTANCE_IDS_SUFFIX = "_gtFine_instanceIds.png"
POLYGONS_SUFFIX = "_gtFine_polygons.json"
SOURCES = ("instanceIds", "polygons")
SEGMENTATION_FORMATS = ("rle", "polygon")
CROWD_MODES = ("keep", "drop")


class CityscapesConversionError(ValueError):
    """Bad Cityscapes input; the message names the file (and key) at fault."""


def default_output_path(root: str, split: str, out_dir: Optional[str] = None) -> str:
    out_dir = out_dir or os.path.join(root, "annotations")
    return os.path.join(out_dir, f"instancesonly_gtFine_{split}.json")


# ---------------------------------------------------------------------------------------------
# Cityscapes label table (cityscapesscripts is a dependency of detectron2's Cityscapes support).
def _labels():
    from cityscapesscripts.helpers.labels import id2label, name2label

    return id2label, name2label


# ---------------------------------------------------------------------------------------------
@dataclass
class ImageRecord:
    image_file: str  # absolute path
    file_name: str  # relative to the image root
    gt_file: str  # instanceIds PNG or polygons JSON


def find_split_files(
    root: str, split: str, source: str = "instanceIds"
) -> Tuple[str, List[ImageRecord]]:
    """``(image_root, records)`` for ``<root>/leftImg8bit/<split>`` / ``<root>/gtFine/<split>``,
    sorted by city and file name. A missing folder or ground-truth file is an error."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    image_root = os.path.join(root, "leftImg8bit", split)
    gt_root = os.path.join(root, "gtFine", split)
    for d in (image_root, gt_root):
        if not os.path.isdir(d):
            raise CityscapesConversionError(
                f"{d} does not exist: expected the Cityscapes layout "
                "<root>/leftImg8bit/<split>/<city>/ "
                f"and <root>/gtFine/<split>/<city>/ under root {root!r}"
            )
    suffix = INSTANCE_IDS_SUFFIX if source == "instanceIds" else POLYGONS_SUFFIX
    records = []
    for city in sorted(os.listdir(image_root)):
        city_dir = os.path.join(image_root, city)
        if not os.path.isdir(city_dir):
            continue
        for name in sorted(os.listdir(city_dir)):
            if not name.endswith(IMAGE_SUFFIX):
                continue
            stem = name[: -len(IMAGE_SUFFIX)]
            gt_file = os.path.join(gt_root, city, stem + suffix)
            if not os.path.isfile(gt_file):
                raise CityscapesConversionError(
                    f"{gt_file} is missing: every image needs its ground truth "
                    f"(image {os.path.join(city_dir, name)})"
                )
            records.append(ImageRecord(os.path.join(city_dir, name), f"{city}/{name}", gt_file))
    if not records:
        raise CityscapesConversionError(f"no *{IMAGE_SUFFIX} images found under {image_root}")
    return image_root, records


def _image_size(image_file: str) -> Tuple[int, int]:
    """(height, width) from the image header, without decoding it."""
    from PIL import Image

    try:
        with Image.open(image_file) as im:
            w, h = im.size
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise CityscapesConversionError(f"cannot read image {image_file}: {e}") from e
    return h, w


def read_instance_ids(path: str, expected_size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Read a ``*_instanceIds.png`` as an int32 ``(H, W)`` array, checking that it is a 16- or
    32-bit single-channel PNG, of ``expected_size`` ``(H, W)`` if given, whose values are
    Cityscapes labelIds (< 1000, crowd/stuff) or ``labelId * 1000 + k`` instance ids."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode not in ("I;16", "I;16B", "I;16L", "I"):
                raise CityscapesConversionError(
                    f"{path}: instanceIds PNG has mode {mode!r}; Cityscapes *_instanceIds.png are "
                    "single-channel 16-bit (or 32-bit) images holding labelId*1000+k; an 8-bit or "
                    "colour PNG cannot hold instance ids"
                )
            arr = np.asarray(im)
    except CityscapesConversionError:
        raise
    except Exception as e:  # noqa: BLE001
        raise CityscapesConversionError(f"cannot read instanceIds PNG {path}: {e}") from e
    if arr.ndim != 2 or arr.dtype.kind not in "iu" or arr.dtype.itemsize < 2:
        raise CityscapesConversionError(
            f"{path}: instanceIds must be a 2-D 16/32-bit integer image, got dtype {arr.dtype} "
            f"shape {arr.shape}"
        )
    if expected_size is not None and tuple(arr.shape) != tuple(expected_size):
        raise CityscapesConversionError(
            f"{path}: instanceIds size {arr.shape[1]}x{arr.shape[0]} (WxH) does not match its "
            f"image {expected_size[1]}x{expected_size[0]}"
        )
    arr = arr.astype(np.int32, copy=False)
    _check_instance_values(arr, path)
    return arr


def _check_instance_values(arr: np.ndarray, path: str) -> None:
    id2label, _ = _labels()
    values = np.unique(arr)
    label_ids = np.where(values >= 1000, values // 1000, values)
    bad = [int(v) for v, l in zip(values, label_ids) if v < 0 or int(l) not in id2label]
    if bad:
        raise CityscapesConversionError(
            f"{path}: values {bad[:10]} are not Cityscapes ids (labelId 0..33, or labelId*1000+k "
            "for instances)"
        )
    # labelId*1000+k for a class without instances is malformed too.
    bad = [
        int(v) for v, l in zip(values, label_ids) if v >= 1000 and not id2label[int(l)].hasInstances
    ]
    if bad:
        raise CityscapesConversionError(
            f"{path}: instance ids {bad[:10]} belong to labels without instances "
            f"({sorted({id2label[v // 1000].name for v in bad})})"
        )


def rasterize_polygons(
    path: str, expected_size: Optional[Tuple[int, int]] = None, on_invalid: str = "error"
) -> np.ndarray:
    """Rasterise a ``*_gtFine_polygons.json`` into an instanceIds array, exactly as
    cityscapesscripts' ``json2instanceImg.createInstanceImage(annotation, "ids")``.

    Degenerate polygons (2 points, zero area) are drawn as cityscapesscripts draws them (their
    outline pixels). An unknown label, or a polygon with fewer than 2 points (which
    cityscapesscripts cannot draw), raises :class:`CityscapesConversionError` naming the file,
    the object index and ``--skip-invalid-polygons`` (``on_invalid="skip"`` logs and skips such
    objects instead).
    """
    from PIL import Image, ImageDraw

    id2label, name2label = _labels()
    try:
        with open(path) as f:
            data = json.load(f)
        h, w = int(data["imgHeight"]), int(data["imgWidth"])
        objects = data["objects"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CityscapesConversionError(
            f"{path}: not a Cityscapes polygons JSON ({type(e).__name__}: {e})"
        ) from e
    if expected_size is not None and (h, w) != tuple(expected_size):
        raise CityscapesConversionError(
            f"{path}: imgWidth x imgHeight {w}x{h} does not match its image "
            f"{expected_size[1]}x{expected_size[0]}"
        )
    img = Image.new("I", (w, h), name2label["unlabeled"].id)
    drawer = ImageDraw.Draw(img)
    counts = {l.name: 0 for l in id2label.values() if l.hasInstances}

    def invalid(msg):
        if on_invalid == "skip":
            logger.warning("%s (skipped)", msg)
            return
        raise CityscapesConversionError(msg)

    for i, obj in enumerate(objects):
        if obj.get("deleted"):
            continue
        label = obj.get("label")
        where = f"{path}: objects[{i}] (label {label!r})"
        is_group = False
        if label not in name2label and isinstance(label, str) and label.endswith("group"):
            label, is_group = label[: -len("group")], True
        if label not in name2label:
            invalid(
                f"{where}: unknown Cityscapes label; pass --skip-invalid-polygons "
                "(on_invalid='skip') to skip such objects"
            )
            continue
        try:
            pts = np.asarray(obj["polygon"], dtype=np.float64).reshape(-1, 2)
        except (KeyError, ValueError, TypeError) as e:
            invalid(f"{where}: 'polygon' must be a list of [x, y] points ({e})")
            continue
        if len(pts) < 2:  # PIL, and so cityscapesscripts, cannot draw it
            invalid(
                f"{where}: polygon with {len(pts)} point(s) (need >= 2); pass "
                "--skip-invalid-polygons (on_invalid='skip') to skip such objects"
            )
            continue
        # Polygons with 2 points or zero area are drawn like any other (PIL draws their outline
        # pixels), exactly as cityscapesscripts' createInstanceImage does.
        lab = name2label[label]
        value = lab.id
        if lab.hasInstances and not is_group and value != 255:
            value = value * 1000 + counts[label]
            counts[label] += 1
        if value < 0:  # e.g. "license plate": never drawn
            continue
        drawer.polygon([tuple(p) for p in pts.tolist()], fill=value)
    return np.asarray(img, dtype=np.int32)


# ---------------------------------------------------------------------------------------------
@dataclass
class ConversionStats:
    images: int = 0
    instances: Counter = field(default_factory=Counter)  # class name -> non-crowd count
    crowd: Counter = field(default_factory=Counter)  # class name -> crowd regions kept
    dropped_crowd: int = 0
    dropped_thin: int = 0  # single row/column masks (detectron2 drops them)
    dropped_no_contour: int = 0  # polygon format: no contour with >= 3 points
    images_without_instances: int = 0

    def as_dict(self) -> dict:
        return {
            "images": self.images,
            "instances": {c: self.instances.get(c, 0) for c in THING_CLASSES},
            "crowd": {c: self.crowd.get(c, 0) for c in THING_CLASSES},
            "dropped_crowd": self.dropped_crowd,
            "dropped_thin": self.dropped_thin,
            "dropped_no_contour": self.dropped_no_contour,
            "images_without_instances": self.images_without_instances,
        }

    def merge(self, other: "ConversionStats") -> None:
        self.images += other.images
        self.instances.update(other.instances)
        self.crowd.update(other.crowd)
        self.dropped_crowd += other.dropped_crowd
        self.dropped_thin += other.dropped_thin
        self.dropped_no_contour += other.dropped_no_contour
        self.images_without_instances += other.images_without_instances


def _rle(mask: np.ndarray) -> dict:
    import pycocotools.mask as mask_util

    rle = mask_util.encode(np.asfortranarray(mask[:, :, None]))[0]
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _polygons(mask: np.ndarray) -> List[List[float]]:
    import cv2

    contours = cv2.findContours(mask.copy(), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[-2]
    return [[float(v) for v in c.reshape(-1)] for c in contours if len(c) >= 3]


def instance_annotations(
    inst: np.ndarray,
    *,
    segmentation: str = "rle",
    crowd: str = "keep",
    min_extent: int = 2,
    stats: Optional[ConversionStats] = None,
) -> List[dict]:
    """COCO annotations (without ``id``/``image_id``) for the thing instances of one instanceIds
    array, in increasing instance-id order. See the module docstring for the rules."""
    if segmentation not in SEGMENTATION_FORMATS:
        raise ValueError(
            f"segmentation must be one of {SEGMENTATION_FORMATS}, got {segmentation!r}"
        )
    if crowd not in CROWD_MODES:
        raise ValueError(f"crowd must be one of {CROWD_MODES}, got {crowd!r}")
    stats = stats if stats is not None else ConversionStats()
    annos = []
    for value in np.unique(inst[inst >= 24]):  # ids < 24 are stuff
        value = int(value)
        label_id = value // 1000 if value >= 1000 else value
        if label_id not in LABEL_ID_TO_CATEGORY:  # stuff, caravan, trailer (ignoreInEval)
            continue
        is_crowd = value < 1000
        name = THING_CLASSES[LABEL_ID_TO_CATEGORY[label_id] - 1]
        if is_crowd and crowd == "drop":
            stats.dropped_crowd += 1
            continue
        mask = np.asarray(inst == value, dtype=np.uint8, order="F")
        ys, xs = np.nonzero(mask)
        x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
        if x1 - x0 + 1 < min_extent or y1 - y0 + 1 < min_extent:
            stats.dropped_thin += 1
            continue
        if is_crowd or segmentation == "rle":
            segm = _rle(mask)
        else:
            segm = _polygons(mask)
            if not segm:
                stats.dropped_no_contour += 1
                continue
        (stats.crowd if is_crowd else stats.instances)[name] += 1
        annos.append(
            {
                "category_id": LABEL_ID_TO_CATEGORY[label_id],
                "segmentation": segm,
                "area": int(len(xs)),
                "bbox": [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)],
                "iscrowd": int(is_crowd),
                "cityscapes_instance_id": value,
            }
        )
    return annos


def _convert_one(args) -> Tuple[dict, List[dict], ConversionStats]:
    rec, source, segmentation, crowd, min_extent, on_invalid = args
    h, w = _image_size(rec.image_file)
    if source == "instanceIds":
        inst = read_instance_ids(rec.gt_file, expected_size=(h, w))
    else:
        inst = rasterize_polygons(rec.gt_file, expected_size=(h, w), on_invalid=on_invalid)
    stats = ConversionStats(images=1)
    annos = instance_annotations(
        inst, segmentation=segmentation, crowd=crowd, min_extent=min_extent, stats=stats
    )
    if not annos:
        stats.images_without_instances += 1
    return {"file_name": rec.file_name, "height": h, "width": w}, annos, stats


def convert_split(
    root: str,
    split: str,
    *,
    source: str = "instanceIds",
    segmentation: str = "rle",
    crowd: str = "keep",
    min_extent: int = 2,
    on_invalid: str = "error",
    workers: int = 0,
    progress: bool = True,
) -> Tuple[dict, ConversionStats]:
    """Convert one split to a COCO dict. ``workers > 0`` uses a process pool."""
    from tqdm import tqdm

    if on_invalid not in ("error", "skip"):
        raise ValueError(f"on_invalid must be 'error' or 'skip', got {on_invalid!r}")
    image_root, records = find_split_files(root, split, source)
    jobs = [(r, source, segmentation, crowd, min_extent, on_invalid) for r in records]
    bar = dict(total=len(jobs), desc=f"cityscapes->coco {split}", unit="img", disable=not progress)
    if workers and workers > 0:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            results = list(tqdm(pool.imap(_convert_one, jobs, chunksize=4), **bar))
    else:
        results = [_convert_one(j) for j in tqdm(jobs, **bar)]
    images, annotations, stats = [], [], ConversionStats()
    for image_id, (img, annos, st) in enumerate(results, start=1):
        images.append({"id": image_id, **img})
        for a in annos:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **a})
        stats.merge(st)
    coco = {
        "info": {
            "description": f"Cityscapes gtFine {split}, {len(THING_CLASSES)} thing classes "
            "(instancesonly)",
            "image_root": os.path.relpath(image_root, root),
            "source": source,
            "segmentation": segmentation,
            "crowd": crowd,
            "min_extent": min_extent,
            "stats": stats.as_dict(),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
    return coco, stats


def convert_cityscapes(
    root: str,
    splits: Sequence[str] = ("train", "val"),
    out_dir: Optional[str] = None,
    **kwargs,
) -> Dict[str, dict]:
    """Convert ``splits`` and write one JSON each. Returns ``{split: {"path", "stats"}}``."""
    out = {}
    for split in splits:
        coco, stats = convert_split(root, split, **kwargs)
        path = default_output_path(root, split, out_dir)
        write_json_atomic(path, coco)
        s = stats.as_dict()
        logger.info(
            "%s: %d images, %d instances %s, %d crowd regions -> %s",
            split,
            s["images"],
            sum(s["instances"].values()),
            s["instances"],
            sum(s["crowd"].values()),
            path,
        )
        out[split] = {"path": path, "stats": s}
    return out


def per_class_counts(annotations: Iterable[dict], include_crowd: bool = False) -> Dict[str, int]:
    c = Counter()
    for a in annotations:
        if include_crowd or not a.get("iscrowd", 0):
            c[THING_CLASSES[a["category_id"] - 1]] += 1
    return {k: c.get(k, 0) for k in THING_CLASSES}
