"""The synthetic generator's writer (seethroughnet/data/synthetic/writer.py): the manifest makes
a re-run with the same parameters a no-op, refuses other parameters and foreign folders unless
``--overwrite``, completes an interrupted run, and the command line's defaults and refusals."""

import json
import logging
import os

import pytest
from markdown_rows import rows_starting
from PIL import Image

from seethroughnet.data import synthetic as sc

from synthetic_files import all_files, read_bytes  # tests/data/synthetic_files.py (a helper)

# --- manifest: idempotence and refusals ---------------------------------------------------------
TINY = dict(
    seed=1, height=64, width=128, num_images={"train": 1, "val": 1, "test": 1}, progress=False
)


def _mtimes(root):
    return {rel: os.stat(p).st_mtime_ns for rel, p in all_files(root).items()}


def test_rerun_with_same_parameters_does_nothing(tmp_path, caplog):
    root = str(tmp_path / "cs")
    m1 = sc.generate_synthetic_cityscapes(root, **TINY)
    before = _mtimes(root)
    with caplog.at_level(logging.INFO, logger=sc.__name__):
        m2 = sc.generate_synthetic_cityscapes(root, **TINY)
        m3 = sc.generate_synthetic_cityscapes(
            root, overwrite=True, **TINY
        )  # same content: still nothing to do
    assert m1 == m2 == m3 and _mtimes(root) == before
    assert "nothing to do" in caplog.text
    with open(os.path.join(root, sc.MANIFEST_NAME)) as f:
        on_disk = json.load(f)
    assert on_disk == m1 and on_disk["complete"] is True
    assert on_disk["params"] == {
        "seed": 1,
        "height": 64,
        "width": 128,
        "num_images": {"train": 1, "val": 1, "test": 1},
        "test_gt": "dummy",
        "generator_version": sc.GENERATOR_VERSION,
    }


def test_other_parameters_are_refused_unless_overwrite(tmp_path):
    root = str(tmp_path / "cs")
    sc.generate_synthetic_cityscapes(root, **TINY)
    other = dict(TINY, num_images={"train": 2, "val": 1, "test": 1})
    with pytest.raises(sc.SyntheticDatasetError, match="other parameters.*--overwrite") as e:
        sc.generate_synthetic_cityscapes(root, **other)
    assert os.path.join(root, sc.MANIFEST_NAME) in str(e.value)
    smaller = dict(TINY, num_images={"train": 1})
    m = sc.generate_synthetic_cityscapes(root, overwrite=True, **smaller)
    assert m["params"]["num_images"] == {"train": 1, "val": 0, "test": 0}
    # the old val/test files are gone: a loader sees exactly the new dataset
    assert set(all_files(root)) == {sc.MANIFEST_NAME} | {
        os.path.relpath(p, root) for p in sc.sample_paths(root, "train", 0).values()
    }


def test_foreign_folder_is_refused_unless_overwrite(tmp_path):
    root = tmp_path / "real_cityscapes"
    stray = root / "leftImg8bit" / "train" / "aachen" / "aachen_000000_000019_leftImg8bit.png"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"not ours")
    (root / "README").write_text("keep me")
    with pytest.raises(
        sc.SyntheticDatasetError, match=r"not empty and has no synthetic_cityscapes\.json"
    ) as e:
        sc.generate_synthetic_cityscapes(str(root), **TINY)
    assert str(root) in str(e.value) and stray.exists()
    sc.generate_synthetic_cityscapes(str(root), overwrite=True, **TINY)
    assert not stray.exists() and (root / "README").read_text() == "keep me"
    assert (root / sc.MANIFEST_NAME).exists()


def test_interrupted_run_is_completed_and_missing_files_regenerated(tmp_path):
    root = str(tmp_path / "cs")
    sc.generate_synthetic_cityscapes(root, **TINY)
    reference = {rel: read_bytes(p) for rel, p in all_files(root).items()}
    mpath = os.path.join(root, sc.MANIFEST_NAME)
    with open(mpath) as f:
        m = json.load(f)
    m["complete"] = False  # as left by a run that was killed half-way
    with open(mpath, "w") as f:
        json.dump(m, f)
    open(sc.sample_paths(root, "val", 0)["image"] + ".tmp123", "wb").close()  # its temporary file
    os.remove(sc.sample_paths(root, "train", 0)["labelIds"])
    sc.generate_synthetic_cityscapes(root, **TINY)
    assert {rel: read_bytes(p) for rel, p in all_files(root).items()} == reference
    os.remove(sc.sample_paths(root, "test", 0)["color"])  # complete manifest, but a file is missing
    sc.generate_synthetic_cityscapes(root, **TINY)
    assert {rel: read_bytes(p) for rel, p in all_files(root).items()} == reference


def test_bad_manifest_and_bad_parameters_give_clear_errors(tmp_path):
    root = tmp_path / "cs"
    root.mkdir()
    (root / sc.MANIFEST_NAME).write_text("{not json")
    with pytest.raises(sc.SyntheticDatasetError, match="synthetic_cityscapes.json: not a readable"):
        sc.generate_synthetic_cityscapes(str(root), **TINY)
    (root / sc.MANIFEST_NAME).write_text('{"hello": 1}')
    with pytest.raises(sc.SyntheticDatasetError, match="not a manifest written by"):
        sc.generate_synthetic_cityscapes(str(root), **TINY)
    sc.generate_synthetic_cityscapes(str(root), overwrite=True, **TINY)  # --overwrite replaces it
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(sc.SyntheticDatasetError, match="not a directory"):
        sc.generate_synthetic_cityscapes(str(afile), **TINY)
    for bad, match in (
        (dict(seed=-1), "seed"),
        (dict(height=8), "height"),
        (dict(width=10.5), "width"),
        (dict(num_images={"train": -1}), "num_images"),
        (dict(num_images={"dev": 1}), "unknown split"),
        (dict(test_gt="maybe"), "test_gt"),
    ):
        with pytest.raises(ValueError, match=match):
            sc.generate_synthetic_cityscapes(str(tmp_path / "new"), **dict(TINY, **bad))
    assert not (tmp_path / "new").exists()


def test_cli_defaults_refusal_preview_and_stats(datasets_script, tmp_path, monkeypatch, capsys):
    cli = datasets_script("prepare_synthetic_cityscapes")
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    assert cli.default_output() == os.path.join("datasets", "cityscapes")
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "d2"))
    assert cli.default_output() == str(tmp_path / "d2" / "cityscapes")
    preview = tmp_path / "figs" / "preview.png"
    rc = cli.main(
        [
            "--height",
            "64",
            "--width",
            "128",
            "--num-train",
            "2",
            "--num-val",
            "1",
            "--num-test",
            "0",
            "--no-progress",
            "--stats",
            "--preview",
            str(preview),
            "--preview-count",
            "2",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert rows_starting(out, "road", "0") and "preview written" in out
    grid = Image.open(preview)
    assert grid.size == (2 * 128 + 4, 2 * 64 + 4)
    rc = cli.main(["--height", "64", "--width", "128", "--num-train", "3", "--no-progress"])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err
