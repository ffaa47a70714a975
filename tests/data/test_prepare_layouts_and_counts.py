"""Preparation that cannot half-succeed (issue #24): the prepare scripts find their inputs in the
layouts users have (the official archives' folders, MMSegmentation's tree, pre-made aug lists in
MMSegmentation's and DeepLab's formats), refuse VOC without SBD naming where they looked (unless
``--no-aug``), end with the image count of every split next to the full release's (a warning
naming both numbers, an error with ``--strict`` that writes no pairs file), and
``datasets/check_datasets.py`` checks every prepared dataset in one command."""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("detectron2", reason="detectron2 is not installed")

from official_releases import (  # noqa: E402  tests/official_releases.py (a helper)
    AUG_IDS,
    DETAIL_TRAIN,
    SBD_LAYOUTS,
    VOC_TRAIN,
    VOC_VAL,
    write_context_release,
    write_fake_mapillary,
    write_lines,
    write_nyu_release,
    write_premade_aug,
    write_voc_release,
)

VOC = "VOCdevkit/VOC2012"


def pairs(path):
    return [line.split() for line in path.read_text().splitlines()]


def png(path):
    return np.asarray(Image.open(path))


def expected_aug_pairs():
    """train_aug pairs written independently: VOC train ids keep ``SegmentationClass/``, the
    others ``SegmentationClassAug/``."""
    folder = {i: "SegmentationClass" if i in VOC_TRAIN else "SegmentationClassAug" for i in AUG_IDS}
    return [[f"JPEGImages/{i}.jpg", f"{folder[i]}/{i}.png"] for i in AUG_IDS]


def load_pairs_labels(voc, lines):
    """``{id: label array}`` of a pairs file's lines."""
    return {os.path.basename(img)[:-4]: png(voc / lab) for img, lab in lines}


# ----------------------------------------------------------------------------- VOC layouts


@pytest.mark.parametrize("layout", sorted(SBD_LAYOUTS))
def test_voc_finds_sbd_in_the_official_and_mmsegmentation_layouts(
    datasets_script, tmp_path, layout
):
    root, labels = write_voc_release(tmp_path, sbd=layout)
    datasets_script("prepare_pascal_voc").prepare_pascal_voc(str(root))
    voc = root / VOC
    assert (voc / "ImageSets/Segmentation/train_aug.txt").read_text().split() == AUG_IDS
    lines = pairs(voc / "cpp_pairs_train_aug.txt")
    assert lines == expected_aug_pairs()
    for i, label in load_pairs_labels(voc, lines).items():
        want = labels["voc"][i] if i in VOC_TRAIN else labels["sbd"][i]
        assert np.array_equal(label, want), i
    assert pairs(voc / "cpp_pairs_val.txt") == [
        [f"JPEGImages/{i}.jpg", f"SegmentationClass/{i}.png"] for i in VOC_VAL
    ]


@pytest.mark.parametrize("fmt", ["mmseg", "deeplab"])
def test_voc_reads_a_premade_aug_set(datasets_script, tmp_path, fmt):
    root, labels = write_premade_aug(tmp_path, fmt)
    written = datasets_script("prepare_pascal_voc").prepare_pascal_voc(str(root))
    voc = root / VOC
    lines = pairs(voc / "cpp_pairs_train_aug.txt")
    if fmt == "deeplab":  # the list names the labels: taken as they are
        assert lines == [[f"JPEGImages/{i}.jpg", f"SegmentationClassAug/{i}.png"] for i in AUG_IDS]
        assert written[str(voc / "cpp_pairs_train_aug.txt")].endswith(
            "ImageSets/SegmentationAug/train_aug.txt"
        )
    else:
        assert lines == expected_aug_pairs()
        assert written[str(voc / "cpp_pairs_train_aug.txt")].endswith("trainaug.txt")
    for i, label in load_pairs_labels(voc, lines).items():  # VOC train ids: VOC's own labels
        want = labels["voc"][i] if i in VOC_TRAIN else labels["sbd"][i]
        assert np.array_equal(label, want), i


def test_voc_mmsegmentation_aug_txt_alone_gets_voc_train_added(datasets_script, tmp_path):
    root, _ = write_premade_aug(tmp_path, "mmseg")
    voc = root / VOC
    (voc / "ImageSets/Segmentation/trainaug.txt").unlink()
    written = datasets_script("prepare_pascal_voc").prepare_pascal_voc(str(root))
    assert pairs(voc / "cpp_pairs_train_aug.txt") == expected_aug_pairs()
    assert written[str(voc / "cpp_pairs_train_aug.txt")].endswith("Segmentation/aug.txt")


def test_voc_deeplab_pairs_in_the_segmentation_folder(datasets_script, tmp_path):
    root, _ = write_premade_aug(tmp_path, "deeplab")
    voc = root / VOC
    shutil.move(
        voc / "ImageSets/SegmentationAug/train_aug.txt",
        voc / "ImageSets/Segmentation/train_aug.txt",
    )
    datasets_script("prepare_pascal_voc").prepare_pascal_voc(str(root))
    assert [p[0] for p in pairs(voc / "cpp_pairs_train_aug.txt")] == [
        f"JPEGImages/{i}.jpg" for i in AUG_IDS
    ]


def test_voc_without_sbd_is_refused_naming_where_it_looked(datasets_script, tmp_path, capsys):
    root, _ = write_voc_release(tmp_path, sbd=None)
    mod = datasets_script("prepare_pascal_voc")
    with pytest.raises(FileNotFoundError) as e:
        mod.prepare_pascal_voc(str(root))
    message = str(e.value)
    for rel in SBD_LAYOUTS.values():
        assert str(root / rel) in message
    for rel in ("ImageSets/Segmentation/trainaug.txt", "ImageSets/Segmentation/aug.txt",
                "ImageSets/SegmentationAug/train_aug.txt"):  # fmt: skip
        assert str(root / VOC / rel) in message
    assert "--no-aug" in message and "benchmark.tgz" in message
    assert mod.main(["--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no SBD release") and str(root / SBD_LAYOUTS["mmseg"]) in err
    assert not (root / VOC / "cpp_pairs_train.txt").exists()  # nothing registered half-written


def test_voc_no_aug_prepares_train_and_val_only(datasets_script, tmp_path, capsys):
    root, _ = write_voc_release(tmp_path, sbd=None)
    assert datasets_script("prepare_pascal_voc").main(["--root", str(root), "--no-aug"]) == 0
    voc = root / VOC
    assert (voc / "cpp_pairs_train.txt").is_file() and (voc / "cpp_pairs_val.txt").is_file()
    assert not (voc / "cpp_pairs_train_aug.txt").exists()
    out = capsys.readouterr().out
    assert "train_aug" not in out.split("images per split")[1]


def test_voc_premade_list_with_a_val_id_is_refused(datasets_script, tmp_path):
    root, _ = write_premade_aug(tmp_path, "mmseg")
    path = root / VOC / "ImageSets/Segmentation/trainaug.txt"
    write_lines(path, [*AUG_IDS, VOC_VAL[0]])
    with pytest.raises(ValueError) as e:
        datasets_script("prepare_pascal_voc").prepare_pascal_voc(str(root))
    assert str(path) in str(e.value) and VOC_VAL[0] in str(e.value)


def test_voc_premade_list_with_a_missing_label_is_refused(datasets_script, tmp_path):
    root, _ = write_premade_aug(tmp_path, "deeplab")
    label = root / VOC / "SegmentationClassAug/2008_000011.png"
    label.unlink()
    with pytest.raises(FileNotFoundError) as e:
        datasets_script("prepare_pascal_voc").prepare_pascal_voc(str(root))
    assert str(label) in str(e.value) and "1 listed file(s) do not exist" in str(e.value)
    assert not (root / VOC / "cpp_pairs_train_aug.txt").exists()


def test_voc_list_line_of_three_words_is_refused(datasets_script, tmp_path):
    root, _ = write_premade_aug(tmp_path, "deeplab")
    path = root / VOC / "ImageSets/SegmentationAug/train_aug.txt"
    path.write_text("/JPEGImages/a.jpg /SegmentationClassAug/a.png extra\n")
    with pytest.raises(ValueError) as e:
        datasets_script("prepare_pascal_voc").prepare_pascal_voc(str(root))
    assert f"{path} line 1" in str(e.value)


# ----------------------------------------------------------------------------- counts


def table_row(out, split):
    """The words of the count table's row of ``split``."""
    (row,) = [line.split() for line in out.splitlines() if line.split()[:1] == [split]]
    return row


def test_voc_cli_prints_counts_next_to_the_expected_and_warns(datasets_script, tmp_path, capsys):
    root, _ = write_voc_release(tmp_path)
    assert datasets_script("prepare_pascal_voc").main(["--root", str(root)]) == 0
    captured = capsys.readouterr()
    out_lines = captured.out.splitlines()
    table_at = next(n for n, line in enumerate(out_lines) if "images per split" in line)
    assert all(" <- " in line for line in out_lines[:table_at])  # the table ends the output
    expected = {"train": (2, "1,464"), "val": (1, "1,449"), "train_aug": (4, "10,582")}
    for split, (n, want) in expected.items():
        assert table_row(captured.out, split)[1:3] == [str(n), want]
        assert table_row(captured.out, split)[-1] == "MISMATCH"
        assert f"warning: voc2012 {split}: {n} images written, {want} " in captured.err


def test_voc_strict_mismatch_is_an_error_and_writes_no_pairs(datasets_script, tmp_path, capsys):
    root, _ = write_voc_release(tmp_path)
    assert datasets_script("prepare_pascal_voc").main(["--root", str(root), "--strict"]) == 2
    err = capsys.readouterr().err
    assert "error: voc2012 train: 2 images written, 1,464 (VOC 2012) expected" in err
    assert "voc2012 train_aug: 4 images written, 10,582" in err
    voc = root / VOC
    assert not list(voc.glob("cpp_pairs_*.txt"))
    assert not (voc / "SegmentationClassAug").exists()  # refused before the conversion


def test_split_size_check_passes_the_full_release_sizes(capsys):
    """The count check itself: the full releases' sizes are ok, one image fewer is named."""
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "datasets"))
    try:
        from _split_sizes import SplitSizeError, SplitSizeWarning, check_split_sizes
    finally:
        sys.path.pop(0)
    full = {"voc2012": {"train": 1464, "val": 1449, "train_aug": 10582},
            "nyuv2": {"train": 795, "test": 654},
            "mapillary_vistas": {"training": 18000, "validation": 2000}}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for dataset, counts in full.items():
            assert check_split_sizes(dataset, counts) == []
        for source, sizes in (("Detail API", (4996, 5104)), ("VOC 2010 Main", (4998, 5105))):
            counts = dict(zip(("train", "val"), sizes))
            assert check_split_sizes("pascal_context", counts, source) == []
            assert check_split_sizes("pascal_context", counts) == []  # lists of unknown source
    with pytest.warns(SplitSizeWarning, match="nyuv2 train: 794 images written, 795"):
        check_split_sizes("nyuv2", {"train": 794})
    with pytest.raises(SplitSizeError, match="4,996 images written, 4,998 \\(VOC 2010 Main\\)"):
        check_split_sizes("pascal_context", {"train": 4996}, "VOC 2010 Main", strict=True)
    assert "MISMATCH" in capsys.readouterr().out


def test_context_counts_follow_the_split_source(datasets_script, tmp_path, capsys):
    root = write_context_release(tmp_path, detail_json=True)[0]
    mod = datasets_script("prepare_pascal_context")
    assert mod.main(["--root", str(root)]) == 0
    captured = capsys.readouterr()
    assert "pascal_context (Detail API)" in captured.out
    assert table_row(captured.out, "train")[1:3] == [str(len(DETAIL_TRAIN)), "4,996"]
    assert "warning: pascal_context train: 1 images written, 4,996 (Detail API)" in captured.err
    (root / "VOCdevkit/VOC2010/trainval_merged.json").unlink()
    for f in (root / "VOCdevkit/VOC2010/ImageSets/SegmentationContext").iterdir():
        f.unlink()
    assert mod.main(["--root", str(root)]) == 0
    captured = capsys.readouterr()
    assert table_row(captured.out, "val")[1:3] == ["1", "5,105"]
    assert "warning: " in captured.err and "ImageSets/Main lists" in captured.err


def test_context_without_labels_is_refused_naming_where_it_looked(datasets_script, tmp_path):
    root = write_context_release(tmp_path, detail_json=True)[0]
    ctx = root / "VOCdevkit/VOC2010"
    shutil.rmtree(ctx / "trainval")  # json alone: lists, but no labels
    with pytest.raises(FileNotFoundError) as e:
        datasets_script("prepare_pascal_context").prepare_pascal_context(str(root))
    for where in (ctx / "trainval", ctx / "SegmentationClassContext", ctx / "labels.txt"):
        assert str(where) in str(e.value)
    assert not list(ctx.glob("cpp_pairs_*"))


def test_nyuv2_and_mapillary_print_counts_and_refuse_under_strict(
    datasets_script, tmp_path, capsys
):
    pytest.importorskip("h5py")
    root = write_nyu_release(tmp_path)[0]
    nyu = datasets_script("prepare_nyuv2")
    assert nyu.main(["--root", str(root), "--strict"]) == 2
    assert "nyuv2 train: 3 images written, 795 (splits.mat) expected" in capsys.readouterr().err
    assert not list((root / "nyuv2").glob("cpp_pairs_*"))
    assert nyu.main(["--root", str(root)]) == 0
    assert table_row(capsys.readouterr().out, "test")[1:3] == ["2", "654"]
    write_fake_mapillary(root / "mapillary_vistas", n=3)
    mapillary = datasets_script("prepare_mapillary_vistas")
    assert mapillary.main(["--root", str(root), "--strict"]) == 2
    assert "mapillary_vistas training: 3 images written, 18,000" in capsys.readouterr().err
    assert not (root / "mapillary_vistas/training/labels_cityscapes19_onrails_ignored").exists()
    assert mapillary.main(["--root", str(root)]) == 0
    assert table_row(capsys.readouterr().out, "validation")[1:3] == ["3", "2,000"]


# ----------------------------------------------------------------------------- check_datasets


@pytest.fixture
def prepared(datasets_script, tmp_path):
    """VOC + SBD, Pascal Context and Mapillary, prepared (warnings of the tiny sizes ignored)."""
    write_voc_release(tmp_path)
    write_context_release(tmp_path)
    write_fake_mapillary(tmp_path / "mapillary_vistas", n=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        datasets_script("prepare_pascal_voc").prepare_pascal_voc(str(tmp_path))
        datasets_script("prepare_pascal_context").prepare_pascal_context(str(tmp_path))
        datasets_script("prepare_mapillary_vistas").prepare_mapillary_vistas(
            str(tmp_path), progress=False
        )
    return tmp_path


def test_check_datasets_counts_every_prepared_dataset(datasets_script, prepared, capsys):
    check = datasets_script("check_datasets")
    assert check.main(["--root", str(prepared)]) == 0
    out, err = capsys.readouterr()
    section = out.split("== voc2012")[1].split("==")[0]
    assert table_row(section, "train_aug")[1:3] == ["4", "10,582"]
    section = out.split("== pascal_context")[1].split("==")[0]
    assert table_row(section, "train")[1:5] == ["2", "4,996", "(Detail", "API)"]
    assert "4,998 (VOC 2010 Main)" in section
    assert table_row(out.split("== mapillary_vistas")[1], "training")[1] == "2"
    assert "not prepared" in out.split("== nyuv2")[1].split("==")[0]
    assert "warning: voc2012 train_aug: 4 images, 10,582 expected" in err
    assert check.main(["--root", str(prepared), "--strict"]) == 1
    assert "error: voc2012 val: 1 images, 1,449 expected" in capsys.readouterr().err
    assert check.main(["--root", str(prepared), "nyuv2"]) == 1  # named, not prepared
    assert "error: nyuv2 is not prepared" in capsys.readouterr().err


def test_check_datasets_names_a_missing_file(datasets_script, prepared, capsys):
    label = prepared / VOC / "SegmentationClassAug/2008_000010.png"
    label.unlink()
    check = datasets_script("check_datasets")
    assert check.main(["--root", str(prepared), "voc2012"]) == 1
    err = capsys.readouterr().err
    assert (
        f"voc2012 train_aug: 1 file(s) named by {prepared / VOC / 'cpp_pairs_train_aug.txt'}" in err
    )
    assert str(label) in err


def test_check_datasets_print_checksums(datasets_script, tmp_path, capsys):
    check = datasets_script("check_datasets")
    data = bytes(range(256)) * 5000
    unknown = tmp_path / "some_archive.zip"
    unknown.write_bytes(data)
    assert check.main(["--print-checksums", str(unknown)]) == 0
    out = capsys.readouterr().out
    assert f"md5    {hashlib.md5(data).hexdigest()}  (no published md5 known)" in out
    assert f"sha256 {hashlib.sha256(data).hexdigest()}" in out and f"{len(data):,} bytes" in out
    fake_sbd = tmp_path / "benchmark.tgz"  # torchvision's md5 of the real one is not this file's
    fake_sbd.write_bytes(data)
    assert check.main(["--print-checksums", str(fake_sbd)]) == 1
    assert "md5 DIFFERS from the published 82b4d87ceb2ed10f6038a1cba92111cb" in (
        capsys.readouterr().out
    )
