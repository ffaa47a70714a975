"""``datasets/prepare_{pascal_voc,pascal_context,nyuv2}.py`` on tiny hand-made releases in the
official formats (VOC 2012 + SBD ``.mat``, Pascal Context ``trainval/*.mat`` + ``labels.txt``,
NYUv2 ``nyu_depth_v2_labeled.mat`` (HDF5) + ``splits.mat`` + ``classMapping40.mat``): exact label
values, split lists, idempotent re-runs, and one refusal per wrong layout naming the file."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.io as sio
from PIL import Image

pytest.importorskip("detectron2", reason="detectron2 is not installed")
from seethroughnet.data.datasets.pascal_context import CONTEXT59_CLASSES  # noqa: E402

from official_releases import (  # noqa: E402  tests/official_releases.py (a helper)
    CTX_TRAIN,
    CTX_VAL,
    DETAIL_TRAIN,
    DETAIL_VAL,
    N_FRAMES,
    PIXEL,
    SBD_TRAIN,
    SBD_VAL,
    TEST_FRAMES,
    TRAIN_FRAMES,
    VOC_TRAIN,
    VOC_VAL,
    H,
    W,
    write_context_release,
    write_detail_json,
    write_lines,
    write_nyu_release,
    write_voc_png,
    write_voc_release,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def voc_release(tmp_path):
    """:func:`official_releases.write_voc_release` under ``tmp_path``."""
    return write_voc_release(tmp_path)


@pytest.fixture
def context_release(tmp_path):
    """:func:`official_releases.write_context_release` under ``tmp_path``."""
    return write_context_release(tmp_path)


@pytest.fixture
def nyu_release(tmp_path):
    """:func:`official_releases.write_nyu_release` under ``tmp_path`` (h5py needed)."""
    pytest.importorskip("h5py")
    return write_nyu_release(tmp_path)


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def assert_refused(prepare, root, breaks, error, words):
    """``breaks(root)`` spoils one release file; ``prepare(root)`` must then raise ``error`` whose
    message names that file and says ``words``."""
    path = breaks(root)
    with pytest.raises(error) as e:
        prepare(str(root))
    assert str(path) in str(e.value) and words in str(e.value)


def mat_at(rel, variables):
    """A breaker: ``rel`` (under the datasets root) rewritten as a v5 .mat of ``variables``."""

    def breaks(root):
        sio.savemat(root / rel, variables)
        return root / rel

    return breaks


def removed(rel):
    """A breaker: the release file ``rel`` deleted."""

    def breaks(root):
        (root / rel).unlink()
        return root / rel

    return breaks


# --------------------------------------------------------------------------- VOC 2012 + SBD

SBD = "benchmark_RELEASE/dataset"
SBDMAT = f"{SBD}/cls/2008_000010.mat"
VOC_LISTS = "VOCdevkit/VOC2012/ImageSets/Segmentation"


def gtcls(seg):
    """The variables of an SBD ``cls/<id>.mat``: struct ``GTcls`` with field ``Segmentation``."""
    return {"GTcls": {"Segmentation": seg}}


def test_voc_sbd_aug_list_and_labels(datasets_script, voc_release):
    root, labels = voc_release
    mod = datasets_script("prepare_pascal_voc")
    written = mod.prepare_pascal_voc(str(root))
    voc = root / "VOCdevkit/VOC2012"
    expected_ids = ["2007_000001", "2007_000002", "2008_000010", "2008_000011"]  # 000003: VOC val
    assert (voc / "ImageSets/Segmentation/train_aug.txt").read_text().split() == expected_ids
    assert mod.aug_ids(SBD_TRAIN, SBD_VAL, VOC_TRAIN, VOC_VAL) == expected_ids
    for i in expected_ids:  # VOC train ids keep the VOC label (with its 255), others SBD's
        want = labels["voc"][i] if i in VOC_TRAIN else labels["sbd"][i]
        out = Image.open(voc / f"SegmentationClassAug/{i}.png")
        assert out.mode == "L" and np.array_equal(np.asarray(out), want), i
    assert (voc / "JPEGImages/2008_000011.jpg").is_file()  # copied from SBD img/
    assert not (voc / "SegmentationClassAug/2007_000003.png").exists()
    assert (voc / "cpp_pairs_train_aug.txt").read_text().splitlines()[-1] == (
        "JPEGImages/2008_000011.jpg SegmentationClassAug/2008_000011.png"
    )
    assert str(voc / "SegmentationClassAug") in written
    assert {os.path.basename(p) for p in written if p.endswith(".txt")} >= {
        "train_aug.txt",
        "cpp_pairs_train.txt",
        "cpp_pairs_val.txt",
        "cpp_pairs_train_aug.txt",
    }


def test_voc_rerun_keeps_converted_files_unless_overwrite(datasets_script, voc_release):
    root, labels = voc_release
    mod = datasets_script("prepare_pascal_voc")
    mod.prepare_pascal_voc(str(root))
    out = root / "VOCdevkit/VOC2012/SegmentationClassAug/2008_000010.png"
    Image.fromarray(np.zeros((H, W), np.uint8)).save(out)
    mod.prepare_pascal_voc(str(root))
    assert not png(out).any()
    mod.prepare_pascal_voc(str(root), overwrite=True)
    assert np.array_equal(png(out), labels["sbd"]["2008_000010"])
    assert not [f for f in os.listdir(out.parent) if f.startswith(".")]  # no temporary left


def test_voc_overwrite_replaces_a_train_aug_list_with_other_ids(datasets_script, voc_release):
    root, _ = voc_release
    path = _train_aug_other_ids(root)
    datasets_script("prepare_pascal_voc").prepare_pascal_voc(str(root), overwrite=True)
    assert path.read_text().split() == ["2007_000001", "2007_000002", "2008_000010", "2008_000011"]


def _sbd_mat_not_matlab(root):
    path = root / SBDMAT
    path.write_bytes(b"not a mat file at all, just bytes" * 8)
    return path


def _voc_label_rgb(root):
    path = root / "VOCdevkit/VOC2012/SegmentationClass/2007_000002.png"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(path)
    return path


def _voc_label_out_of_range(root):
    path = root / "VOCdevkit/VOC2012/SegmentationClass/2007_000002.png"
    write_voc_png(path, np.full((H, W), 30, np.uint8))
    return path


def _train_aug_other_ids(root):
    path = root / "VOCdevkit/VOC2012/ImageSets/Segmentation/train_aug.txt"
    write_lines(path, ["2007_000001"])
    return path


@pytest.mark.parametrize(
    "breaks, error, words",
    [
        (
            mat_at(
                SBDMAT,
                {"GTinst": {"Segmentation": np.zeros((H, W), np.uint8)}},
            ),
            ValueError,
            "no variable GTcls",
        ),
        (
            mat_at(
                SBDMAT,
                gtcls(np.full((H, W), 21, np.uint8)),
            ),
            ValueError,
            "class ids 21 out of range",
        ),
        (
            mat_at(
                SBDMAT,
                gtcls(np.zeros((W, H), np.uint8)),
            ),
            ValueError,
            "does not belong to this image",
        ),
        (mat_at(SBDMAT, gtcls(np.zeros((2, H, W), np.uint8))), ValueError, "not an H x W map"),
        (_sbd_mat_not_matlab, ValueError, "not a readable MATLAB v5"),
        (removed(SBDMAT), FileNotFoundError, "unpack the SBD release"),
        (removed(f"{SBD}/img/2008_000011.jpg"), FileNotFoundError, "unpack the SBD release"),
        (removed(f"{SBD}/val.txt"), FileNotFoundError, "unpack the SBD release"),
        (removed(f"{VOC_LISTS}/val.txt"), FileNotFoundError, "unpack VOCtrainval"),
        (_voc_label_rgb, ValueError, "is a RGB PNG"),
        (_voc_label_out_of_range, ValueError, "class ids 30 out of range"),
        (_train_aug_other_ids, ValueError, "--overwrite"),
    ],
)
def test_voc_refuses_a_wrong_release_naming_the_file(
    datasets_script, voc_release, breaks, error, words
):
    assert_refused(
        datasets_script("prepare_pascal_voc").prepare_pascal_voc,
        voc_release[0],
        breaks,
        error,
        words,
    )


# --------------------------------------------------------------------------- Pascal Context

#: The 459-class ids of the 59 classes in MMSegmentation's converter
#: (tools/dataset_converters/pascal_context.py, ``_mapping`` without 0, sorted).
MMSEG_CONTEXT59_IDS = sorted([
    2, 259, 260, 415, 324, 9, 258, 144, 18, 19, 22, 23, 397, 25, 284, 158, 159, 416, 33, 162,
    420, 454, 295, 296, 427, 44, 45, 46, 308, 59, 440, 445, 31, 232, 65, 354, 424, 68, 326, 72,
    458, 34, 207, 80, 355, 85, 347, 220, 349, 360, 98, 187, 104, 105, 366, 189, 368, 113, 115,
])  # fmt: skip


def test_context59_names_at_mmsegmentation_ids_give_mmsegmentation_table(datasets_script):
    """labels.txt with the 59 names at the ids of the official (alphabetical) release: the table
    by name is MMSegmentation's table by sorted id."""
    assert len(MMSEG_CONTEXT59_IDS) == 59
    labels = {i: f"other{i}" for i in range(1, 460)}
    for name, i in zip(CONTEXT59_CLASSES, MMSEG_CONTEXT59_IDS):
        labels[i] = name
    table = datasets_script("prepare_pascal_context").context59_lookup(labels, "labels.txt")
    want = np.zeros(460, np.uint8)
    want[MMSEG_CONTEXT59_IDS] = np.arange(1, 60)
    assert np.array_equal(table, want)


CTXMAT = "VOCdevkit/VOC2010/trainval/2008_000003.mat"


def test_context_release_to_59_classes(datasets_script, context_release):
    root, labels, maps = context_release
    written = datasets_script("prepare_pascal_context").prepare_pascal_context(str(root))
    ctx = root / "VOCdevkit/VOC2010"
    assert (ctx / "ImageSets/SegmentationContext/train.txt").read_text().split() == CTX_TRAIN
    assert (ctx / "ImageSets/SegmentationContext/val.txt").read_text().split() == CTX_VAL
    for i, full in maps.items():
        want60 = np.zeros((H, W), np.uint8)
        want59 = np.full((H, W), 255, np.uint8)
        for (r, c), v in np.ndenumerate(full):
            name = labels.get(int(v), "").replace(" ", "")
            if name in CONTEXT59_CLASSES:
                want60[r, c] = CONTEXT59_CLASSES.index(name) + 1
                want59[r, c] = CONTEXT59_CLASSES.index(name)
        assert np.array_equal(png(ctx / f"SegmentationClassContext/{i}.png"), want60), i
        assert np.array_equal(png(ctx / f"SegmentationClassContext59/{i}.png"), want59), i
        assert (want59 == 255).any() and (want59 < 255).any()  # the fixture covers both
    assert (ctx / "cpp_pairs_context59_val.txt").read_text() == (
        "JPEGImages/2008_000007.jpg SegmentationClassContext59/2008_000007.png\n"
    )
    assert (ctx / "cpp_pairs_context60_val.txt").read_text() == (  # the 60-label maps as they are
        "JPEGImages/2008_000007.jpg SegmentationClassContext/2008_000007.png\n"
    )
    assert str(ctx / "SegmentationClassContext") in written


def test_context_keeps_existing_split_lists_and_converted_files(datasets_script, context_release):
    root, _, maps = context_release
    ctx = root / "VOCdevkit/VOC2010"
    write_lines(ctx / "ImageSets/SegmentationContext/train.txt", CTX_TRAIN[:1])  # user's lists
    write_lines(ctx / "ImageSets/SegmentationContext/val.txt", CTX_VAL)
    mod = datasets_script("prepare_pascal_context")
    mod.prepare_pascal_context(str(root))
    assert (ctx / "ImageSets/SegmentationContext/train.txt").read_text().split() == CTX_TRAIN[:1]
    assert not (ctx / "SegmentationClassContext/2008_000003.png").exists()
    out = ctx / "SegmentationClassContext59/2008_000002.png"
    before = png(out).copy()
    Image.fromarray(np.zeros((H, W), np.uint8)).save(out)
    mod.prepare_pascal_context(str(root))
    assert not png(out).any()
    mod.prepare_pascal_context(str(root), overwrite=True)
    assert np.array_equal(png(out), before)


def _split_warnings(record):
    mod_warning = [w for w in record if w.category.__name__ == "SplitSourceWarning"]
    return [str(w.message) for w in mod_warning]


def test_context_with_detail_json_uses_mmsegmentation_lists(datasets_script, tmp_path, capsys):
    """``trainval_merged.json`` present: the split lists are its train / val images (its test
    image skipped, one train image fewer than the Main list), no warning, the sizes printed, and
    both label sets' pairs files follow them."""
    root, labels, maps = write_context_release(tmp_path, detail_json=True)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        datasets_script("prepare_pascal_context").prepare_pascal_context(str(root))
    assert _split_warnings(record) == []
    ctx = root / "VOCdevkit/VOC2010"
    assert (ctx / "ImageSets/SegmentationContext/train.txt").read_text().split() == DETAIL_TRAIN
    assert (ctx / "ImageSets/SegmentationContext/val.txt").read_text().split() == DETAIL_VAL
    out = capsys.readouterr().out
    assert "Pascal Context splits (trainval_merged.json): train 1 images, val 1 images" in out
    for n, label_dir in ((60, "SegmentationClassContext"), (59, "SegmentationClassContext59")):
        assert (ctx / f"cpp_pairs_context{n}_train.txt").read_text() == (
            f"JPEGImages/2008_000002.jpg {label_dir}/2008_000002.png\n"
        )
    assert not (ctx / "SegmentationClassContext/2008_000003.png").exists()  # not in the json


def test_context_without_detail_json_warns_once_with_the_split_sizes(
    datasets_script, context_release, capsys
):
    root = context_release[0]
    mod = datasets_script("prepare_pascal_context")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        mod.prepare_pascal_context(str(root))
    (message,) = _split_warnings(record)
    for words in ("trainval_merged.json not found", "ImageSets/Main", "train 2, val 1 images"):
        assert words in message
    assert "4,996 / 5,104" in message and "4,998 / 5,105" in message  # the difference, named
    assert "Pascal Context splits (ImageSets/Main): train 2 images, val 1 images" in (
        capsys.readouterr().out
    )
    with warnings.catch_warnings(record=True) as record:  # the lists now exist: kept, no warning
        warnings.simplefilter("always")
        mod.prepare_pascal_context(str(root))
    assert _split_warnings(record) == []
    assert "(existing ImageSets/SegmentationContext lists): train 2 images" in (
        capsys.readouterr().out
    )


def test_context_detail_json_added_later_replaces_main_lists_only_with_overwrite(
    datasets_script, context_release
):
    root = context_release[0]
    ctx = root / "VOCdevkit/VOC2010"
    mod = datasets_script("prepare_pascal_context")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod.prepare_pascal_context(str(root))  # Main lists
    write_detail_json(ctx / "trainval_merged.json")
    train = ctx / "ImageSets/SegmentationContext/train.txt"
    with pytest.raises(ValueError) as e:
        mod.prepare_pascal_context(str(root))
    assert str(train) in str(e.value) and "--overwrite" in str(e.value)
    mod.prepare_pascal_context(str(root), overwrite=True)
    assert train.read_text().split() == DETAIL_TRAIN
    assert (ctx / "cpp_pairs_context60_train.txt").read_text().count("\n") == len(DETAIL_TRAIN)


@pytest.mark.parametrize(
    "content, words",
    [
        ("{not json", "is not a JSON file"),
        ('{"annos_segmentation": []}', "has no 'images' list"),
        ('{"images": [{"file_name": "2008_000002.jpg"}]}', "images[0] has no 'file_name' and"),
        (
            '{"images": [{"file_name": "2008_000002.jpg", "phase": "train"}]}',
            "no image of phase val",
        ),
    ],
)
def test_context_refuses_a_wrong_detail_json_naming_it(
    datasets_script, context_release, content, words
):
    def breaks(root):
        path = root / "VOCdevkit/VOC2010/trainval_merged.json"
        path.write_text(content)
        return path

    assert_refused(
        datasets_script("prepare_pascal_context").prepare_pascal_context,
        context_release[0],
        breaks,
        ValueError,
        words,
    )


def _labels_lack_a_class(root):
    path = root / "VOCdevkit/VOC2010/labels.txt"
    text = path.read_text().replace(": sky\n", ": skies\n")
    path.write_text(text)
    return path


def _labels_bad_line(root):
    path = root / "VOCdevkit/VOC2010/labels.txt"
    path.write_text(path.read_text() + "wood and more\n")
    return path


@pytest.mark.parametrize(
    "breaks, error, words",
    [
        (_labels_lack_a_class, ValueError, "lacks the Pascal Context 59 class(es) sky"),
        (_labels_bad_line, ValueError, "is not a new '<id>: <name>' entry"),
        (
            mat_at(CTXMAT, {"labels": np.zeros((H, W), np.uint16)}),
            ValueError,
            "no variable LabelMap",
        ),
        (
            mat_at(CTXMAT, {"LabelMap": np.full((H, W), 400, np.uint16)}),
            ValueError,
            "class ids 400 out of range",
        ),
        (
            mat_at(CTXMAT, {"LabelMap": np.zeros((H + 1, W), np.uint16)}),
            ValueError,
            "does not belong to this image",
        ),
        (
            mat_at(CTXMAT, {"LabelMap": np.zeros((3, H, W), np.uint16)}),
            ValueError,
            "not an H x W map",
        ),
        (
            removed("VOCdevkit/VOC2010/trainval/2008_000007.mat"),
            FileNotFoundError,
            "unpack the Pascal Context",
        ),
        (
            removed("VOCdevkit/VOC2010/JPEGImages/2008_000007.jpg"),
            FileNotFoundError,
            "unpack VOCtrainval",
        ),
        (
            removed("VOCdevkit/VOC2010/ImageSets/Main/val.txt"),
            FileNotFoundError,
            "unpack VOCtrainval",
        ),
    ],
)
def test_context_refuses_a_wrong_release_naming_the_file(
    datasets_script, context_release, breaks, error, words
):
    assert_refused(
        datasets_script("prepare_pascal_context").prepare_pascal_context,
        context_release[0],
        breaks,
        error,
        words,
    )


# --------------------------------------------------------------------------- NYUv2

SPLITS = "nyuv2/splits.mat"


def test_nyuv2_release_to_40_classes(datasets_script, nyu_release):
    root, images, labels = nyu_release
    written = datasets_script("prepare_nyuv2").prepare_nyuv2(str(root))
    nyu = root / "nyuv2"
    for split, frames in (("train", TRAIN_FRAMES), ("test", TEST_FRAMES)):
        assert sorted(os.listdir(nyu / "image" / split)) == [f"{k:04d}.png" for k in frames]
        for k in frames:
            assert np.array_equal(png(nyu / f"image/{split}/{k:04d}.png"), images[k - 1])
            want40 = np.where(labels[k - 1] == 0, 0, (labels[k - 1].astype(int) - 1) % 40 + 1)
            assert np.array_equal(png(nyu / f"label40/{split}/{k:04d}.png"), want40)
            reduced = png(nyu / f"label40_reduced/{split}/{k:04d}.png")
            assert np.array_equal(reduced, np.where(want40 == 0, 255, want40 - 1))
            assert reduced[0, 0] == 255 and reduced[0, 1] == 893 % 40  # 894 -> 14 -> 13
    k, r, c, rgb = PIXEL  # the known pixel lands at (row, col) of frame k, not transposed
    assert tuple(png(nyu / f"image/train/{k:04d}.png")[r, c]) == rgb
    assert png(nyu / "image/train/0001.png").shape == (H, W, 3)
    assert (nyu / "cpp_pairs_test.txt").read_text() == (
        "image/test/0002.png label40_reduced/test/0002.png\n"
        "image/test/0005.png label40_reduced/test/0005.png\n"
    )
    assert str(nyu / "label40") in written


def test_nyuv2_rerun_keeps_converted_files_unless_overwrite(datasets_script, nyu_release):
    root, images, _ = nyu_release
    mod = datasets_script("prepare_nyuv2")
    mod.prepare_nyuv2(str(root))
    out = root / "nyuv2/image/test/0005.png"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(out)
    mod.prepare_nyuv2(str(root))
    assert not png(out).any()
    mod.prepare_nyuv2(str(root), overwrite=True)
    assert np.array_equal(png(out), images[4])


def test_cli_converts_the_nyuv2_release(nyu_release):
    root = nyu_release[0]
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "projects", "SeeThroughNet"))
    cmd = [sys.executable, os.path.join(REPO, "datasets", "prepare_nyuv2.py"), "--root", str(root)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{root / 'nyuv2' / 'label40'} <- " in done.stdout
    assert (root / "nyuv2/label40_reduced/train/0004.png").is_file()


def _h5(path, **datasets):
    import h5py

    path.unlink()
    with h5py.File(path, "w") as f:
        for name, value in datasets.items():
            f[name] = value


def _labeled_not_hdf5(root):
    path = root / "nyuv2/nyu_depth_v2_labeled.mat"
    sio.savemat(path, {"images": np.zeros((2, 2))})  # a v5 file, not v7.3
    return path


def _labeled_without_labels(root):
    path = root / "nyuv2/nyu_depth_v2_labeled.mat"
    _h5(path, images=np.zeros((N_FRAMES, 3, W, H), np.uint8))
    return path


def _labeled_wrong_axes(root):
    path = root / "nyuv2/nyu_depth_v2_labeled.mat"
    _h5(
        path,
        images=np.zeros((N_FRAMES, 3, W, H), np.uint8),
        labels=np.zeros((N_FRAMES, H, W), np.uint16),
    )
    return path


def _label_id_out_of_range(root):
    path = root / "nyuv2/nyu_depth_v2_labeled.mat"
    _h5(
        path,
        images=np.zeros((N_FRAMES, 3, W, H), np.uint8),
        labels=np.full((N_FRAMES, W, H), 895, np.uint16),
    )
    return path


def _splits_overlap(root):
    path = root / "nyuv2/splits.mat"
    sio.savemat(path, {"trainNdxs": np.array([[1], [2]]), "testNdxs": np.array([[2]])})
    return path


@pytest.mark.parametrize(
    "breaks, error, words",
    [
        (_labeled_not_hdf5, ValueError, "is not a MATLAB v7.3 (HDF5) file"),
        (_labeled_without_labels, ValueError, "has no dataset 'labels'"),
        (_labeled_wrong_axes, ValueError, "are not N x 3 x W x H and N x W x H"),
        (_label_id_out_of_range, ValueError, "(labels of frame 1) has class ids 895"),
        (
            mat_at(SPLITS, {"trainNdxs": np.array([[0], [2]]), "testNdxs": np.array([[1]])}),
            ValueError,
            "class ids 0 out of range (trainNdxs holds frames 1..5)",
        ),
        (_splits_overlap, ValueError, "trainNdxs and testNdxs share frames"),
        (mat_at(SPLITS, {"trainNdxs": np.array([[1], [2]])}), ValueError, "no variable testNdxs"),
        (removed(SPLITS), FileNotFoundError, "does not exist: download"),
        (
            mat_at("nyuv2/classMapping40.mat", {"mapClass": np.full((1, 894), 41)}),
            ValueError,
            "class ids 41 out of range",
        ),
        (
            mat_at("nyuv2/classMapping40.mat", {"className": np.zeros(3)}),
            ValueError,
            "no variable mapClass",
        ),
    ],
)
def test_nyuv2_refuses_a_wrong_release_naming_the_file(
    datasets_script, nyu_release, breaks, error, words
):
    assert_refused(
        datasets_script("prepare_nyuv2").prepare_nyuv2, nyu_release[0], breaks, error, words
    )


def test_cli_says_what_is_wrong_and_that_h5py_is_needed(
    datasets_script, nyu_release, monkeypatch, capsys
):
    root = nyu_release[0]
    mod = datasets_script("prepare_nyuv2")
    _splits_overlap(root)
    assert mod.main(["--root", str(root)]) == 2
    assert f"error: {root / 'nyuv2' / 'splits.mat'}: trainNdxs" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "h5py", None)  # as if not installed
    assert mod.main(["--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "nyu_depth_v2_labeled.mat (MATLAB v7.3) needs h5py" in err
