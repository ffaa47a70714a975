"""Class-uniform sampling of training crops, the sampling of Tao et al. 2020 ([41],
NVIDIA/semantic-segmentation ``datasets/uniform.py``, ``datasets/base_loader.py``,
``train.py --class_uniform_pct 0.5 --class_uniform_tile 1024``).

What [41] does, and what this module reproduces:

1. **Centroids, once per dataset** (``uniform.class_centroids_image``): each label map is cut into
   the whole ``tile x tile`` tiles that fit in it (``H // tile`` rows times ``W // tile`` columns,
   from the top-left corner; a remainder narrower than a tile is not visited, an image smaller
   than a tile has no centroid). In each tile, for each class ``c`` in ``0 .. num_classes - 1``
   present in it, the centre of mass of the tile's ``c`` pixels (``scipy.ndimage
   .center_of_mass`` in [41]; here per-class pixel sums, the same numbers), truncated to
   integers and shifted to image coordinates, is one centroid ``(x, y)`` of class ``c`` in that
   image. :func:`image_class_centroids`.
2. **Each epoch** (``uniform.build_epoch``): with ``N`` images, ``C`` classes and share ``pct``,
   ``n = int(N * pct / C)`` samples per class; ``N - n * C`` plain samples (a random permutation
   of the images, wrapped around if needed) plus, for every class that has centroids, ``n``
   centroids of that class (a random permutation of its centroids, wrapped around); a class
   without centroids contributes nothing (the epoch is shorter). :func:`class_uniform_epoch`.
3. **The crop** of a class-uniform sample covers the drawn centroid (``joint_transforms
   .RandomSizeAndCrop`` / ``RandomCrop.crop_in_image``): see
   :mod:`seethroughnet.data.transforms.nvidia_pipeline`.

Where this module departs from the reference (stated in docs/seethroughnet_recipe.md):

* the stream. [41] rebuilds the epoch list with NumPy's global generator in every process and
  shards it with its own DistributedSampler. Here the epoch list is one function of
  ``(seed, epoch)`` (:class:`ClassUniformOrder`), shared by all processes; the stream is the
  concatenation of the epochs and rank ``r`` of ``W`` takes its elements ``r, r + W, ...``, as
  detectron2's ``TrainingSampler`` shards its index stream. Element ``g`` of the stream is found
  without generating the ones before it (epoch ``g // L``, offset ``g % L``), so exact resume needs
  only the position (:mod:`seethroughnet.resumable`).
* [41] computes its centroids with ``tile_size=1024`` whatever ``--class_uniform_tile`` says (the
  value only names the cache file); here ``TILE`` is used.
* [41] keys its cache file by dataset name, split and tile only; here the key also covers the
  label files (path, size, modification time) and the number of classes, so a changed dataset is
  recomputed. A cache file that cannot be read (truncated, corrupt, another format) is rebuilt,
  with a warning naming it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "tile_origins",
    "image_class_centroids",
    "centroids_of_label_files",
    "centroid_cache_key",
    "load_or_build_centroids",
    "samples_per_class",
    "class_uniform_epoch",
    "ClassUniformOrder",
    "build_class_uniform_order",
    "CACHE_VERSION",
]

logger = logging.getLogger(__name__)

#: format of the cache files; a new version invalidates the old files (another key)
CACHE_VERSION = 1


# ---------------------------------------------------------------------------------- centroids
def tile_origins(height: int, width: int, tile: int) -> List[Tuple[int, int]]:
    """``(x, y)`` top-left corners of the whole ``tile x tile`` tiles of an ``height x width``
    image, row by row ([41] ``uniform.calc_tile_locations``)."""
    return [(x * tile, y * tile) for y in range(height // tile) for x in range(width // tile)]


def image_class_centroids(
    label: np.ndarray, num_classes: int, tile: int
) -> List[Tuple[int, int, int]]:
    """``(class_id, x, y)`` for every tile of ``label`` (H x W class ids) and every class
    ``0 .. num_classes - 1`` present in it: the centre of mass of the class's pixels in the tile,
    each coordinate truncated with ``int`` and shifted by the tile's origin ([41]
    ``uniform.class_centroids_image``). Values outside ``0 .. num_classes - 1`` (ignore) have no
    centroid. Order: tiles row by row, classes ascending in each tile."""
    if label.ndim != 2:
        raise ValueError(f"a label map must be H x W, got shape {label.shape}")
    found = []
    for x0, y0 in tile_origins(label.shape[0], label.shape[1], tile):
        patch = label[y0 : y0 + tile, x0 : x0 + tile].astype(np.int64)
        ys, xs = np.indices(patch.shape)
        valid = (patch >= 0) & (patch < num_classes)
        ids = patch[valid]
        # per class: pixel count and the sums of the pixels' x and y. Integer sums are exact in
        # float64, so sum / count is the value scipy's center_of_mass gives ([41]'s call)
        count = np.bincount(ids, minlength=num_classes)
        sum_x = np.bincount(ids, weights=xs[valid].astype(np.float64), minlength=num_classes)
        sum_y = np.bincount(ids, weights=ys[valid].astype(np.float64), minlength=num_classes)
        for class_id in np.flatnonzero(count).tolist():
            cx, cy = sum_x[class_id] / count[class_id], sum_y[class_id] / count[class_id]
            found.append((int(class_id), int(cx) + x0, int(cy) + y0))
    return found


def _read_label(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im)


def centroids_of_label_files(
    label_files: Sequence[str], num_classes: int, tile: int, workers: int = 1
) -> np.ndarray:
    """All centroids of a dataset: an ``(M, 4)`` int64 array of rows
    ``(class_id, image_index, x, y)``, ``image_index`` the position of the label file in
    ``label_files``; images in order, each as :func:`image_class_centroids` orders it."""

    def one(path):
        return image_class_centroids(_read_label(path), num_classes, tile)

    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            per_image = list(pool.map(one, label_files))
    else:
        per_image = [one(p) for p in label_files]
    rows = [(c, i, x, y) for i, found in enumerate(per_image) for c, x, y in found]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


def centroid_cache_key(label_files: Sequence[str], num_classes: int, tile: int) -> str:
    """SHA-256 over the cache format, ``tile``, ``num_classes`` and every label file's path, size
    and modification time: a changed, added, removed or reordered label file, another tile or
    another class count gives another key."""
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, int(tile), int(num_classes)]).encode())
    for path in label_files:
        st = os.stat(path)
        h.update(json.dumps([os.path.abspath(path), st.st_size, st.st_mtime_ns]).encode())
    return h.hexdigest()


def _read_cache(path: str, key: str) -> Optional[np.ndarray]:
    """The centroids in ``path`` if it is a readable cache file of ``key``; ``None`` (with a
    warning naming the file) if it is unreadable or belongs to another key."""
    try:
        with np.load(path, allow_pickle=False) as data:
            stored_key = str(data["key"])
            centroids = np.asarray(data["centroids"], dtype=np.int64)
        if stored_key != key or centroids.ndim != 2 or centroids.shape[1] != 4:
            raise ValueError(f"it holds key {stored_key[:16]}... shape {centroids.shape}")
        return centroids
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        logger.warning(
            f"class-uniform centroid cache {path} cannot be used ({type(e).__name__}: {e}); "
            "recomputing it and replacing the file"
        )
        return None


def _write_cache(path: str, key: str, centroids: np.ndarray) -> None:
    from ..utils.atomic import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, key=np.asarray(key), centroids=centroids)
            f.flush()
            os.fsync(f.fileno())


def load_or_build_centroids(
    label_files: Sequence[str],
    num_classes: int,
    tile: int,
    cache_dir: Optional[str],
    *,
    name: str = "dataset",
    workers: int = 1,
    is_main_process: bool = True,
    synchronize=lambda: None,
) -> Tuple[np.ndarray, Optional[str]]:
    """Centroids of ``label_files`` (:func:`centroids_of_label_files`) and the cache file
    holding them (``None`` without a cache folder).

    The file is ``<cache_dir>/<name>_tile<tile>_<key[:16]>.npz``, key
    :func:`centroid_cache_key` (stored in the file too, and checked). A missing or unusable file
    is computed by the main process and written atomically (:func:`seethroughnet.utils.atomic
    .atomic_path`: a killed writer leaves no half file); the other processes wait at
    ``synchronize`` and read it, as [41]'s ``build_centroids`` does with a barrier."""
    if tile < 1:
        raise ValueError(f"DATALOADER.CLASS_UNIFORM.TILE: {tile!r} must be a positive integer")
    if not cache_dir:
        logger.info("class-uniform sampling: no centroid cache folder, computing the centroids")
        return centroids_of_label_files(label_files, num_classes, tile, workers), None
    key = centroid_cache_key(label_files, num_classes, tile)
    safe_name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    path = os.path.join(cache_dir, f"{safe_name}_tile{tile}_{key[:16]}.npz")
    centroids = _read_cache(path, key) if os.path.isfile(path) else None
    if centroids is None and is_main_process:
        logger.info(f"class-uniform sampling: computing the centroids of {len(label_files)} images")
        centroids = centroids_of_label_files(label_files, num_classes, tile, workers)
        _write_cache(path, key, centroids)
        logger.info(f"class-uniform sampling: centroids written to {path}")
    synchronize()
    if centroids is None:
        centroids = _read_cache(path, key)
        if centroids is None:
            raise RuntimeError(
                f"class-uniform centroid cache {path} was not written by the main process: "
                "DATALOADER.CLASS_UNIFORM.CACHE_DIR must be one folder shared by all processes"
            )
    else:
        logger.info(f"class-uniform sampling: centroids from {path}")
    return centroids, path


# --------------------------------------------------------------------------------- the epochs
def samples_per_class(num_images: int, num_classes: int, pct: float) -> int:
    """``int(num_images * pct / num_classes)``, [41]'s ``num_per_class``."""
    return int((num_images * pct) / num_classes)


def _wrapped_draw(rng: np.random.Generator, length: int, count: int) -> np.ndarray:
    """``count`` positions of a random permutation of ``range(length)``, wrapped around when
    ``count > length`` ([41] ``uniform.random_sampling``)."""
    return rng.permutation(length)[np.arange(count) % length]


def class_uniform_epoch(
    num_images: int,
    centroids: np.ndarray,
    num_classes: int,
    pct: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """One epoch of samples as an ``(L, 4)`` array of rows ``(image_index, class_id, x, y)``
    (``class_id = -1``, ``x = y = -1`` for a plain sample), in a random order.

    ``n = int(num_images * pct / num_classes)``; ``num_images - n * num_classes`` plain samples,
    then ``n`` centroids of each class ``0 .. num_classes - 1`` that has any, as [41]'s
    ``build_epoch``; the list is then shuffled (what [41]'s DistributedSampler does with
    ``permutation=True``). ``centroids``: rows ``(class_id, image_index, x, y)``."""
    per_class = samples_per_class(num_images, num_classes, pct)
    num_plain = num_images - per_class * num_classes
    plain = _wrapped_draw(rng, num_images, num_plain) if num_plain > 0 else np.zeros(0, np.int64)
    parts = [np.stack([plain, *([np.full(len(plain), -1, np.int64)] * 3)], axis=1)]
    if per_class > 0:
        for class_id in range(num_classes):
            of_class = centroids[centroids[:, 0] == class_id]
            if len(of_class) == 0:
                continue
            drawn = of_class[_wrapped_draw(rng, len(of_class), per_class)]
            parts.append(drawn[:, [1, 0, 2, 3]])
    epoch = np.concatenate(parts, axis=0).astype(np.int64)
    return epoch[rng.permutation(len(epoch))]


class ClassUniformOrder:
    """The infinite class-uniform sample stream of a seed: epoch ``e`` is
    :func:`class_uniform_epoch` with the generator ``numpy.random.default_rng([seed, e])``; the
    stream is epoch 0, epoch 1, ... . Every epoch has the same length, so :meth:`elements` starts
    at any element in O(one epoch).

    Elements are ``(image_index, centroid)`` with ``centroid`` ``None`` for a plain sample, else
    ``(class_id, x, y)`` in the label map's pixel coordinates."""

    def __init__(self, num_images: int, centroids: np.ndarray, num_classes: int, pct: float):
        if not 0.0 <= pct <= 1.0:
            raise ValueError(f"DATALOADER.CLASS_UNIFORM.PCT: {pct!r} must lie in [0, 1]")
        if num_images < 1:
            raise ValueError("class-uniform sampling needs at least one training image")
        self.num_images, self.num_classes, self.pct = int(num_images), int(num_classes), pct
        self.centroids = np.asarray(centroids, dtype=np.int64).reshape(-1, 4)
        per_class = samples_per_class(num_images, num_classes, pct)
        classes_with_centroids = len(np.unique(self.centroids[:, 0]))
        self.epoch_length = (
            num_images - per_class * num_classes + per_class * (classes_with_centroids)
        )
        if self.epoch_length < 1:
            raise ValueError(
                f"DATALOADER.CLASS_UNIFORM.PCT {pct}: every sample is class-uniform but no class "
                "has a centroid (are the images smaller than DATALOADER.CLASS_UNIFORM.TILE?)"
            )

    def describe(self) -> str:
        """What identifies the stream besides the seed (saved with the loader's position)."""
        if not hasattr(self, "_description"):
            h = hashlib.sha256(self.centroids.tobytes()).hexdigest()[:16]
            self._description = (
                f"class_uniform pct={self.pct} images={self.num_images} centroids={h}"
            )
        return self._description

    def epoch(self, seed: int, index: int) -> np.ndarray:
        rng = np.random.default_rng([int(seed), int(index)])
        return class_uniform_epoch(self.num_images, self.centroids, self.num_classes, self.pct, rng)

    def elements(self, seed: int, start: int = 0) -> Iterator[Tuple[int, Optional[tuple]]]:
        """The stream from its element ``start`` (0-based) on."""
        epoch_index, offset = divmod(int(start), self.epoch_length)
        while True:
            for image_index, class_id, x, y in self.epoch(seed, epoch_index)[offset:].tolist():
                yield image_index, (None if class_id < 0 else (class_id, x, y))
            epoch_index, offset = epoch_index + 1, 0

    def class_counts(self) -> Dict[int, int]:
        """Centroids per class (the log line [41] prints, ``cls <id> len <n>``)."""
        ids, counts = np.unique(self.centroids[:, 0], return_counts=True)
        return {int(i): int(n) for i, n in zip(ids.tolist(), counts.tolist())}


def build_class_uniform_order(cfg, dataset_dicts) -> ClassUniformOrder:
    """:class:`ClassUniformOrder` of a training set (detectron2 dataset dicts with
    ``sem_seg_file_name``) from ``DATALOADER.CLASS_UNIFORM`` (centroids from the cache folder,
    computed by the main process if needed) and ``MODEL.SEM_SEG_HEAD.NUM_CLASSES``."""
    from detectron2.utils import comm

    cu = cfg.DATALOADER.CLASS_UNIFORM
    missing = [d.get("file_name") for d in dataset_dicts if not d.get("sem_seg_file_name")]
    if missing:
        raise ValueError(
            f"DATALOADER.CLASS_UNIFORM.ENABLED needs label files: {missing[0]} has no "
            "sem_seg_file_name"
        )
    cache_dir = cu.CACHE_DIR
    if not cache_dir:
        from .datasets.validation_cache import cache_dir as default_cache_dir

        base = default_cache_dir()
        cache_dir = os.path.join(base, "class_uniform_centroids") if base else None
    num_classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    centroids, path = load_or_build_centroids(
        [d["sem_seg_file_name"] for d in dataset_dicts],
        num_classes,
        cu.TILE,
        cache_dir,
        name="+".join(cfg.DATASETS.TRAIN),
        workers=max(1, cfg.DATALOADER.NUM_WORKERS),
        is_main_process=comm.is_main_process(),
        synchronize=comm.synchronize,
    )
    order = ClassUniformOrder(len(dataset_dicts), centroids, num_classes, cu.PCT)
    counts = order.class_counts()
    logger.info(
        f"class-uniform sampling: {cu.PCT:.0%} of {order.epoch_length} samples per epoch, "
        f"{samples_per_class(len(dataset_dicts), num_classes, cu.PCT)} per class; centroids per "
        f"class: {', '.join(f'{c}: {counts.get(c, 0)}' for c in range(num_classes))}"
    )
    absent = [c for c in range(num_classes) if c not in counts]
    if absent:
        logger.warning(
            f"class-uniform sampling: classes {absent} have no centroid in any "
            f"{cu.TILE}x{cu.TILE} tile; they get no class-uniform samples (as in [41])"
        )
    return order
