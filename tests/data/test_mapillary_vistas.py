"""Mapillary Vistas v1.2 on a tiny fake folder (``fake_mapillary`` in tests/conftest.py): the
registration (``seethroughnet.data.datasets.mapillary_vistas``), the native 65-class loading, the
Cityscapes-19 labels that ``datasets/prepare_mapillary_vistas.py`` writes for both variants
(checked pixel by pixel against an expectation computed here from the mapping tables; the default
sends ``object--vehicle--on-rails`` to ignore, the ``_onrails_train`` switch to train), and the
refusals, each naming the file."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("detectron2", reason="detectron2 is not installed")
from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402

from seethroughnet.data.datasets import DatasetError, register_all  # noqa: E402
from seethroughnet.data.datasets.cityscapes import CITYSCAPES_STUFF_CLASSES  # noqa: E402
from seethroughnet.data.datasets.mapillary_vistas import (  # noqa: E402
    MAPILLARY_SPLITS,
    MAPILLARY_TO_CITYSCAPES,
    MAPILLARY_TO_CITYSCAPES_ONRAILS_TRAIN,
    MAPILLARY_V12_LABELS,
    register_mapillary_vistas,
)

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("isolated_validation_cache", "restore_default_registrations")

NATIVE = ("mapillary_vistas_sem_seg_train", "mapillary_vistas_sem_seg_val")
MAPPED = (  # the default: on-rails -> ignore
    "mapillary_vistas_cityscapes19_sem_seg_train",
    "mapillary_vistas_cityscapes19_sem_seg_val",
)
ONRAILS_TRAIN = (  # the switch: on-rails -> train
    "mapillary_vistas_cityscapes19_onrails_train_sem_seg_train",
    "mapillary_vistas_cityscapes19_onrails_train_sem_seg_val",
)
#: label folder -> the name table its labels must follow
FOLDERS = {
    "labels_cityscapes19_onrails_ignored": MAPILLARY_TO_CITYSCAPES,
    "labels_cityscapes19_onrails_train": MAPILLARY_TO_CITYSCAPES_ONRAILS_TRAIN,
}
ON_RAILS = MAPILLARY_V12_LABELS.index("object--vehicle--on-rails")  # 58
TRAIN = CITYSCAPES_STUFF_CLASSES.index("train")  # 16


def expected_cityscapes19(native: np.ndarray, table) -> np.ndarray:
    """The mapped label, pixel by pixel, straight from the name table."""
    out = np.full(native.shape, 255, np.uint8)
    for y, x in np.ndindex(native.shape):
        cls = table.get(MAPILLARY_V12_LABELS[native[y, x]])
        if cls is not None:
            out[y, x] = CITYSCAPES_STUFF_CLASSES.index(cls)
    return out


def add_on_rails(label_dir: Path) -> None:
    """Paint an ``object--vehicle--on-rails`` block into every native label of ``label_dir``
    (the fake labels have none), keeping the file's mode and palette."""
    for fn in sorted(os.listdir(label_dir)):
        im = Image.open(label_dir / fn)
        a = np.asarray(im).copy()
        a[16:24, 40:56] = ON_RAILS
        new = Image.fromarray(a)
        if im.mode == "P":
            new = new.convert("P")  # L -> P keeps the indices
            new.putpalette(im.getpalette())
        new.save(label_dir / fn)


def test_label_list_and_mapping_table():
    assert len(MAPILLARY_V12_LABELS) == 66 == len(set(MAPILLARY_V12_LABELS))
    assert MAPILLARY_V12_LABELS[65] == "void--unlabeled"
    assert set(MAPILLARY_TO_CITYSCAPES_ONRAILS_TRAIN) <= set(MAPILLARY_V12_LABELS)
    assert MAPILLARY_TO_CITYSCAPES["construction--flat--road"] == "road"
    # the default (paper: its Mapillary data "had no train class label"): on-rails is ignored,
    # so no Mapillary label gives train; the 18 other classes are covered
    assert "object--vehicle--on-rails" not in MAPILLARY_TO_CITYSCAPES
    assert set(MAPILLARY_TO_CITYSCAPES.values()) == set(CITYSCAPES_STUFF_CLASSES) - {"train"}
    # the switch differs in on-rails -> train only, and covers all 19
    assert MAPILLARY_TO_CITYSCAPES_ONRAILS_TRAIN == {
        **MAPILLARY_TO_CITYSCAPES,
        "object--vehicle--on-rails": "train",
    }
    assert set(MAPILLARY_TO_CITYSCAPES_ONRAILS_TRAIN.values()) == set(CITYSCAPES_STUFF_CLASSES)


def test_registration_touches_no_files_and_sets_metadata(tmp_path):
    names = register_mapillary_vistas(str(tmp_path / "absent"))
    assert names == list(MAPILLARY_SPLITS)
    assert set(names) <= set(register_all())  # part of the package's registration
    names = register_mapillary_vistas(str(tmp_path / "absent"))  # idempotent
    assert set(NATIVE + MAPPED + ONRAILS_TRAIN) == set(names)
    native, mapped = MetadataCatalog.get(NATIVE[0]), MetadataCatalog.get(MAPPED[1])
    switch = MetadataCatalog.get(ONRAILS_TRAIN[0])
    assert mapped.cityscapes19_mapping == MAPILLARY_TO_CITYSCAPES
    assert switch.cityscapes19_mapping == MAPILLARY_TO_CITYSCAPES_ONRAILS_TRAIN
    assert mapped.sem_seg_root.endswith("validation/labels_cityscapes19_onrails_ignored")
    assert switch.sem_seg_root.endswith("training/labels_cityscapes19_onrails_train")
    assert switch.stuff_classes == CITYSCAPES_STUFF_CLASSES and switch.ignore_label == 255
    assert len(native.stuff_classes) == 65 and native.ignore_label == 65
    assert native.stuff_classes[13] == "construction--flat--road"
    assert len(native.stuff_colors) == 65
    assert mapped.stuff_classes == CITYSCAPES_STUFF_CLASSES and mapped.ignore_label == 255
    assert mapped.evaluator_type == native.evaluator_type == "sem_seg"
    with pytest.raises(DatasetError, match="absent does not exist"):
        DatasetCatalog.get(NATIVE[0])


@pytest.mark.parametrize("layout", ["v1.1", "v1.2"])
def test_native_loading(fake_mapillary, layout):
    root = fake_mapillary(layout=layout)
    register_mapillary_vistas(str(root))
    train = DatasetCatalog.get(NATIVE[0])
    assert [d["image_id"] for d in train] == ["img0000", "img0001"]
    assert len(DatasetCatalog.get(NATIVE[1])) == 2
    d = train[0]
    assert (d["height"], d["width"]) == (32, 64)
    sub = "v1.2/labels" if layout == "v1.2" else "labels"
    assert d["sem_seg_file_name"] == os.path.join(str(root), "training", sub, "img0000.png")
    assert d["file_name"] == os.path.join(str(root), "training", "images", "img0000.jpg")


@pytest.mark.parametrize("layout", ["v1.1", "v1.2"])
def test_prepare_writes_exact_cityscapes19_labels(fake_mapillary, datasets_script, layout):
    root = fake_mapillary(layout=layout)
    sub = "v1.2/labels" if layout == "v1.2" else "labels"
    for split in ("training", "validation"):
        add_on_rails(root / split / sub)
    prep = datasets_script("prepare_mapillary_vistas")
    written = prep.prepare_mapillary_vistas(str(root.parent), progress=False)
    assert set(written) == {
        str(root / split / folder) for split in ("training", "validation") for folder in FOLDERS
    }
    for split in ("training", "validation"):
        for fn in os.listdir(root / split / sub):
            if layout == "v1.2":
                assert Image.open(root / split / sub / fn).mode == "P"
            native = np.asarray(Image.open(root / split / sub / fn))
            assert (native == ON_RAILS).sum() == 8 * 16
            for folder, table in FOLDERS.items():
                mapped = np.asarray(Image.open(root / split / folder / fn))
                assert mapped.dtype == np.uint8 and mapped.shape == native.shape
                np.testing.assert_array_equal(mapped, expected_cityscapes19(native, table))
            default = np.asarray(
                Image.open(root / split / "labels_cityscapes19_onrails_ignored" / fn)
            )
            switch = np.asarray(Image.open(root / split / "labels_cityscapes19_onrails_train" / fn))
            # the default ignores on-rails (no train pixel at all), the switch makes it train,
            # and the two agree everywhere else
            assert (default[native == ON_RAILS] == 255).all() and TRAIN not in default
            assert (switch[native == ON_RAILS] == TRAIN).all()
            np.testing.assert_array_equal(default[native != ON_RAILS], switch[native != ON_RAILS])
    assert {0, 1, 10, 13, 255} <= set(np.unique(default))  # road, sidewalk, sky, car, ignore

    register_mapillary_vistas(str(root))
    for name, folder in ((MAPPED[0], "onrails_ignored"), (ONRAILS_TRAIN[0], "onrails_train")):
        data = DatasetCatalog.get(name)
        assert data[1]["sem_seg_file_name"] == str(
            root / f"training/labels_cityscapes19_{folder}/img0001.png"
        )
        assert data[1]["file_name"] == str(root / "training/images/img0001.jpg")

    # idempotent: a second run rewrites nothing; a newer source is converted again
    out = root / "validation/labels_cityscapes19_onrails_ignored/img0010.png"
    stale = root / "validation/labels_cityscapes19_onrails_train/img0011.png"
    os.utime(root / "validation" / sub / "img0010.png", (1e9, 1e9))
    os.utime(out, (1e9, 1e9 + 100))
    os.utime(root / "validation" / sub / "img0011.png", (1e9, 1e9))
    os.utime(stale, (1e9, 1e9 - 100))
    prep.prepare_mapillary_vistas(str(root.parent), progress=False)
    assert os.path.getmtime(out) == 1e9 + 100
    assert os.path.getmtime(stale) > 1e9
    for folder in FOLDERS:  # no temporary files
        assert not [f for f in os.listdir(root / "validation" / folder) if f.startswith(".")]


def test_prepare_command_line(fake_mapillary, datasets_script, tmp_path, capsys):
    main = datasets_script("prepare_mapillary_vistas").main
    assert main(["--root", str(tmp_path / "nothing")]) == 2
    assert "no Mapillary Vistas label folder" in capsys.readouterr().err
    root = fake_mapillary()
    assert main(["--root", str(root.parent)]) == 0
    out = capsys.readouterr().out
    assert "labels_cityscapes19_onrails_ignored <- " in out
    assert "labels_cityscapes19_onrails_train <- " in out
    (root / "config.json").unlink()
    assert main(["--root", str(root.parent)]) == 2
    assert f"no label config file {root}" in capsys.readouterr().err


def test_mapped_split_without_prepared_labels_names_the_script(fake_mapillary):
    root = fake_mapillary()
    (root / "training/labels_cityscapes19").mkdir()  # an earlier version's folder is not read
    register_mapillary_vistas(str(root))
    with pytest.raises(DatasetError, match="prepare_mapillary_vistas.py") as e:
        DatasetCatalog.get(MAPPED[0])
    assert str(root / "training/labels_cityscapes19_onrails_ignored") in str(e.value)
    with pytest.raises(DatasetError, match="prepare_mapillary_vistas.py") as e:
        DatasetCatalog.get(ONRAILS_TRAIN[1])
    assert str(root / "validation/labels_cityscapes19_onrails_train") in str(e.value)


def _rewrite_config(root, labels):
    (root / "config.json").write_text(json.dumps({"labels": labels}))


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("missing", "no label config file {root}/config_v1.2.json or {root}/config.json"),
        ("65 labels", "config file {root}/config.json lists 65 labels, not the 66"),
        ("renamed", "config file {root}/config.json names label 13 'road'"),
        ("not json", "config file {root}/config.json is not readable JSON"),
        ("no labels", "config file {root}/config.json has no 'labels' list"),
    ],
)
def test_bad_config_is_refused_naming_it(fake_mapillary, breakage, message):
    root = fake_mapillary()
    labels = json.loads((root / "config.json").read_text())["labels"]
    if breakage == "missing":
        (root / "config.json").unlink()
    elif breakage == "65 labels":
        _rewrite_config(root, labels[:65])
    elif breakage == "renamed":
        labels[13]["name"] = "road"
        _rewrite_config(root, labels)
    elif breakage == "not json":
        (root / "config.json").write_text("{labels: ")
    else:
        (root / "config.json").write_text(json.dumps({"classes": labels}))
    register_mapillary_vistas(str(root))
    for name in (NATIVE[0], MAPPED[1]):
        with pytest.raises(DatasetError) as e:
            DatasetCatalog.get(name)
        assert message.format(root=root) in str(e.value)


def test_label_value_above_65_is_refused_naming_the_file(fake_mapillary, datasets_script):
    root = fake_mapillary()
    bad = root / "training/labels/img0001.png"
    lab = np.asarray(Image.open(bad)).copy()
    lab[0, 0] = 66
    Image.fromarray(lab).save(bad)
    register_mapillary_vistas(str(root))
    with pytest.raises(DatasetError, match="label values outside the label table") as e:
        DatasetCatalog.get(NATIVE[0])
    assert str(bad) in str(e.value) and "66" in str(e.value)
    prep = datasets_script("prepare_mapillary_vistas")
    with pytest.raises(DatasetError) as e:
        prep.prepare_mapillary_vistas(str(root.parent), progress=False)
    assert str(bad) in str(e.value) and "66" in str(e.value)


def test_size_mismatch_and_orphans_are_refused_naming_the_file(fake_mapillary, datasets_script):
    root = fake_mapillary()
    datasets_script("prepare_mapillary_vistas").prepare_mapillary_vistas(
        str(root.parent), progress=False
    )
    bad = root / "validation/labels/img0010.png"
    Image.fromarray(np.zeros((16, 64), np.uint8)).save(bad)
    register_mapillary_vistas(str(root))
    with pytest.raises(DatasetError, match="image and label sizes disagree") as e:
        DatasetCatalog.get(NATIVE[1])
    assert str(bad) in str(e.value) and "64x16" in str(e.value)
    orphan = root / "training/labels_cityscapes19_onrails_train/img0009.png"
    Image.fromarray(np.zeros((32, 64), np.uint8)).save(orphan)
    with pytest.raises(DatasetError, match="do not pair up") as e:
        DatasetCatalog.get(ONRAILS_TRAIN[0])
    assert str(orphan) in str(e.value)


def test_readme_mapping_table_is_the_modules():
    """datasets/README.md lists the default mapping (the same one as the code, 31 labels ignored,
    on-rails among them) and names the switch's datasets and its one difference."""
    readme = (REPO / "datasets" / "README.md").read_text()
    section = readme[readme.index("**Mapillary -> Cityscapes mapping.**") :]
    section = section[: section.index("\n## ")] if "\n## " in section else section
    table = {}
    for line in section.splitlines():
        m = re.match(r"\| ([a-z ]+) \((\d+)\) \| (.+) \|$", line)
        if m:
            assert CITYSCAPES_STUFF_CLASSES[int(m[2])] == m[1]
            table.update({name: m[1] for name in re.findall(r"`([a-z-]+)`", m[3])})
    assert table == MAPILLARY_TO_CITYSCAPES
    assert len(MAPILLARY_V12_LABELS) - len(table) == 31
    assert "`mapillary_vistas_cityscapes19_onrails_train_sem_seg_{train,val}`" in section
    assert "had no train class label" in " ".join(section.split())
