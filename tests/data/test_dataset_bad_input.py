"""Bad dataset input: each case ends in one DatasetError, raised when the dataset is loaded
(``DatasetCatalog.get``), whose message names the file and says what is wrong."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("detectron2", reason="detectron2 is not installed")
from detectron2.data import DatasetCatalog  # noqa: E402

from seethroughnet.data.datasets import (  # noqa: E402
    DatasetError,
    read_label,
    register_camvid,
    register_cityscapes,
    register_folder_semseg,
)

SEM_VAL = "cityscapes_fine_sem_seg_val"

pytestmark = pytest.mark.usefixtures("isolated_validation_cache", "restore_default_registrations")


@pytest.fixture
def cs(tiny_cs, tmp_path):
    """A valid tiny Cityscapes tree, registered; returns (root, {split: [paths]})."""
    root = tmp_path / "cityscapes"
    files = tiny_cs.write_cityscapes(root, splits=("val",))
    register_cityscapes(str(root))
    return root, files


def load_error(name: str = SEM_VAL) -> str:
    with pytest.raises(DatasetError) as ei:
        DatasetCatalog.get(name)
    return str(ei.value)


def truncate(path: str, keep: float = 0.5) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])


# --------------------------------------------------------------------------------------
# missing things
# --------------------------------------------------------------------------------------
def test_root_does_not_exist_explicit(tmp_path):
    register_cityscapes(str(tmp_path / "nowhere" / "cityscapes"))
    msg = load_error()
    assert str(tmp_path / "nowhere" / "cityscapes") in msg
    assert "does not exist" in msg
    assert "datasets/README.md" in msg
    assert "python datasets/prepare_synthetic_cityscapes.py" in msg
    assert "DETECTRON2_DATASETS" in msg


def test_root_does_not_exist_via_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "d2"))
    register_cityscapes()
    msg = load_error()
    assert str(tmp_path / "d2" / "cityscapes") in msg
    assert f"DETECTRON2_DATASETS='{tmp_path / 'd2'}'" in msg


def test_split_folder_missing(cs):
    root, _ = cs
    msg = load_error("cityscapes_fine_sem_seg_train")
    assert str(root / "leftImg8bit" / "train") in msg and "does not exist" in msg


def test_label_folder_missing(cs):
    root, _ = cs
    shutil.rmtree(root / "gtFine" / "val")
    msg = load_error()
    assert str(root / "gtFine" / "val") in msg and "label folder" in msg


def test_split_without_images(tmp_path):
    root = tmp_path / "cityscapes"
    (root / "leftImg8bit" / "val" / "aachen").mkdir(parents=True)
    (root / "gtFine" / "val" / "aachen").mkdir(parents=True)
    register_cityscapes(str(root))
    msg = load_error()
    assert str(root / "leftImg8bit" / "val") in msg and "holds no images" in msg


def test_images_not_in_city_folders(tiny_cs, tmp_path):
    root = tmp_path / "cityscapes"
    tiny_cs.write_sample(root, "val", "aachen", 0)
    shutil.move(str(root / "leftImg8bit" / "val" / "aachen"), str(tmp_path / "moved"))
    for p in (tmp_path / "moved").iterdir():
        shutil.move(str(p), str(root / "leftImg8bit" / "val" / p.name))
    register_cityscapes(str(root))
    msg = load_error()
    assert "holds no images" in msg and "one sub-folder per city" in msg


def test_image_without_label(cs):
    root, files = cs
    s = files["val"][2]
    os.remove(s["trainIds"])
    msg = load_error()
    assert s["image"] in msg and s["trainIds"] in msg
    assert "has no label file" in msg
    assert "csCreateTrainIdLabelImgs" in msg  # its labelIds exists: say how to make trainIds


def test_label_without_image(cs):
    root, files = cs
    s = files["val"][1]
    os.remove(s["image"])
    msg = load_error()
    assert f"label file {s['trainIds']} has no image {s['image']}" in msg


def test_polygon_json_missing_and_corrupt(cs):
    root, files = cs
    s = files["val"][0]
    os.remove(s["polygons"])
    msg = load_error()
    assert s["polygons"] in msg and s["image"] in msg
    Path(s["polygons"]).write_text("{ broken")
    msg = load_error()
    assert s["polygons"] in msg and "cannot be read" in msg


def test_polygon_json_size_disagrees(cs):
    root, files = cs
    s = files["val"][0]
    Path(s["polygons"]).write_text(json.dumps({"imgHeight": 1024, "imgWidth": 2048, "objects": []}))
    msg = load_error()
    assert s["image"] in msg and s["polygons"] in msg and "2048x1024" in msg


def test_stray_file_in_image_folder(cs):
    root, files = cs
    stray = root / "leftImg8bit" / "val" / "aachen" / "notes.png"
    shutil.copy(files["val"][0]["image"], stray)
    msg = load_error()
    assert str(stray) in msg and "_leftImg8bit.png" in msg


def test_many_missing_labels_are_listed_once(tiny_cs, tmp_path):
    root = tmp_path / "cityscapes"
    files = tiny_cs.write_cityscapes(root, splits=("val",), per_city=6)
    for s in files["val"]:
        os.remove(s["trainIds"])
    register_cityscapes(str(root))
    msg = load_error()
    assert "(12 files)" in msg and "and 4 more" in msg


# --------------------------------------------------------------------------------------
# bad content
# --------------------------------------------------------------------------------------
def test_label_value_not_in_table(tiny_cs, cs):
    root, files = cs
    s = files["val"][3]
    bad = tiny_cs.train_ids(0)
    bad[3:5, 7:9] = 37
    Image.fromarray(bad).save(s["trainIds"])
    msg = load_error()
    rel = os.path.relpath(s["trainIds"], root)
    assert rel.startswith("gtFine/val/")
    assert (
        f"{rel} holds value 37, which is not a trainId of the Cityscapes label table (0-18, 255)"
        in msg
    )
    assert s["trainIds"] in msg and "4 pixels" in msg
    assert "csCreateTrainIdLabelImgs" in msg  # what to do


def test_bad_value_is_not_caught_in_header_mode(tiny_cs, cs, monkeypatch):
    """Documented trade-off: header mode reads no pixel data."""
    root, files = cs
    bad = tiny_cs.train_ids(0)
    bad[0, 0] = 37
    Image.fromarray(bad).save(files["val"][0]["trainIds"])
    monkeypatch.setenv("SEETHROUGHNET_VALIDATE", "header")
    assert len(DatasetCatalog.get(SEM_VAL)) == 4


def test_image_and_label_sizes_differ(tiny_cs, cs):
    root, files = cs
    s = files["val"][0]
    Image.fromarray(tiny_cs.train_ids(0, tiny_cs.H, tiny_cs.W + 2)).save(s["trainIds"])
    msg = load_error()
    assert s["trainIds"] in msg and s["image"] in msg
    assert f"{tiny_cs.W + 2}x{tiny_cs.H}" in msg and f"{tiny_cs.W}x{tiny_cs.H}" in msg
    assert "sizes disagree" in msg


def _save_with_orientation(path, array, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation  # EXIF Orientation
    Image.fromarray(array).save(path, exif=exif.tobytes())


@pytest.mark.parametrize("mode", ["header", "full"])
def test_exif_rotated_image_whose_oriented_size_differs_from_its_label(
    tiny_cs, cs, monkeypatch, mode
):
    """detectron2 reads images with their EXIF orientation applied; the validator must compare
    that size with the label's, naming the image, not leave it to training (issue #25)."""
    from detectron2.data.detection_utils import read_image

    monkeypatch.setenv("SEETHROUGHNET_VALIDATE", mode)
    root, files = cs
    s = files["val"][1]
    h, w = tiny_cs.H, tiny_cs.W
    _save_with_orientation(s["image"], np.zeros((h, w, 3), np.uint8), 6)  # stored W x H
    assert read_image(str(s["image"])).shape[:2] == (w, h)  # as training will see it: rotated
    msg = load_error()
    assert s["image"] in msg and "EXIF orientation" in msg
    assert f"{h}x{w}" in msg and f"{w}x{h}" in msg
    assert "sizes disagree" in msg


def test_exif_rotated_image_whose_oriented_size_matches_its_label_loads(tiny_cs, cs):
    root, files = cs
    s = files["val"][1]
    h, w = tiny_cs.H, tiny_cs.W
    _save_with_orientation(s["image"], np.zeros((w, h, 3), np.uint8), 8)  # stored H x W: rotated
    assert len(DatasetCatalog.get(SEM_VAL)) == 4


def test_truncated_label_png(cs):
    root, files = cs
    s = files["val"][1]
    truncate(s["trainIds"])
    msg = load_error()
    assert s["trainIds"] in msg
    assert "truncated" in msg


def test_label_png_truncated_in_header(cs):
    root, files = cs
    s = files["val"][1]
    truncate(s["trainIds"], keep=0.1)  # not even a complete IHDR
    msg = load_error()
    assert s["trainIds"] in msg and "truncated" in msg


def test_truncated_image_png(cs):
    root, files = cs
    s = files["val"][2]
    truncate(s["image"], keep=0.7)
    msg = load_error()
    assert s["image"] in msg and "truncated" in msg


def test_rgb_label_file(tiny_cs, cs):
    root, files = cs
    s = files["val"][0]
    Image.fromarray(np.zeros((tiny_cs.H, tiny_cs.W, 3), np.uint8)).save(s["trainIds"])
    msg = load_error()
    assert s["trainIds"] in msg and "mode-RGB" in msg and "single-channel" in msg


def test_bad_instance_id(tiny_cs, cs):
    root, files = cs
    s = files["val"][0]
    inst = np.full((tiny_cs.H, tiny_cs.W), 7, np.uint16)
    inst[0, 0] = 7001  # road (7) has no instances
    Image.fromarray(inst).save(s["instanceIds"])
    msg = load_error("cityscapes_fine_instance_seg_val")
    assert s["instanceIds"] in msg and "holds value 7001" in msg and "instanceId" in msg


def test_invalid_validation_mode(cs, monkeypatch):
    monkeypatch.setenv("SEETHROUGHNET_VALIDATE", "thorough")
    msg = load_error()
    assert "SEETHROUGHNET_VALIDATE" in msg and "header" in msg and "full" in msg


# --------------------------------------------------------------------------------------
# folder datasets / CamVid
# --------------------------------------------------------------------------------------
def _folder(tiny_cs, tmp_path, n=2, k=3):
    for i in range(n):
        (tmp_path / "img").mkdir(exist_ok=True)
        (tmp_path / "lab").mkdir(exist_ok=True)
        h, w = tiny_cs.H, tiny_cs.W
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(tmp_path / "img" / f"a{i}.png")
        lab = (np.arange(h * w).reshape(h, w) % k).astype(np.uint8)
        Image.fromarray(lab).save(tmp_path / "lab" / f"a{i}.png")
    register_folder_semseg(
        "t_bad_folder", str(tmp_path / "img"), str(tmp_path / "lab"), ["x", "y", "z"][:k]
    )


def test_folder_label_value_out_of_range(tiny_cs, tmp_path):
    _folder(tiny_cs, tmp_path)
    p = tmp_path / "lab" / "a1.png"
    Image.fromarray(np.full((tiny_cs.H, tiny_cs.W), 3, np.uint8)).save(p)
    msg = load_error("t_bad_folder")
    assert (
        f"{p} holds value 3, which is not a class of 't_bad_folder' (0-2) or its ignore_label 255"
        in msg
    )


def test_folder_missing_label_and_orphan_label(tiny_cs, tmp_path):
    _folder(tiny_cs, tmp_path)
    os.remove(tmp_path / "lab" / "a0.png")
    msg = load_error("t_bad_folder")
    assert (
        f"image {tmp_path / 'img' / 'a0.png'} has no label file {tmp_path / 'lab' / 'a0.png'}"
        in msg
    )
    _folder(tiny_cs, tmp_path)
    os.remove(tmp_path / "img" / "a1.png")
    msg = load_error("t_bad_folder")
    assert (
        f"label file {tmp_path / 'lab' / 'a1.png'} has no image" in msg
        and str(tmp_path / "img" / "a1.png") in msg
    )


def test_folder_missing_root(tmp_path):
    register_folder_semseg(
        "t_gone", str(tmp_path / "gone" / "img"), str(tmp_path / "gone" / "lab"), ["a"]
    )
    msg = load_error("t_gone")
    assert str(tmp_path / "gone" / "img") in msg and "does not exist" in msg


def test_folder_truncated_and_size(tiny_cs, tmp_path):
    _folder(tiny_cs, tmp_path)
    truncate(str(tmp_path / "lab" / "a0.png"))
    msg = load_error("t_bad_folder")
    assert str(tmp_path / "lab" / "a0.png") in msg and "truncated" in msg
    _folder(tiny_cs, tmp_path)
    too_high = np.zeros((tiny_cs.H + 1, tiny_cs.W), np.uint8)
    Image.fromarray(too_high).save(tmp_path / "lab" / "a1.png")
    msg = load_error("t_bad_folder")
    assert str(tmp_path / "lab" / "a1.png") in msg and f"{tiny_cs.W}x{tiny_cs.H + 1}" in msg


def test_pairs_file_problems(tiny_cs, tmp_path):
    _folder(tiny_cs, tmp_path)
    pf = tmp_path / "split.txt"
    pf.write_text("img/a0.png lab/a0.png\nimg/a9.png lab/a9.png\n")
    register_folder_semseg(
        "t_pf", str(tmp_path / "img"), str(tmp_path / "lab"), ["x", "y", "z"], pairs_file=str(pf)
    )
    msg = load_error("t_pf")
    assert f"{pf} line 2" in msg and "a9.png" in msg
    pf.write_text("img/a0.png lab/a0.png extra\n")
    msg = load_error("t_pf")
    assert f"{pf} line 1 has 3 fields" in msg
    os.remove(pf)
    msg = load_error("t_pf")
    assert str(pf) in msg and "does not exist" in msg


def test_camvid_folder_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("SEETHROUGHNET_CAMVID", str(tmp_path / "no_camvid"))
    register_camvid()
    for name in ("camvid_train", "camvid_val", "camvid_trainval"):
        msg = load_error(name)
        assert str(tmp_path / "no_camvid") in msg and "does not exist" in msg
        assert "SEETHROUGHNET_CAMVID" in msg and "datasets/README.md" in msg


def test_camvid_label_with_255_is_rejected(tiny_cs, tmp_path, monkeypatch):
    """CamVid void is 11; 255 is not part of its encoding (the evaluator would count it)."""
    root = tmp_path / "camvid"
    for d in ("train", "trainannot", "val", "valannot"):
        (root / d).mkdir(parents=True)
    Image.fromarray(np.zeros((tiny_cs.H, tiny_cs.W, 3), np.uint8)).save(root / "val" / "v.png")
    lab = np.full((tiny_cs.H, tiny_cs.W), 11, np.uint8)
    lab[0, :5] = 255
    Image.fromarray(lab).save(root / "valannot" / "v.png")
    (root / "val.txt").write_text("val/v.png valannot/v.png\n")
    monkeypatch.setenv("SEETHROUGHNET_CAMVID", str(root))
    register_camvid()
    msg = load_error("camvid_val")
    assert "holds value 255" in msg and "ignore_label 11" in msg and "5 pixels" in msg
    msg = load_error("camvid_train")  # train.txt is missing
    assert str(root / "train.txt") in msg


# --------------------------------------------------------------------------------------
# read_label (used by the dataset mapper)
# --------------------------------------------------------------------------------------
def test_read_label_errors(tiny_cs, tmp_path):
    p = tmp_path / "l.png"
    a = tiny_cs.train_ids(1)
    a[0, 0] = 200
    Image.fromarray(a).save(p)
    with pytest.raises(
        DatasetError, match=r"l\.png holds value 200, which is not in the label table \(0-18, 255\)"
    ):
        read_label(str(p), list(range(19)) + [255])
    truncate(str(p))
    with pytest.raises(DatasetError, match=r"l\.png cannot be decoded .*truncated"):
        read_label(str(p), list(range(19)) + [255])
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(p)
    with pytest.raises(DatasetError, match=r"l\.png is a mode-RGB image"):
        read_label(str(p))
    with pytest.raises(DatasetError, match=r"nope\.png does not exist"):
        read_label(str(tmp_path / "nope.png"))
    assert issubclass(DatasetError, ValueError)


def test_read_label_truncated_even_if_pil_allows_truncated_images(tiny_cs, tmp_path, monkeypatch):
    from PIL import ImageFile

    p = tmp_path / "l.png"
    Image.fromarray(tiny_cs.train_ids(2)).save(p)
    truncate(str(p), keep=0.8)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(DatasetError, match=r"l\.png cannot be decoded"):
        read_label(str(p))
