"""Dataset registration: Cityscapes builtin names, folder datasets, CamVid, the cache, the CLI.

The Cityscapes tests build tiny Cityscapes-format fixtures (32x64 PNGs) with the ``tiny_cs``
fixture of ``tests/data/conftest.py``; the CamVid tests are in test_camvid.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

detectron2 = pytest.importorskip("detectron2", reason="detectron2 is not installed")
from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402

import seethroughnet.data.datasets as sdd  # noqa: E402
from seethroughnet.data.datasets import (  # noqa: E402
    DatasetError,
    read_label,
    register_all,
    register_cityscapes,
    register_folder_semseg,
    validation,  # noqa: E402
)

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("isolated_validation_cache", "restore_default_registrations")


@pytest.fixture
def cityscapes(tiny_cs, tmp_path):
    root = tmp_path / "cityscapes"
    files = tiny_cs.write_cityscapes(root)
    register_cityscapes(str(root))
    return root, files


# --------------------------------------------------------------------------------------
# Cityscapes
# --------------------------------------------------------------------------------------
def test_cityscapes_semantic_loads_fixture(tiny_cs, cityscapes):
    root, files = cityscapes
    dicts = DatasetCatalog.get("cityscapes_fine_sem_seg_val")
    assert len(dicts) == 4
    assert len(DatasetCatalog.get("cityscapes_fine_sem_seg_train")) == 4
    by_name = {d["file_name"]: d for d in dicts}
    for s in files["val"]:
        d = by_name[s["image"]]
        assert d["sem_seg_file_name"] == s["trainIds"]
        assert (d["height"], d["width"]) == (tiny_cs.H, tiny_cs.W)
    # identical to detectron2's own loader
    from detectron2.data.datasets.cityscapes import load_cityscapes_semantic

    meta = MetadataCatalog.get("cityscapes_fine_sem_seg_val")
    ref = load_cityscapes_semantic(meta.image_dir, meta.gt_dir)
    key = lambda d: d["file_name"]  # noqa: E731
    assert sorted(ref, key=key) == sorted(dicts, key=key)


def test_cityscapes_metadata(cityscapes):
    root, _ = cityscapes
    from cityscapesscripts.helpers.labels import labels

    train_labels = sorted(
        (l for l in labels if l.trainId not in (255, -1)), key=lambda l: l.trainId
    )
    for split in ("train", "val", "test"):
        sem = MetadataCatalog.get(f"cityscapes_fine_sem_seg_{split}")
        assert sem.evaluator_type == "cityscapes_sem_seg"
        assert sem.ignore_label == 255
        assert sem.image_dir == os.path.join(str(root), "leftImg8bit", split, "")
        assert sem.gt_dir == os.path.join(str(root), "gtFine", split, "")
        assert sem.stuff_classes == [l.name for l in train_labels]
        assert [tuple(c) for c in sem.stuff_colors] == [tuple(l.color) for l in train_labels]
        assert sem.thing_classes == [
            "person",
            "rider",
            "car",
            "truck",
            "bus",
            "train",
            "motorcycle",
            "bicycle",
        ]
        inst = MetadataCatalog.get(f"cityscapes_fine_instance_seg_{split}")
        assert inst.evaluator_type == "cityscapes_instance"
        assert inst.thing_classes == sem.thing_classes
        assert len(inst.thing_colors) == 8
    # detectron2's builtin metadata is kept (we only add to it)
    from detectron2.data.datasets.builtin_meta import _get_builtin_metadata

    for k, v in _get_builtin_metadata("cityscapes").items():
        assert getattr(MetadataCatalog.get("cityscapes_fine_sem_seg_val"), k) == v


def test_default_root_follows_detectron2_datasets(tiny_cs, tmp_path, monkeypatch):
    tiny_cs.write_cityscapes(tmp_path / "d2" / "cityscapes", splits=("val",), per_city=1)
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "d2"))
    register_cityscapes()
    meta = MetadataCatalog.get("cityscapes_fine_sem_seg_val")
    assert meta.image_dir.startswith(str(tmp_path / "d2" / "cityscapes"))
    assert len(DatasetCatalog.get("cityscapes_fine_sem_seg_val")) == 2


def test_register_all_is_idempotent():
    names = register_all()
    names2 = register_all()
    assert names == names2
    expected = {
        f"cityscapes_fine_{t}_{s}"
        for t in ("sem_seg", "instance_seg")
        for s in ("train", "val", "test")
    } | {"camvid_train", "camvid_val", "camvid_trainval"}
    assert expected <= set(names)
    assert expected <= set(DatasetCatalog.list())


def test_cityscapes_instances_fixture(cityscapes):
    pytest.importorskip(
        "shapely", reason="detectron2's load_cityscapes_instances(from_json=True) needs shapely"
    )
    dicts = DatasetCatalog.get("cityscapes_fine_instance_seg_val")
    assert len(dicts) == 4 and all("annotations" in d for d in dicts)


def test_cityscapes_header_mode_skips_decoding(cityscapes, monkeypatch):
    calls = []
    orig = validation.decode_label_file
    monkeypatch.setattr(
        validation, "decode_label_file", lambda *a, **k: calls.append(a) or orig(*a, **k)
    )
    monkeypatch.setenv("SEETHROUGHNET_VALIDATE", "header")
    assert len(DatasetCatalog.get("cityscapes_fine_sem_seg_val")) == 4
    assert calls == []


# --------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------
def test_cache_second_load_decodes_nothing_and_rechecks_modified_files(
    tiny_cs, cityscapes, tmp_path, monkeypatch
):
    root, files = cityscapes
    calls = []
    orig = validation.decode_label_file

    def counting(path, *a, **k):
        calls.append(path)
        return orig(path, *a, **k)

    monkeypatch.setattr(validation, "decode_label_file", counting)
    DatasetCatalog.get("cityscapes_fine_sem_seg_val")
    # val: the trainIds (training / SemSegEvaluator) and the labelIds (cityscapesscripts'
    # evaluation)
    assert sorted(calls) == sorted(
        [s["trainIds"] for s in files["val"]] + [s["labelIds"] for s in files["val"]]
    )
    cache_files = list((tmp_path / "cache").glob("*.json"))
    assert len(cache_files) == 1
    assert not list((tmp_path / "cache").glob(".tmp-*")), "temporary cache file left behind"

    calls.clear()
    DatasetCatalog.get("cityscapes_fine_sem_seg_val")
    assert calls == [], "second load must be served from the cache"

    # modify one label: it (and only it) is decoded again, and the new bad value is caught
    target = files["val"][1]["trainIds"]
    bad = tiny_cs.train_ids(0)
    bad[0, 0] = 37
    Image.fromarray(bad).save(target)
    st = os.stat(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # robust on coarse clocks
    calls.clear()
    with pytest.raises(DatasetError, match="holds value 37"):
        DatasetCatalog.get("cityscapes_fine_sem_seg_val")
    assert calls == [target]


def test_corrupt_cache_file_is_ignored(cityscapes, tmp_path):
    DatasetCatalog.get("cityscapes_fine_sem_seg_val")
    (cache_file,) = (tmp_path / "cache").glob("*.json")
    cache_file.write_text("{not json")
    assert len(DatasetCatalog.get("cityscapes_fine_sem_seg_val")) == 4
    json.loads(cache_file.read_text())  # rewritten, valid again


def test_cache_can_be_disabled(cityscapes, tmp_path, monkeypatch):
    monkeypatch.setenv("SEETHROUGHNET_CACHE_DIR", "off")
    DatasetCatalog.get("cityscapes_fine_sem_seg_val")
    assert not (tmp_path / "cache").exists()


# --------------------------------------------------------------------------------------
# folder datasets
# --------------------------------------------------------------------------------------
def _write_folder(tiny_cs, root: Path, n=3, k=4, ignore=255, sub="") -> None:
    for i in range(n):
        (root / "images" / sub).mkdir(parents=True, exist_ok=True)
        (root / "labels" / sub).mkdir(parents=True, exist_ok=True)
        image = np.full((tiny_cs.H, tiny_cs.W, 3), 40 * i, np.uint8)
        Image.fromarray(image).save(root / "images" / sub / f"im{i}.jpg")
        lab = (np.arange(tiny_cs.H * tiny_cs.W).reshape(tiny_cs.H, tiny_cs.W) % k).astype(np.uint8)
        lab[0] = ignore
        Image.fromarray(lab).save(root / "labels" / sub / f"im{i}.png")


def test_folder_semseg_pairs_folders(tiny_cs, tmp_path):
    _write_folder(tiny_cs, tmp_path, n=3, k=4)
    register_folder_semseg(
        "t_folder", str(tmp_path / "images"), str(tmp_path / "labels"), ["a", "b", "c", "d"]
    )
    dicts = DatasetCatalog.get("t_folder")
    assert [d["image_id"] for d in dicts] == ["im0", "im1", "im2"]
    d = dicts[0]
    assert set(d) == {"file_name", "sem_seg_file_name", "height", "width", "image_id"}
    assert d["file_name"] == str(tmp_path / "images" / "im0.jpg")
    assert d["sem_seg_file_name"] == str(tmp_path / "labels" / "im0.png")
    assert (d["height"], d["width"]) == (tiny_cs.H, tiny_cs.W)
    meta = MetadataCatalog.get("t_folder")
    assert meta.stuff_classes == ["a", "b", "c", "d"]
    assert len(meta.stuff_colors) == 4
    assert meta.ignore_label == 255 and meta.evaluator_type == "sem_seg"
    # re-registering (e.g. with other classes) is fine
    register_folder_semseg(
        "t_folder",
        str(tmp_path / "images"),
        str(tmp_path / "labels"),
        list("abcde"),
        ignore_label=9,
    )
    assert MetadataCatalog.get("t_folder").ignore_label == 9


def test_folder_semseg_subfolders_and_pairs_file(tiny_cs, tmp_path):
    _write_folder(tiny_cs, tmp_path, n=2, k=3, sub="seq1")
    (tmp_path / "list.txt").write_text("# comment\nimages/seq1/im1.jpg labels/seq1/im1.png\n\n")
    register_folder_semseg(
        "t_all", str(tmp_path / "images"), str(tmp_path / "labels"), ["a", "b", "c"]
    )
    assert [d["image_id"] for d in DatasetCatalog.get("t_all")] == ["seq1/im0", "seq1/im1"]
    register_folder_semseg(
        "t_list",
        str(tmp_path / "images"),
        str(tmp_path / "labels"),
        ["a", "b", "c"],
        pairs_file=str(tmp_path / "list.txt"),
    )
    (d,) = DatasetCatalog.get("t_list")
    assert d["file_name"] == os.path.join(str(tmp_path), "images/seq1/im1.jpg")
    # single-token lines: image relative to image_root, label derived
    (tmp_path / "list1.txt").write_text("seq1/im0.jpg\n")
    register_folder_semseg(
        "t_list1",
        str(tmp_path / "images"),
        str(tmp_path / "labels"),
        ["a", "b", "c"],
        pairs_file=str(tmp_path / "list1.txt"),
    )
    (d,) = DatasetCatalog.get("t_list1")
    assert d["sem_seg_file_name"] == os.path.join(str(tmp_path / "labels"), "seq1/im0.png")


def test_folder_semseg_rejects_ignore_label_inside_classes(tmp_path):
    with pytest.raises(ValueError, match="ignore_label 2 is one of the class indices"):
        register_folder_semseg(
            "t_bad", str(tmp_path), str(tmp_path), ["a", "b", "c"], ignore_label=2
        )


# --------------------------------------------------------------------------------------
# read_label
# --------------------------------------------------------------------------------------
def test_read_label_returns_values(tiny_cs, tmp_path):
    p = tmp_path / "l.png"
    a = tiny_cs.train_ids(3)
    Image.fromarray(a).save(p)
    out = read_label(str(p), sdd.TRAIN_ID_TABLE)
    assert out.dtype == np.uint8 and np.array_equal(out, a)
    assert np.array_equal(read_label(str(p), list(range(19)) + [255]), a)
    assert np.array_equal(read_label(str(p)), a)
    # palette PNGs hold indices: accepted, values are the indices
    q = tmp_path / "p.png"
    im = Image.new("P", (a.shape[1], a.shape[0]))
    im.putpalette([i % 256 for i in range(768)])
    im.putdata(a.ravel().tolist())
    im.save(q)
    assert Image.open(q).mode == "P"
    assert np.array_equal(read_label(str(q), sdd.TRAIN_ID_TABLE), a)
    # 16-bit labels: values checked the same way
    r = tmp_path / "r.png"
    Image.fromarray(a.astype(np.uint16)).save(r)
    assert np.array_equal(read_label(str(r), sdd.TRAIN_ID_TABLE), a)


# --------------------------------------------------------------------------------------
# the synthetic generator
# --------------------------------------------------------------------------------------
def test_synthetic_cityscapes_registers(tmp_path):
    from seethroughnet.data.synthetic import generate_synthetic_cityscapes

    root = tmp_path / "cityscapes"
    generate_synthetic_cityscapes(
        str(root),
        seed=0,
        height=32,
        width=64,
        num_images={"train": 2, "val": 2, "test": 1},
        progress=False,
    )
    register_cityscapes(str(root))
    for split in ("train", "val"):
        dicts = DatasetCatalog.get(f"cityscapes_fine_sem_seg_{split}")
        assert len(dicts) == 2


# --------------------------------------------------------------------------------------
# the CLI
# --------------------------------------------------------------------------------------
def _load_cli():
    spec = importlib.util.spec_from_file_location(
        "check_dataset", REPO / "tools" / "check_dataset.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_check_dataset_cli(cityscapes, capsys, monkeypatch):
    monkeypatch.setenv("SEETHROUGHNET_VALIDATE", "full")  # restored after the test
    cli = _load_cli()
    assert cli.main(["cityscapes_fine_sem_seg_*", "--no-progress"]) == 1  # test split is absent
    out = capsys.readouterr().out
    assert "== cityscapes_fine_sem_seg_val" in out and "4 images" in out
    assert "sky" in out and "(ignore)" in out
    assert "INVALID" in out and "leftImg8bit/test" in out
    assert cli.main(["cityscapes_fine_sem_seg_val", "--no-progress", "--mode", "header"]) == 0
    assert cli.main(["no_such_dataset"]) == 2


# --------------------------------------------------------------------------------------
# Pascal Context: 60 classes (MMSegmentation's PascalContextDataset) beside 59
# --------------------------------------------------------------------------------------
def test_pascal_context_60_and_59_register_their_own_label_sets(tmp_path):
    """``pascal_context60_*`` reads the 60-label maps as they are (background 0 a class, 0..59),
    ``pascal_context59_*`` the reduced ones (background 255, 0..58); both from the pairs files
    of datasets/prepare_pascal_context.py, ignore label 255."""
    from seethroughnet.data.datasets.pascal_context import (
        CONTEXT59_CLASSES,
        CONTEXT60_CLASSES,
        register_pascal_context,
    )

    ctx = tmp_path / "VOCdevkit/VOC2010"
    for d in ("JPEGImages", "SegmentationClassContext", "SegmentationClassContext59"):
        (ctx / d).mkdir(parents=True)
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(ctx / "JPEGImages/x.jpg")
    full = np.zeros((4, 6), np.uint8)
    full[:, 3:] = 59  # background (0) and wood (59)
    Image.fromarray(full).save(ctx / "SegmentationClassContext/x.png")
    Image.fromarray(np.where(full == 0, 255, full - 1).astype(np.uint8)).save(
        ctx / "SegmentationClassContext59/x.png"
    )
    for n, labels in ((60, "SegmentationClassContext"), (59, "SegmentationClassContext59")):
        for split in ("train", "val"):
            (ctx / f"cpp_pairs_context{n}_{split}.txt").write_text(
                f"JPEGImages/x.jpg {labels}/x.png\n"
            )
    names = register_pascal_context(str(tmp_path))
    assert sorted(names) == sorted(
        f"pascal_context{n}_sem_seg_{s}" for n in (60, 59) for s in ("train", "val")
    )
    assert CONTEXT60_CLASSES == ["background", *CONTEXT59_CLASSES] and len(CONTEXT60_CLASSES) == 60
    for n, classes, label_dir, values in (
        (60, CONTEXT60_CLASSES, "SegmentationClassContext", {0, 59}),
        (59, CONTEXT59_CLASSES, "SegmentationClassContext59", {58, 255}),
    ):
        meta = MetadataCatalog.get(f"pascal_context{n}_sem_seg_val")
        assert meta.stuff_classes == classes and meta.ignore_label == 255
        (record,) = DatasetCatalog.get(f"pascal_context{n}_sem_seg_train")
        assert record["sem_seg_file_name"] == str(ctx / label_dir / "x.png")
        assert set(np.unique(read_label(record["sem_seg_file_name"]))) == values
