"""seethroughnet.experiments.class_image_counts behind tools/class_image_counts.py (SeeThroughNet
Table 3: images per class of a split).

Every count the tool reports is compared with an independent count written here (np.unique over
each *_gtFine_labelTrainIds.png), on a tiny synthetic Cityscapes and on a hand-made folder.
"""

import glob
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from markdown_rows import row_starting, table_rows
from PIL import Image

from seethroughnet.experiments import class_image_counts as tool

REPO = Path(__file__).resolve().parents[2]
NUM_CLASSES = 19
CLASSES = [
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
]  # fmt: skip


@pytest.fixture(scope="module")
def cityscapes_root(make_synthetic_cityscapes):
    """A synthetic Cityscapes (4 train, 2 val, 1 test image) registered under
    DETECTRON2_DATASETS."""
    return (
        make_synthetic_cityscapes(seed=7, num_images={"train": 4, "val": 2, "test": 1})
        / "cityscapes"
    )


def _independent_counts(label_files, min_pixels=1):
    """(images per class, pixels per class, ignored pixels) by np.unique over each file."""
    images = [0] * NUM_CLASSES
    pixels = [0] * NUM_CLASSES
    ignored = 0
    for path in label_files:
        with Image.open(path) as im:
            values, counts = np.unique(np.asarray(im), return_counts=True)
        for v, n in zip(values.tolist(), counts.tolist()):
            if v == 255:
                ignored += n
                continue
            assert 0 <= v < NUM_CLASSES, (path, v)
            pixels[v] += n
            if n >= min_pixels:
                images[v] += 1
    return images, pixels, ignored


def _label_files(root, split):
    files = sorted(
        glob.glob(os.path.join(root, "gtFine", split, "*", "*_gtFine_labelTrainIds.png"))
    )
    assert files
    return files


def _outputs(out_dir, name):
    stem = os.path.join(out_dir, name + "_class_image_counts")
    return stem + ".md", stem + ".json", stem + ".png"


def _run(args, capsys):
    rc = tool.main([*args, "--no-progress", "--workers", "2"])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _run_train_split(capsys, root, out_dir, *extra):
    """The tool on ``root``'s train split, writing to ``out_dir``: ``(rc, stdout, stderr)``."""
    args = ["--cityscapes-root", str(root), "--split", "train", "--output-dir", str(out_dir)]
    return _run([*args, *extra], capsys)


def _check_against_independent(result, label_files, min_pixels=1):
    images, pixels, ignored = _independent_counts(label_files, min_pixels)
    assert result["num_images"] == len(label_files)
    assert result["min_pixels"] == min_pixels
    assert [c["name"] for c in result["classes"]] == CLASSES
    assert [c["id"] for c in result["classes"]] == list(range(NUM_CLASSES))
    assert [c["images"] for c in result["classes"]] == images
    assert [c["pixels"] for c in result["classes"]] == pixels
    assert result["ignored_pixels"] == ignored
    labelled = sum(pixels)
    assert result["labelled_pixels"] == labelled
    for c, entry in enumerate(result["classes"]):
        assert entry["image_fraction"] == pytest.approx(images[c] / len(label_files))
        assert entry["pixel_share"] == pytest.approx(pixels[c] / labelled if labelled else 0.0)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_registered_cityscapes_split_matches_independent_count(
    cityscapes_root, split, tmp_path, capsys
):
    name = f"cityscapes_fine_sem_seg_{split}"
    rc, out, err = _run(["--dataset", name, "--output-dir", str(tmp_path)], capsys)
    assert rc == 0, err
    md, js, png = _outputs(tmp_path, name)
    with open(js) as f:
        result = json.load(f)
    _check_against_independent(result, _label_files(cityscapes_root, split))
    assert out.startswith(open(md).read())  # the markdown is printed too
    if split == "train":
        # the synthetic train split is not degenerate: some class is in every image, some in none
        images = [c["images"] for c in result["classes"]]
        assert max(images) == 4 and 0 < sum(images) < 4 * NUM_CLASSES
    if split == "test":  # the dummy test labels: all ignored, said so
        assert result["labelled_pixels"] == 0
        assert "no labels" in open(md).read()


def test_cityscapes_root_and_split_agree_with_the_registered_dataset(
    cityscapes_root, tmp_path, capsys
):
    rc, _, err = _run(
        ["--dataset", "cityscapes_fine_sem_seg_train", "--output-dir", str(tmp_path / "a")], capsys
    )
    assert rc == 0, err
    rc, _, err = _run_train_split(capsys, cityscapes_root, tmp_path / "b")
    assert rc == 0, err
    a = json.load(open(_outputs(tmp_path / "a", "cityscapes_fine_sem_seg_train")[1]))
    b = json.load(open(_outputs(tmp_path / "b", "cityscapes_train")[1]))
    assert a["classes"] == b["classes"]
    assert a["num_images"] == b["num_images"] == 4
    _check_against_independent(b, _label_files(cityscapes_root, "train"))


def test_min_pixels_threshold_matches_independent_count(cityscapes_root, tmp_path, capsys):
    files = _label_files(cityscapes_root, "train")
    # a threshold that changes some image counts (a class present with fewer pixels than it)
    per_file = [dict(zip(*np.unique(np.asarray(Image.open(p)), return_counts=True))) for p in files]
    small = sorted(n for h in per_file for v, n in h.items() if v != 255)
    threshold = int(small[len(small) // 4]) + 1
    assert _independent_counts(files, threshold)[0] != _independent_counts(files, 1)[0]
    rc, _, err = _run_train_split(capsys, cityscapes_root, tmp_path, "--min-pixels", str(threshold))
    assert rc == 0, err
    result = json.load(open(_outputs(tmp_path, "cityscapes_train")[1]))
    _check_against_independent(result, files, threshold)


# --------------------------------------------------------------------------------------
# a hand-made two-image folder with known classes
# --------------------------------------------------------------------------------------
def _write_label(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode="L").save(path)


@pytest.fixture()
def two_image_root(tmp_path):
    """gtFine/train/town/: image a = road (60) + sky (30) + ignore (10); image b = road (97) +
    car (3)."""
    root = tmp_path / "cs"
    gt = root / "gtFine" / "train" / "town"
    a = np.zeros((10, 10), np.uint8)
    a[:3] = 10
    a[9] = 255
    b = np.zeros((10, 10), np.uint8)
    b[5, 5:8] = 13
    _write_label(str(gt / "town_000000_000019_gtFine_labelTrainIds.png"), a)
    _write_label(str(gt / "town_000001_000019_gtFine_labelTrainIds.png"), b)
    return root


def test_hand_made_folder_known_counts(two_image_root, tmp_path, capsys):
    out_dir = tmp_path / "out"
    rc, out, err = _run_train_split(capsys, two_image_root, out_dir)
    assert rc == 0, err
    md, js, png = _outputs(out_dir, "cityscapes_train")
    result = json.load(open(js))
    images = {c["name"]: c["images"] for c in result["classes"]}
    pixels = {c["name"]: c["pixels"] for c in result["classes"]}
    assert images == {name: {"road": 2, "sky": 1, "car": 1}.get(name, 0) for name in CLASSES}
    assert pixels == {name: {"road": 157, "sky": 30, "car": 3}.get(name, 0) for name in CLASSES}
    assert result["num_images"] == 2
    assert result["ignored_pixels"] == 10 and result["labelled_pixels"] == 190
    text = open(md).read()
    assert row_starting(text, "0") == ["0", "road", "2", "100.0", "157", "82.63"]
    assert row_starting(text, "10") == ["10", "sky", "1", "50.0", "30", "15.79"]
    assert row_starting(text, "13") == ["13", "car", "1", "50.0", "3", "1.58"]
    assert row_starting(text, "14") == ["14", "truck", "0", "0.0", "0", "0.00"]
    rows = table_rows(text)
    assert rows[0] == ["trainId", "class", "images", "% of images", "pixels"] + [
        "% of labelled pixels"
    ]
    assert [int(r[0]) for r in rows[1:]] == list(range(NUM_CLASSES))  # class order, as Table 3
    # numbers right-aligned, class names left-aligned
    assert re.search(r"^\|-+:\|:-+\|(-+:\|){4}$", text, re.M)

    # car has 3 pixels: with --min-pixels 4 image b no longer contains it
    rc, _, err = _run_train_split(
        capsys, two_image_root, out_dir, "--min-pixels", "4", "--name", "two_images_min4"
    )
    assert rc == 0, err
    result = json.load(open(_outputs(out_dir, "two_images_min4")[1]))
    images = {c["name"]: c["images"] for c in result["classes"]}
    assert images["car"] == 0 and images["road"] == 2 and images["sky"] == 1
    assert {c["name"]: c["pixels"] for c in result["classes"]}["car"] == 3  # pixels: no threshold


def test_registered_folder_dataset_uses_its_own_classes(two_image_root, tmp_path, capsys):
    """A non-Cityscapes registration: classes, colours and ignore_label from its metadata."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from seethroughnet.data.datasets import register_folder_semseg

    labels = two_image_root / "gtFine" / "train" / "town"
    images = tmp_path / "images"
    images.mkdir()
    for p in sorted(labels.iterdir()):
        stem = p.name.replace("_gtFine_labelTrainIds.png", "")
        Image.new("RGB", (10, 10), (1, 2, 3)).save(images / f"{stem}.png")
    # a 14-class folder dataset (car = 13 is its last class), ignore 255
    name = "test_class_image_counts_folder"
    register_folder_semseg(
        name,
        str(images),
        str(labels),
        class_names=[f"c{i}" for i in range(14)],
        label_suffix="_gtFine_labelTrainIds.png",
    )
    try:
        rc, _, err = _run(["--dataset", name, "--output-dir", str(tmp_path / "out")], capsys)
        assert rc == 0, err
        result = json.load(open(_outputs(tmp_path / "out", name)[1]))
        assert [c["name"] for c in result["classes"]] == [f"c{i}" for i in range(14)]
        assert [c["images"] for c in result["classes"]] == [2] + [0] * 9 + [1, 0, 0, 1]
        assert result["id_column"] == "id"
        # the same files are out of this dataset's table when it has only 13 classes (0-12)
        register_folder_semseg(
            name,
            str(images),
            str(labels),
            class_names=[f"c{i}" for i in range(13)],
            label_suffix="_gtFine_labelTrainIds.png",
        )
        rc, _, err = _run(["--dataset", name, "--output-dir", str(tmp_path / "out2")], capsys)
        assert rc == 1
        assert "town_000001_000019_gtFine_labelTrainIds.png holds value 13" in err
        assert "town_000000" not in err
        assert not (tmp_path / "out2").exists() or not os.listdir(tmp_path / "out2")
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


# --------------------------------------------------------------------------------------
# bad input: one error naming the file, nothing written
# --------------------------------------------------------------------------------------
def _assert_one_error_naming(err, path, *phrases):
    assert err.startswith("error: ")
    assert err.count("error: ") == 1
    assert str(path) in err
    for phrase in phrases:
        assert phrase in err, err


def test_corrupt_label_png_is_one_error_naming_the_file(two_image_root, tmp_path, capsys):
    bad = (
        two_image_root / "gtFine" / "train" / "town" / "town_000001_000019_gtFine_labelTrainIds.png"
    )
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # truncated
    out_dir = tmp_path / "out"
    rc, out, err = _run_train_split(capsys, two_image_root, out_dir)
    assert rc == 1
    _assert_one_error_naming(err, bad, "truncated or corrupt")
    assert "town_000000" not in err  # the good file is not blamed
    assert os.listdir(out_dir) == []  # nothing written, no temporary files left


def test_label_id_outside_the_table_is_one_error_naming_the_file(two_image_root, tmp_path, capsys):
    bad = (
        two_image_root / "gtFine" / "train" / "town" / "town_000000_000019_gtFine_labelTrainIds.png"
    )
    labels = np.asarray(Image.open(bad)).copy()
    labels[4, 4] = 19  # one past the last trainId
    _write_label(str(bad), labels)
    out_dir = tmp_path / "out"
    rc, out, err = _run_train_split(capsys, two_image_root, out_dir)
    assert rc == 1
    _assert_one_error_naming(
        err, bad, "holds value 19", "a trainId of the Cityscapes label table (0-18, 255)"
    )
    assert "town_000001" not in err
    assert os.listdir(out_dir) == []


def test_a_corrupt_and_an_out_of_table_file_are_listed_in_one_error(
    two_image_root, tmp_path, capsys
):
    town = two_image_root / "gtFine" / "train" / "town"
    corrupt = town / "town_000000_000019_gtFine_labelTrainIds.png"
    corrupt.write_bytes(corrupt.read_bytes()[:40])
    out_of_table = town / "town_000001_000019_gtFine_labelTrainIds.png"
    _write_label(str(out_of_table), np.full((10, 10), 200, np.uint8))
    rc, _, err = _run_train_split(capsys, two_image_root, tmp_path / "out")
    assert rc == 1
    _assert_one_error_naming(err, corrupt, "truncated or corrupt", "(2 files)")
    assert f"{out_of_table} holds value 200" in err


def test_missing_label_file_of_a_registered_dataset_is_named(cityscapes_root, tmp_path, capsys):
    from seethroughnet.data.datasets import register_all, register_cityscapes

    copy = tmp_path / "cityscapes"
    shutil.copytree(cityscapes_root, copy)
    missing = sorted(
        glob.glob(str(copy / "gtFine" / "train" / "*" / "*_gtFine_labelTrainIds.png"))
    )[1]
    os.remove(missing)
    register_cityscapes(root=str(copy), splits=("train",))
    try:
        rc, _, err = _run(
            ["--dataset", "cityscapes_fine_sem_seg_train", "--output-dir", str(tmp_path / "out")],
            capsys,
        )
    finally:
        register_all()  # back to the fixture's root
    assert rc == 1
    _assert_one_error_naming(err, missing, "has no label file")


def test_usage_errors_name_what_to_fix(tmp_path, capsys):
    rc, _, err = _run_train_split(capsys, tmp_path / "nowhere", tmp_path / "out")
    assert rc == 1 and str(tmp_path / "nowhere") in err and "does not exist" in err
    (tmp_path / "cs" / "gtFine" / "train" / "town").mkdir(parents=True)
    rc, _, err = _run_train_split(capsys, tmp_path / "cs", tmp_path / "out")
    assert rc == 1 and "holds no" in err and str(tmp_path / "cs" / "gtFine" / "train") in err
    rc, _, err = _run(
        ["--dataset", "no_such_dataset", "--output-dir", str(tmp_path / "out")], capsys
    )
    assert rc == 1 and "no_such_dataset" in err and "--list" in err
    with pytest.raises(SystemExit):
        tool.main(
            ["--cityscapes-root", str(tmp_path), "--output-dir", str(tmp_path / "out")]
        )  # no --split
    with pytest.raises(SystemExit):
        tool.main(
            [
                "--cityscapes-root",
                str(tmp_path),
                "--split",
                "train",
                "--output-dir",
                str(tmp_path),
                "--min-pixels",
                "0",
            ]
        )
    capsys.readouterr()


# --------------------------------------------------------------------------------------
# the three outputs
# --------------------------------------------------------------------------------------
def test_outputs_exist_and_json_round_trips(cityscapes_root, tmp_path, capsys):
    rc, _, err = _run(
        ["--dataset", "cityscapes_fine_sem_seg_train", "--output-dir", str(tmp_path)], capsys
    )
    assert rc == 0, err
    md, js, png = _outputs(tmp_path, "cityscapes_fine_sem_seg_train")
    assert sorted(os.listdir(tmp_path)) == sorted(
        os.path.basename(p) for p in (md, js, png)
    )  # no temp files
    with Image.open(png) as im:
        im.load()
        assert im.format == "PNG" and im.size[0] > 400 and im.size[1] > 300
        assert np.asarray(im.convert("RGB")).std() > 0
    with open(js) as f:
        data = json.load(f)
    counts = tool.ClassImageCounts.from_json_dict(data)
    assert counts.to_json_dict() == data
    assert tool.format_markdown(counts) == open(md).read()  # the JSON holds everything in the table
    assert counts.class_colors[13] == (0, 0, 142)  # Cityscapes' car colour (bars are drawn in it)
    assert data["source"] == "registered dataset cityscapes_fine_sem_seg_train"
