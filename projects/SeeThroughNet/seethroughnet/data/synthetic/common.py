"""Constants, sample names and paths, the per-image random generator and parameter checks of
the synthetic Cityscapes generator."""

from __future__ import annotations

import os

import numpy as np
from cityscapesscripts.helpers.labels import name2label

#: Written into the manifest and checked when reading it: the generator's identity, kept as the
#: original module name so that folders generated before the split into a package stay valid.
GENERATOR_NAME = "seethroughnet.data.synthetic_cityscapes"
#: Bumped whenever the output for given parameters changes; part of the manifest's parameters.
GENERATOR_VERSION = 1
MANIFEST_NAME = "synthetic_cityscapes.json"
SPLITS = ("train", "val", "test")
DEFAULT_NUM_IMAGES = {"train": 48, "val": 12, "test": 12}
#: Made-up city names (no underscores: Cityscapes file names are split on ``_``).
CITIES = {
    "train": ("aldermoor", "brackwell", "corringham", "dunholt"),
    "val": ("elmsworth", "fennick"),
    "test": ("glasbury", "harrowdale"),
}
FRAME_NB = 19  # Cityscapes annotates the 20th frame of each 30-frame snippet
THING_CLASSES = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
#: A thing instance is kept only if its largest visible 8-connected part has at least this many
#: pixels and spans at least 3 x 3 pixels (so every loader sees it; see ``visible_enough``).
MIN_VISIBLE_PIXELS = 12
SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
TEST_GT_CHOICES = ("dummy", "full")
VOID_REGION_LABELS = ("ego vehicle", "rectification border", "out of roi")


class SyntheticDatasetError(RuntimeError):
    """The output folder cannot be used as asked (foreign content, other parameters, bad
    manifest)."""


def sample_name(split: str, index: int) -> tuple[str, str]:
    """``(city, stem)`` of image ``index`` of ``split``; depends on nothing else."""
    cities = CITIES[split]
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_{FRAME_NB:06d}"


def sample_paths(root: str, split: str, index: int) -> dict[str, str]:
    """Paths of the six files of one sample, keyed by kind (``image``, ``polygons``, ``labelIds``,
    ``instanceIds``, ``labelTrainIds``, ``color``)."""
    city, stem = sample_name(split, index)
    img_dir = os.path.join(root, "leftImg8bit", split, city)
    gt_dir = os.path.join(root, "gtFine", split, city)
    paths = {
        "image": os.path.join(img_dir, f"{stem}_leftImg8bit.png"),
        "polygons": os.path.join(gt_dir, f"{stem}_gtFine_polygons.json"),
    }
    for kind in ("labelIds", "instanceIds", "labelTrainIds", "color"):
        paths[kind] = os.path.join(gt_dir, f"{stem}_gtFine_{kind}.png")
    return paths


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random generator of one image: seeded from ``(seed, split, index)`` and the
    generator version alone."""
    entropy = [seed, SPLIT_CODE[split], index, GENERATOR_VERSION]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def base_label(name: str) -> str:
    """The cityscapesscripts label of ``name`` (``cargroup`` -> ``car``)."""
    if name not in name2label and name.endswith("group"):
        return name[: -len("group")]
    return name


def check_params(seed, height, width, num_images, test_gt):
    """A ``ValueError`` naming the parameter for any parameter out of range."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    for name, v, lo in (("height", height, 32), ("width", width, 64)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not lo <= v <= 4096:
            raise ValueError(f"{name} must be an integer in [{lo}, 4096], got {v!r}")
    for split, n in num_images.items():
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 0 <= n <= 1_000_000:
            raise ValueError(f"num_images[{split!r}] must be a non-negative integer, got {n!r}")
    if test_gt not in TEST_GT_CHOICES:
        raise ValueError(f"test_gt must be one of {TEST_GT_CHOICES}, got {test_gt!r}")
