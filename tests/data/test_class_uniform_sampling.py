"""Class-uniform sampling of Tao et al. [41] (seethroughnet/data/class_uniform.py): centroids
against an independent computation, the cache (reused, invalidated, rebuilt when corrupt), the
epoch composition of [41]'s build_epoch, the share of class-uniform samples in the stream within a
binomial bound, the stream's determinism and rank sharding, and the effect that motivates it: with
PCT 0.5 a rare class covers more pixels per crop than with PCT 0 (mapper with INPUT.PIPELINE
"nvidia" on a synthetic dataset)."""

import math
import os
import random

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("detectron2")

from seethroughnet.data import class_uniform as CU  # noqa: E402

NUM_CLASSES = 4
RARE = 3


def independent_centroids(label, num_classes, tile):
    """Centroids written from [41]'s description, with explicit loops over pixel coordinates
    (no scipy): for each whole tile (row-major) and each class present, the mean x and mean y of
    its pixels, truncated toward zero, plus the tile's origin."""
    out = []
    h, w = label.shape
    for ty in range(h // tile):
        for tx in range(w // tile):
            patch = label[ty * tile : (ty + 1) * tile, tx * tile : (tx + 1) * tile]
            for c in range(num_classes):
                ys, xs = [], []
                for y in range(tile):
                    for x in range(tile):
                        if patch[y, x] == c:
                            ys.append(y)
                            xs.append(x)
                if ys:
                    cx = math.trunc(sum(xs) / len(xs)) + tx * tile
                    cy = math.trunc(sum(ys) / len(ys)) + ty * tile
                    out.append((c, cx, cy))
    return out


def synthetic_labels(n, height=24, width=40, seed=0, rare_every=5):
    """Labels of classes 0..2 in random rectangles with ignore (255) pixels; every
    ``rare_every``-th image has a small square of the rare class 3."""
    rng = np.random.default_rng(seed)
    labels = []
    for i in range(n):
        lab = rng.integers(0, 3, size=(height, width)).astype(np.uint8)
        lab[rng.integers(0, height) :, : rng.integers(1, width)] = rng.integers(0, 3)
        lab[:2, :3] = 255
        if i % rare_every == 0:
            y, x = rng.integers(0, height - 4), rng.integers(0, width - 4)
            lab[y : y + 3, x : x + 3] = RARE
        labels.append(lab)
    return labels


def write_labels(folder, labels):
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, lab in enumerate(labels):
        p = os.path.join(folder, f"label_{i:03d}.png")
        Image.fromarray(lab).save(p)
        paths.append(p)
    return paths


# ------------------------------------------------------------------------------------ centroids
@pytest.mark.parametrize("tile", [8, 16, 24, 1024])
def test_centroids_equal_an_independent_computation(tile):
    for lab in synthetic_labels(4, seed=tile):
        assert CU.image_class_centroids(lab, NUM_CLASSES, tile) == independent_centroids(
            lab, NUM_CLASSES, tile
        )
    # only whole tiles: a 24 x 40 map has one row of 16-tiles (two of them), none of 1024
    assert CU.tile_origins(24, 40, 16) == [(0, 0), (16, 0)]
    assert CU.tile_origins(24, 40, 1024) == []


def test_centroids_of_files_index_images_in_order(tmp_path):
    labels = synthetic_labels(5)
    paths = write_labels(tmp_path / "l", labels)
    rows = CU.centroids_of_label_files(paths, NUM_CLASSES, 8, workers=2)
    expected = [
        (c, i, x, y) for i, lab in enumerate(labels) for c, x, y in independent_centroids(lab, 4, 8)
    ]
    assert [tuple(r) for r in rows.tolist()] == expected


def test_cache_is_reused_invalidated_and_rebuilt_when_corrupt(tmp_path, monkeypatch, caplog):
    labels = synthetic_labels(6)
    paths = write_labels(tmp_path / "l", labels)
    cache = tmp_path / "cache"
    calls = []
    real = CU.centroids_of_label_files

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(CU, "centroids_of_label_files", counting)
    first, path = CU.load_or_build_centroids(paths, NUM_CLASSES, 8, str(cache), name="toy")
    assert len(calls) == 1 and os.path.isfile(path)
    assert not [n for n in os.listdir(cache) if ".part" in n]
    again, path2 = CU.load_or_build_centroids(paths, NUM_CLASSES, 8, str(cache), name="toy")
    assert len(calls) == 1 and path2 == path and np.array_equal(again, first)  # reused

    # another tile: another file
    _, path_tile = CU.load_or_build_centroids(paths, NUM_CLASSES, 16, str(cache), name="toy")
    assert len(calls) == 2 and path_tile != path
    # a changed label file: another key, recomputed, and the new centroids are the new file's
    lab = labels[2].copy()
    lab[:, :] = 1
    Image.fromarray(lab).save(paths[2])
    os.utime(paths[2], ns=(1, 1))  # a different modification time even on a coarse clock
    changed, path_changed = CU.load_or_build_centroids(
        paths, NUM_CLASSES, 8, str(cache), name="toy"
    )
    assert len(calls) == 3 and path_changed != path
    assert sorted(map(tuple, changed[changed[:, 1] == 2].tolist())) == sorted(
        (c, 2, x, y) for c, x, y in independent_centroids(lab, NUM_CLASSES, 8)
    )
    # a truncated cache file: a warning naming it, recomputed, replaced
    data = open(path_changed, "rb").read()
    open(path_changed, "wb").write(data[: len(data) // 2])
    with caplog.at_level("WARNING"):
        rebuilt, _ = CU.load_or_build_centroids(paths, NUM_CLASSES, 8, str(cache), name="toy")
    assert len(calls) == 4 and np.array_equal(rebuilt, changed)
    assert path_changed in caplog.text and "recomputing" in caplog.text
    CU.load_or_build_centroids(paths, NUM_CLASSES, 8, str(cache), name="toy")
    assert len(calls) == 4  # the rewritten file is whole again


def test_a_process_other_than_the_main_one_reads_what_the_main_one_wrote(tmp_path):
    paths = write_labels(tmp_path / "l", synthetic_labels(3))
    cache = str(tmp_path / "cache")
    with pytest.raises(RuntimeError, match="CACHE_DIR"):  # nothing written: a clear message
        CU.load_or_build_centroids(paths, 4, 8, cache, name="toy", is_main_process=False)
    main, _ = CU.load_or_build_centroids(paths, 4, 8, cache, name="toy")
    other, _ = CU.load_or_build_centroids(paths, 4, 8, cache, name="toy", is_main_process=False)
    assert np.array_equal(main, other)


# ------------------------------------------------------------------------------------- epochs
def toy_centroids(num_images, num_classes, rng, missing=()):
    rows = []
    for i in range(num_images):
        for c in range(num_classes):
            if c not in missing and rng.random() < 0.5:
                rows.append((c, i, int(rng.integers(0, 50)), int(rng.integers(0, 30))))
    return np.asarray(rows, dtype=np.int64)


def test_epoch_has_the_reference_counts():
    """[41]'s build_epoch: n = int(N * pct / C) per class that has centroids, N - n * C plain
    samples; a class without centroids adds nothing; every drawn centroid is one of its class."""
    rng = np.random.default_rng(1)
    n_img, n_cls = 103, 5
    cents = toy_centroids(n_img, n_cls, rng, missing=(4,))
    for pct in (0.0, 0.3, 0.5, 1.0):
        epoch = CU.class_uniform_epoch(n_img, cents, n_cls, pct, np.random.default_rng(7))
        per = int(n_img * pct / n_cls)
        assert per == CU.samples_per_class(n_img, n_cls, pct)
        counts = {c: int((epoch[:, 1] == c).sum()) for c in range(-1, n_cls)}
        assert counts == {-1: n_img - per * n_cls, 0: per, 1: per, 2: per, 3: per, 4: 0}
        order = CU.ClassUniformOrder(n_img, cents, n_cls, pct)
        assert order.epoch_length == len(epoch)
        known = {tuple(r) for r in cents.tolist()}
        for img, c, x, y in epoch[epoch[:, 1] >= 0].tolist():
            assert (c, img, x, y) in known
        plain = epoch[epoch[:, 1] < 0, 0]
        # plain samples: a permutation prefix, so no image twice while fewer than N are drawn
        assert len(set(plain.tolist())) == len(plain)


def test_stream_share_of_class_uniform_samples_is_the_configured_share():
    """Over a window of the stream that cuts epochs anywhere, the share of class-uniform samples
    equals n * C / N (= PCT up to the rounding of n) within 4 binomial standard deviations, and
    each class gets its 1/C of them (same bound)."""
    rng = np.random.default_rng(2)
    n_img, n_cls, pct = 190, 19, 0.5
    cents = toy_centroids(n_img, n_cls, rng)
    order = CU.ClassUniformOrder(n_img, cents, n_cls, pct)
    expected = CU.samples_per_class(n_img, n_cls, pct) * n_cls / order.epoch_length
    assert expected == pytest.approx(pct)  # 190 * 0.5 / 19 = 5 exactly
    window = 4000
    it = order.elements(seed=11, start=123)
    drawn = [next(it)[1] for _ in range(window)]
    uniform = [d for d in drawn if d is not None]
    sd = math.sqrt(window * expected * (1 - expected))
    assert abs(len(uniform) - window * expected) <= 4 * sd
    per_class = np.bincount([d[0] for d in uniform], minlength=n_cls)
    p = 1 / n_cls
    sd_c = math.sqrt(len(uniform) * p * (1 - p))
    assert np.all(np.abs(per_class - len(uniform) * p) <= 4 * sd_c), per_class


def test_stream_is_a_function_of_seed_and_position_and_is_sharded_by_rank():
    rng = np.random.default_rng(3)
    order = CU.ClassUniformOrder(37, toy_centroids(37, 4, rng), 4, 0.5)

    def take(seed, start, n):
        it = order.elements(seed, start)
        return [next(it) for _ in range(n)]

    whole = take(5, 0, 200)  # crosses several epochs (length 37)
    assert take(5, 0, 200) == whole
    for start in (1, 36, 37, 38, 150):
        assert take(5, start, 20) == whole[start : start + 20]
    assert take(6, 0, 200) != whole
    # ranks as in the loader: rank r of W takes elements r, r + W, ... of the shared stream
    from itertools import islice

    world = 3
    shards = [list(islice(order.elements(5, r), 0, 60, world)) for r in range(world)]
    assert shards[0] != shards[1] != shards[2]
    interleaved = [shards[r][k] for k in range(20) for r in range(world)]
    assert interleaved == whole[:60]


def test_bad_share_and_images_without_centroids_are_clear_errors():
    with pytest.raises(ValueError, match="CLASS_UNIFORM.PCT"):
        CU.ClassUniformOrder(10, np.zeros((0, 4), np.int64), 2, 1.5)
    with pytest.raises(ValueError, match="TILE"):  # PCT 1: every sample would need a centroid
        CU.ClassUniformOrder(10, np.zeros((0, 4), np.int64), 2, 1.0)


# ------------------------------------------------------------- the mapper: rare-class pixels
def _dataset(tmp_path, n=40):
    labels = synthetic_labels(n, height=32, width=64, rare_every=8)
    img_dir = tmp_path / "img"
    os.makedirs(img_dir, exist_ok=True)
    dicts = []
    rng = np.random.default_rng(4)
    for i, p in enumerate(write_labels(tmp_path / "lab", labels)):
        img = os.path.join(img_dir, f"img_{i:03d}.png")
        Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(img)
        dicts.append(
            {"file_name": img, "sem_seg_file_name": p, "height": 32, "width": 64, "image_id": i}
        )
    return dicts


def _cfg(pct, tmp_path):
    from detectron2.config import get_cfg

    from seethroughnet.config import add_seethroughnet_config

    cfg = add_seethroughnet_config(get_cfg())
    cfg.INPUT.PIPELINE = "nvidia"
    cfg.INPUT.FORMAT = "RGB"
    cfg.INPUT.CROP.ENABLED = True
    cfg.INPUT.CROP.TYPE = "absolute"
    cfg.INPUT.CROP.SIZE = (16, 16)
    cfg.INPUT.NVIDIA.SCALE_RANGE = (1.0, 1.0)
    cfg.INPUT.NVIDIA.COLOR_JITTER = (0.0, 0.0, 0.0, 0.0)
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = NUM_CLASSES
    cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE = 255
    cfg.DATALOADER.CLASS_UNIFORM.ENABLED = True
    cfg.DATALOADER.CLASS_UNIFORM.PCT = pct
    cfg.DATALOADER.CLASS_UNIFORM.TILE = 32
    cfg.DATALOADER.CLASS_UNIFORM.CACHE_DIR = str(tmp_path / "cache")
    cfg.DATASETS.TRAIN = ("toy_class_uniform",)
    return cfg


def test_rare_class_pixels_per_crop_rise_with_class_uniform_sampling(tmp_path):
    """40 images, the rare class (a 3x3 square) in every 8th; 16x16 crops of 32x64 images.
    n = int(40 * 0.5 / 4) = 5 rare-class samples per epoch of 40, each a crop that covers the
    square's centroid; so with PCT 0.5 the rare class is in a crop at least 5/40 of the time and,
    with PCT 0, in at most about (5 images of 40) x (the share of crops holding the square)."""
    from seethroughnet.data.class_uniform import build_class_uniform_order
    from seethroughnet.data.dataset_mappers import SemanticSegmentationMapper
    from seethroughnet.data.dataset_mappers.semantic_segmentation_mapper import (
        build_train_augmentations,
    )
    from seethroughnet.resumable import ResumableTrainLoader

    dicts = _dataset(tmp_path)
    stats = {}
    for pct in (0.0, 0.5):
        cfg = _cfg(pct, tmp_path)
        order = build_class_uniform_order(cfg, dicts)
        mapper = SemanticSegmentationMapper(
            True,
            augmentations=build_train_augmentations(cfg),
            image_format="RGB",
            num_classes=NUM_CLASSES,
            ignore_value=255,
            dataset_ignore_label=255,
        )
        loader = ResumableTrainLoader(dicts, mapper, 4, seed=1, num_workers=0, order=order)
        it = iter(loader)
        np.random.seed(0)
        random.seed(0)
        rare_pixels, with_rare, samples = 0, 0, 0
        for _ in range(100):  # 400 samples = 10 epochs
            for d in next(it):
                n_rare = int((d["sem_seg"] == RARE).sum())
                assert d["sem_seg"].shape == (16, 16)
                rare_pixels += n_rare
                with_rare += n_rare > 0
                samples += 1
        stats[pct] = (rare_pixels / samples, with_rare / samples)
    # with PCT 0.5 every rare-class sample's crop covers the whole 3x3 square or part of it
    assert stats[0.5][1] >= 0.9 * 5 / 40
    assert stats[0.5][0] > 1.5 * stats[0.0][0], stats
    assert stats[0.5][1] > 1.5 * stats[0.0][1], stats


def test_class_uniform_needs_the_nvidia_pipeline_and_training_sampler(tmp_path):
    from seethroughnet.data.dataset_mappers.semantic_segmentation_mapper import (
        build_train_augmentations,
    )

    cfg = _cfg(0.5, tmp_path)
    cfg.INPUT.PIPELINE = "detectron2"
    with pytest.raises(ValueError, match="DATALOADER.CLASS_UNIFORM.ENABLED.*'nvidia'"):
        build_train_augmentations(cfg)
    cfg = _cfg(0.5, tmp_path)
    cfg.DATALOADER.SAMPLER_TRAIN = "RepeatFactorTrainingSampler"
    from seethroughnet.resumable import build_resumable_train_loader

    with pytest.raises(ValueError, match="SAMPLER_TRAIN"):
        build_resumable_train_loader(cfg, lambda d: d)
