"""Nothing stale or half-written is taken for a result (issue #12): the export's old zip goes
before the first new PNG, unwritable folders, unknown HRNet variants and undecodable images are
named, the evaluation's labelIds are validated before training, the converter handles the
synthetic set's degenerate polygons and writes ordinary permissions, Table 5 files are atomic."""

import json
import os
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("detectron2")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(
    REPO, "projects/SeeThroughNet/configs/Cityscapes-Synthetic/seethroughnet_W18small_demo.yaml"
)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.fixture
def synthetic(tmp_path, monkeypatch):
    """A small synthetic Cityscapes (its own copy: tests damage it), registered."""
    from seethroughnet.data.datasets import register_all
    from seethroughnet.data.synthetic import generate_synthetic_cityscapes

    root = tmp_path / "d2"
    generate_synthetic_cityscapes(
        str(root / "cityscapes"),
        seed=3,
        height=64,
        width=128,
        num_images={"train": 2, "val": 3, "test": 1},
        progress=False,
    )
    monkeypatch.setenv("DETECTRON2_DATASETS", str(root))
    monkeypatch.setenv("SEETHROUGHNET_CACHE_DIR", str(tmp_path / "cache"))
    register_all()
    yield root / "cityscapes"
    monkeypatch.undo()
    register_all()


# ------------------------------------------------------------------------------------- export
class _Model(torch.nn.Module):
    """Predicts class 0 everywhere; raises at batch ``fail_at`` (an export killed part-way)."""

    def __init__(self, fail_at=None):
        super().__init__()
        self.fail_at, self.calls = fail_at, 0

    def forward(self, batch):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("killed")
        return [{"sem_seg": torch.zeros(19, 4, 4)} for _ in batch]


def _loader(n):
    return [[{"file_name": f"/x/city/city_000000_{i:06d}_leftImg8bit.png"}] for i in range(n)]


def test_overwrite_removes_the_old_zip_before_the_first_new_png(tmp_path):
    from seethroughnet.experiments.export import export_predictions

    out = tmp_path / "submission"
    export_predictions(_Model(), _loader(3), str(out), progress=False)
    zip_path = tmp_path / "submission.zip"
    assert zip_path.exists() and len(zipfile.ZipFile(zip_path).namelist()) == 3
    with pytest.raises(KeyboardInterrupt):
        export_predictions(_Model(fail_at=2), _loader(3), str(out), overwrite=True, progress=False)
    assert (
        not zip_path.exists()
    ), "the earlier model's zip is still there after an interrupted --overwrite"
    pngs = [f for _, _, fs in os.walk(out) for f in fs]
    assert pngs == ["city_000000_000000_pred_labelIds.png"]  # only the new, complete PNG
    # a lone old zip is a used target too
    export_predictions(_Model(), _loader(1), str(out), overwrite=True, progress=False)
    for p in out.rglob("*.png"):
        p.unlink()
    with pytest.raises(FileExistsError, match=r"submission\.zip already exists.*--overwrite"):
        export_predictions(_Model(), _loader(1), str(out), progress=False)


def test_overwrite_removes_only_what_an_export_wrote(tmp_path):
    """--overwrite deletes the earlier export's result PNGs, its zip and the temporary files of a
    killed write, never a file the user put into the folder (issue #25)."""
    from seethroughnet.experiments.export import export_predictions

    out = tmp_path / "submission"
    export_predictions(_Model(), _loader(3), str(out), progress=False)
    city = out / "city"
    stale = city / ".city_000000_000009_pred_labelIds.png.k1ll3d.part.png"  # a killed write's
    stale.write_bytes(b"half a png")
    user = {
        out / "notes.png": b"user 1",
        out / "README.txt": b"user 2",
        city / "city_000000_000000_leftImg8bit.png": b"user 3",  # an input image kept beside
        city / "my_overlay.png": b"user 4",
        out / "other" / "x_pred_labelIds.png": b"user 5",  # not in a folder named as its city
    }
    for path, data in user.items():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
    written = export_predictions(_Model(), _loader(1), str(out), overwrite=True, progress=False)
    for path, data in user.items():
        assert path.read_bytes() == data, f"--overwrite removed the user's file {path}"
    results = sorted(p.name for p in city.glob("*_pred_labelIds.png"))
    assert results == ["city_000000_000000_pred_labelIds.png"], results  # the old 000001, 000002
    assert not stale.exists()
    assert written == [str(city / "city_000000_000000_pred_labelIds.png")]
    assert zipfile.ZipFile(str(out) + ".zip").namelist() == [
        "city/city_000000_000000_pred_labelIds.png"
    ]


def test_unwritable_export_folder_is_named(tmp_path):
    from seethroughnet.experiments.export import export_predictions

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    target = blocker / "submission"  # cannot be created (works as root, unlike chmod)
    with pytest.raises(
        PermissionError,
        match=r"the output folder .*a_file/submission is not a writable folder.*--output",
    ):
        export_predictions(_Model(), _loader(1), str(target), progress=False)


def test_unwritable_output_dir_stops_train_net_at_the_start(tmp_path):
    from detectron2.engine import default_argument_parser

    from seethroughnet.engine import setup

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    args = default_argument_parser().parse_args(
        ["--config-file", DEMO, "OUTPUT_DIR", str(blocker / "run")]
    )
    with pytest.raises(PermissionError, match=r"OUTPUT_DIR .*a_file/run is not a writable folder"):
        setup(args)


# --------------------------------------------------------------------------- model and data
def test_unknown_hrnet_variant_names_the_key_and_the_choices():
    from detectron2.modeling import build_backbone

    import seethroughnet.modeling  # noqa: F401  (registers build_hrnetv2_backbone)
    from seethroughnet.config import build_config

    cfg = build_config(
        DEMO, ["MODEL.BACKBONE.NAME", "build_hrnetv2_backbone", "MODEL.HRNET.VARIANT", "hrnet_w19"]
    )
    with pytest.raises(
        ValueError, match=r"'hrnet_w19' \(MODEL.HRNET.VARIANT.*hrnet_w48.*hrnet_w18_small_v2"
    ):
        build_backbone(cfg)


def test_bad_val_label_ids_stop_training_before_the_first_step(synthetic, tmp_path):
    """cityscapesscripts' evaluation reads the val *_gtFine_labelIds.png; a bad id there must
    stop the run at the start, naming the file, not after training."""
    from seethroughnet.config import build_config
    from seethroughnet.data.datasets import DatasetError
    from seethroughnet.engine import Trainer

    (bad,) = sorted(synthetic.glob("gtFine/val/*/*_gtFine_labelIds.png"))[:1]
    arr = np.asarray(Image.open(bad)).copy()
    arr[0, 0] = 40  # not a Cityscapes labelId
    Image.fromarray(arr).save(bad)
    cfg = build_config(
        DEMO,
        [
            "OUTPUT_DIR",
            str(tmp_path / "out"),
            "SOLVER.MAX_ITER",
            "1",
            "DATALOADER.NUM_WORKERS",
            "0",
            "INPUT.CROP.SIZE",
            "(64, 128)",
            "SOLVER.IMS_PER_BATCH",
            "1",
        ],
    )
    cfg.freeze()
    trainer = Trainer(cfg)
    steps = []
    trainer.run_step = lambda: steps.append(1)
    with pytest.raises(DatasetError, match=os.path.basename(bad) + r".*holds value 40"):
        trainer.train()
    assert steps == []


def test_undecodable_image_is_named_in_header_mode(synthetic, monkeypatch):
    from detectron2.data import DatasetCatalog

    from seethroughnet.config import build_config
    from seethroughnet.data.dataset_mappers import SemanticSegmentationMapper
    from seethroughnet.data.datasets import DatasetError

    monkeypatch.setenv("SEETHROUGHNET_VALIDATE", "header")
    cfg = build_config(DEMO, ["INPUT.CROP.SIZE", "(64, 128)"])
    d = DatasetCatalog.get("cityscapes_fine_sem_seg_train")[0]
    data = open(d["file_name"], "rb").read()
    open(d["file_name"], "wb").write(data[: len(data) // 2])  # header intact, pixels cut
    assert DatasetCatalog.get("cityscapes_fine_sem_seg_train")  # header mode does not decode
    mapper = SemanticSegmentationMapper(cfg, is_train=True)
    with pytest.raises(
        DatasetError, match=os.path.basename(d["file_name"]) + r" cannot be decoded"
    ):
        mapper(d)


# ------------------------------------------------------------------------------ converter
def test_converter_polygons_source_on_the_synthetic_set_with_umask_permissions(synthetic, tmp_path):
    out = tmp_path / "coco"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "transfer.convert_cityscapes_to_coco",
            "--root",
            str(synthetic),
            "--source",
            "polygons",
            "--splits",
            "train",
            "val",
            "--out-dir",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    for split in ("train", "val"):
        path = out / f"instancesonly_gtFine_{split}.json"
        assert json.loads(path.read_text())["annotations"]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~_umask()
    assert sorted(os.listdir(out)) == [
        "instancesonly_gtFine_train.json",
        "instancesonly_gtFine_val.json",
    ]


# ------------------------------------------------------------------------------ Table 5
def test_table5_chart_is_never_half_written(tmp_path, monkeypatch):
    import matplotlib.figure

    from transfer.table5_report import render_chart

    path = tmp_path / "table5.png"
    path.write_bytes(b"old complete chart")
    original = matplotlib.figure.Figure.savefig

    def dies_half_way(self, fname, *a, **k):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG half")
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        render_chart({}, str(path))
    assert path.read_bytes() == b"old complete chart"
    assert os.listdir(tmp_path) == ["table5.png"]
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", original)
    render_chart({}, str(path))
    assert path.read_bytes()[:4] == b"\x89PNG"
