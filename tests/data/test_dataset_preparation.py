"""The preparation scripts of Pascal VOC, Pascal Context and NYUv2 (``datasets/prepare_*.py``)
and the registrations that read what they write (``seethroughnet.data.datasets.pascal_voc``,
``.pascal_context``, ``.nyuv2``, together in ``.more_datasets``), on tiny fake datasets."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("detectron2", reason="detectron2 is not installed")
from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402

from seethroughnet.data.datasets.more_datasets import (  # noqa: E402
    MORE_DATASETS,
    register_more_datasets,
)

pytestmark = pytest.mark.usefixtures("isolated_validation_cache")


@pytest.fixture
def raw_datasets(tmp_path):
    """The three datasets as unpacked from their archives: one image per split."""
    rgb = np.zeros((8, 8, 3), np.uint8)
    voc = tmp_path / "VOCdevkit/VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "ImageSets/Segmentation"):
        (voc / d).mkdir(parents=True)
    lab = np.full((8, 8), 255, np.uint8)
    lab[:4] = 15
    for i in ("a", "v"):  # a: train (and train_aug), v: val
        Image.fromarray(rgb).save(voc / f"JPEGImages/{i}.jpg")
        Image.fromarray(lab).save(voc / f"SegmentationClass/{i}.png")
    Image.fromarray(lab).save(voc / "SegmentationClassAug/a.png")
    for s, i in (("train", "a"), ("val", "v"), ("train_aug", "a")):
        (voc / f"ImageSets/Segmentation/{s}.txt").write_text(f"{i}\n")
    ctx = tmp_path / "VOCdevkit/VOC2010"
    for d in ("JPEGImages", "SegmentationClassContext", "ImageSets/SegmentationContext"):
        (ctx / d).mkdir(parents=True)
    Image.fromarray(rgb).save(ctx / "JPEGImages/b.jpg")
    raw = np.zeros((8, 8), np.uint8)
    raw[:, 4:] = 59
    Image.fromarray(raw).save(ctx / "SegmentationClassContext/b.png")
    for s in ("train", "val"):
        (ctx / f"ImageSets/SegmentationContext/{s}.txt").write_text("b\n")
    nyu = tmp_path / "nyuv2"
    for s in ("train", "test"):
        (nyu / "image" / s).mkdir(parents=True)
        (nyu / "label40" / s).mkdir(parents=True)
        Image.fromarray(rgb).save(nyu / "image" / s / "0001.png")
        label40 = np.where(raw == 59, 40, 0).astype(np.uint8)
        Image.fromarray(label40).save(nyu / "label40" / s / "0001.png")
    return tmp_path


def test_prepare_register_and_load(datasets_script, raw_datasets):
    root = str(raw_datasets)
    voc = datasets_script("prepare_pascal_voc").prepare_pascal_voc(root)
    ctx = datasets_script("prepare_pascal_context").prepare_pascal_context(root)
    nyu = datasets_script("prepare_nyuv2").prepare_nyuv2(root)
    assert len(voc) == 3 and len(ctx) == 4 and len(nyu) == 2  # Context: 60 and 59 pairs files
    context59 = raw_datasets / "VOCdevkit/VOC2010/SegmentationClassContext59/b.png"
    red = np.asarray(Image.open(context59))
    assert set(np.unique(red)) == {58, 255} and (red[:, :4] == 255).all()
    reduced = np.asarray(Image.open(raw_datasets / "nyuv2/label40_reduced/test/0001.png"))
    assert set(np.unique(reduced)) == {39, 255}
    assert (raw_datasets / "nyuv2/cpp_pairs_train.txt").read_text() == (
        "image/train/0001.png label40_reduced/train/0001.png\n"
    )

    names = register_more_datasets(root)
    assert set(names) == set(MORE_DATASETS)
    try:
        for name, k in (
            ("voc2012_sem_seg_train_aug", 21),
            ("pascal_context59_sem_seg_val", 59),
            ("pascal_context60_sem_seg_val", 60),
            ("nyuv2_40_sem_seg_test", 40),
        ):
            meta = MetadataCatalog.get(name)
            assert len(meta.stuff_classes) == k and meta.ignore_label == 255
            assert meta.evaluator_type == "sem_seg"
            assert len(DatasetCatalog.get(name)) == 1
    finally:
        for name in names:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        register_more_datasets()  # back to $DETECTRON2_DATASETS


def test_scripts_run_from_the_command_line_and_say_what_is_missing(
    datasets_script, raw_datasets, tmp_path, capsys
):
    cli = datasets_script("prepare_nyuv2")
    assert cli.main(["--root", str(raw_datasets)]) == 0
    assert "cpp_pairs_test.txt" in capsys.readouterr().out
    empty = tmp_path / "empty"
    assert cli.main(["--root", str(empty)]) == 2
    assert f"{empty / 'nyuv2' / 'label40'} does not exist" in capsys.readouterr().err
    assert datasets_script("prepare_pascal_voc").main(["--root", str(empty)]) == 2
    assert "ImageSets/Segmentation" in capsys.readouterr().err


def test_missing_pairs_file_names_the_preparationdatasets_script(tmp_path):
    names = register_more_datasets(str(tmp_path))
    try:
        with pytest.raises(ValueError, match=r"python datasets/prepare_pascal_context\.py"):
            DatasetCatalog.get("pascal_context59_sem_seg_train")
    finally:
        for name in names:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        register_more_datasets()
