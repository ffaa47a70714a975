"""The figure tool (seethroughnet.experiments.plot_cpp_targets behind tools/plot_cpp_targets.py,
SeeThroughNet Figs. 2-3) writes readable PNGs."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seethroughnet.experiments import plot_cpp_targets as tool

REPO = Path(__file__).resolve().parents[2]
CAMVID = (REPO / ".." / "shared" / "data" / "camvid").resolve()


def _check_png(path):
    assert os.path.isfile(path)
    with Image.open(path) as img:
        img.load()
        assert img.format == "PNG"
        assert img.size[0] > 100 and img.size[1] > 100
        arr = np.asarray(img.convert("RGB"))
    assert arr.std() > 0  # not a blank canvas


def test_synthetic_cityscapes_label_map(tmp_path):
    lab = np.full((64, 96), 0, dtype=np.uint8)  # road
    lab[:20] = 10  # sky
    lab[20:40, 10:50] = 2  # building
    lab[10:60, 70:72] = 5  # a thin pole
    lab[45:55, 30:45] = 13  # car
    lab[60:] = 255  # ignore
    src = tmp_path / "synthetic_labelTrainIds.png"
    Image.fromarray(lab).save(src)
    out = tmp_path / "figs" / "fig2.png"
    assert (
        tool.main([str(src), "--palette", "cityscapes", "--out", str(out), "--region-cells", "4"])
        == 0
    )
    _check_png(out)
    _check_png(tmp_path / "figs" / "fig2_channels.png")
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "fig2.png",
        "fig2_channels.png",
    ]


def test_cpp_colour_of_a_pure_cell_is_its_palette_colour():
    names, table, ignore = tool.palette_array("cityscapes")
    labels = np.array([[0, 5], [255, 18]])
    one_hot = np.eye(len(names) + 1)[np.where(labels == ignore, len(names), labels)].transpose(
        2, 0, 1
    )
    assert np.allclose(
        tool.colour_fractions(one_hot, table), tool.colour_labels(labels, table, ignore)
    )


def test_rejects_colour_label_images(tmp_path):
    src = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(src)
    with pytest.raises(ValueError, match="single-channel"):
        tool.load_label_png(str(src))


@pytest.mark.skipif(not (CAMVID / "trainannot").is_dir(), reason=f"CamVid not found at {CAMVID}")
def test_camvid_annotation(tmp_path):
    src = sorted((CAMVID / "trainannot").glob("*.png"))[0]
    out = tmp_path / "camvid.png"
    chan = tmp_path / "camvid_region.png"
    tool.plot(str(src), "camvid", str(out), str(chan), region=(160, 120))
    _check_png(out)
    _check_png(chan)
