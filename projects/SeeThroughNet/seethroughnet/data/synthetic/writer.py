"""Writing the dataset: sample files and the manifest, each written atomically
(:func:`seethroughnet.utils.atomic.atomic_path`), with the idempotence and refusal rules of
:func:`generate_synthetic_cityscapes`."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil

from PIL import Image

from ...utils.atomic import atomic_path
from .common import (
    CITIES,
    DEFAULT_NUM_IMAGES,
    GENERATOR_NAME,
    GENERATOR_VERSION,
    MANIFEST_NAME,
    SPLITS,
    SyntheticDatasetError,
    check_params,
    sample_paths,
)
from .render import render_sample

logger = logging.getLogger(__name__)


def write_bytes(path, data: bytes):
    """Write ``data`` to ``path`` so that it appears whole or not at all."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def png_bytes(array):
    """``array`` encoded as PNG."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def write_sample(root, split, index, sample):
    """Write the six files of one sample (the image last)."""
    paths = sample_paths(root, split, index)
    for kind in ("labelIds", "instanceIds", "labelTrainIds", "color"):
        write_bytes(paths[kind], png_bytes(sample[kind]))
    write_bytes(paths["polygons"], sample["polygons"].encode("utf-8"))
    write_bytes(paths["image"], png_bytes(sample["image"]))


def read_manifest(root: str) -> dict | None:
    """The manifest of the dataset at ``root``, ``None`` if there is none; a clear error if it is
    unreadable."""
    path = os.path.join(root, MANIFEST_NAME)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise SyntheticDatasetError(
            f"{path}: not a readable synthetic-Cityscapes manifest ({e}); "
            "delete it or pass --overwrite"
        ) from e
    if (
        not isinstance(data, dict)
        or data.get("generator") != GENERATOR_NAME
        or not isinstance(data.get("params"), dict)
    ):
        raise SyntheticDatasetError(
            f"{path}: not a manifest written by {GENERATOR_NAME} "
            "(missing 'generator'/'params'); delete it or pass --overwrite"
        )
    return data


def missing_files(root, num_images):
    """The files of the asked samples that are not on disk."""
    missing = []
    for split in SPLITS:
        for i in range(num_images.get(split, 0)):
            missing += [p for p in sample_paths(root, split, i).values() if not os.path.isfile(p)]
    return missing


def generate_synthetic_cityscapes(
    root: str,
    seed: int = 0,
    height: int = 256,
    width: int = 512,
    num_images: dict | None = None,
    overwrite: bool = False,
    progress: bool = True,
    test_gt: str = "dummy",
) -> dict:
    """Write the synthetic dataset under ``root`` (e.g. ``$DETECTRON2_DATASETS/cityscapes``).

    ``num_images`` maps split -> count (missing splits: 0); default ``DEFAULT_NUM_IMAGES``.

    Idempotent: if ``root`` already holds a complete dataset made with the same parameters (and
    generator version), nothing is written.  A ``root`` holding another dataset -- a manifest with
    other parameters, or no manifest but files (e.g. a real Cityscapes) -- is refused with
    :class:`SyntheticDatasetError` unless ``overwrite=True``, which deletes ``root/leftImg8bit`` and
    ``root/gtFine`` (nothing else) first.  A run interrupted before its end leaves an incomplete
    manifest and is redone by the next run with the same parameters.  Every file is written to a
    temporary name and renamed; the manifest is written last.  Returns the manifest.
    """
    num_images = dict(DEFAULT_NUM_IMAGES if num_images is None else num_images)
    check_params(seed, height, width, num_images, test_gt)
    num_images = {s: int(num_images.get(s, 0)) for s in SPLITS}
    params = {
        "seed": int(seed),
        "height": int(height),
        "width": int(width),
        "num_images": num_images,
        "test_gt": test_gt,
        "generator_version": GENERATOR_VERSION,
    }
    root = os.path.abspath(root)
    manifest_path = os.path.join(root, MANIFEST_NAME)
    if os.path.exists(root) and not os.path.isdir(root):
        raise SyntheticDatasetError(f"{root}: exists and is not a directory")

    wipe = False
    try:
        old = read_manifest(root)
    except SyntheticDatasetError:
        if not overwrite:
            raise
        old = None
    same_complete = old is not None and old["params"] == params and old.get("complete") is True
    if old is not None and (not overwrite or same_complete):
        if same_complete:
            missing = missing_files(root, num_images)
            if not missing:
                logger.info(
                    "%s already holds the synthetic Cityscapes dataset with these "
                    "parameters (seed=%d, %dx%d, %s): nothing to do.",
                    root,
                    seed,
                    height,
                    width,
                    num_images,
                )
                return old
            logger.warning(
                "%s: the manifest says complete but %d files are missing (e.g. %s); "
                "regenerating.",
                root,
                len(missing),
                missing[0],
            )
            wipe = True
        elif old["params"] == params:
            logger.info("%s: completing an interrupted generation with the same parameters.", root)
            wipe = True
        else:
            raise SyntheticDatasetError(
                f"{manifest_path}: the dataset there was generated with other parameters "
                f"({json.dumps(old['params'], sort_keys=True)}) than asked "
                f"({json.dumps(params, sort_keys=True)}). "
                "Pass --overwrite (overwrite=True) to delete its leftImg8bit/ and gtFine/ and "
                "regenerate, or choose another output folder."
            )
    elif overwrite:
        wipe = True
    elif os.path.isdir(root) and os.listdir(root):
        raise SyntheticDatasetError(
            f"{root}: the folder is not empty and has no {MANIFEST_NAME} (a real Cityscapes, or "
            "other files?). Refusing to write into it. Pass --overwrite (overwrite=True) to delete "
            "its leftImg8bit/ and gtFine/ and generate there, or choose another output folder."
        )
    if wipe:
        for sub in ("leftImg8bit", "gtFine"):
            shutil.rmtree(os.path.join(root, sub), ignore_errors=True)
        if os.path.exists(manifest_path):
            os.remove(manifest_path)

    # the description names the original module, like GENERATOR_NAME: manifests stay byte-identical
    manifest = {
        "generator": GENERATOR_NAME,
        "params": params,
        "complete": False,
        "layout": "cityscapes",
        "label_table": "cityscapesscripts.helpers.labels",
        "cities": {s: list(CITIES[s]) for s in SPLITS},
        "description": "Procedural street scenes in the Cityscapes on-disk format "
        "(seethroughnet.data.synthetic_cityscapes).",
    }
    os.makedirs(root, exist_ok=True)
    write_bytes(manifest_path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())

    jobs = [(s, i) for s in SPLITS for i in range(num_images[s])]
    counts = {s: {} for s in SPLITS}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc=f"synthetic cityscapes -> {root}", unit="img")
    try:
        for split, i in jobs:
            sample = render_sample(seed, split, i, height, width, test_gt)
            write_sample(root, split, i, sample)
            for k, v in sample["counts"].items():
                counts[split][k] = counts[split].get(k, 0) + v
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    manifest["complete"] = True
    manifest["instances"] = {s: dict(sorted(c.items())) for s, c in counts.items()}
    write_bytes(manifest_path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    logger.info("wrote %d images (%s) to %s", len(jobs), num_images, root)
    return manifest
