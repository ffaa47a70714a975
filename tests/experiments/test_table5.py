"""The Table 5 study (transfer/table5.py behind transfer/run_table5.py, on the grid runner of
seethroughnet.experiments.grid): resumable grid with recorded failures, the markdown table and
the bar chart; and transfer/train_net.py end to end on a tiny converted dataset (one iteration,
COCO evaluation)."""

import json
import os

import numpy as np
import pytest
from markdown_rows import has_row, row_starting, rows_starting
from PIL import Image

from transfer import table5 as rt
from transfer.table5 import CellError, cell_command, run_grid
from transfer.table5_grid import INITS, METRICS, Cell, gather, plan
from transfer.table5_report import render_chart, render_markdown


def _fake_metrics(cell):
    base = {"imagenet": 20.0, "stn_wo_cpp": 22.0, "stn_cpp": 25.0}[cell.init] - (
        3.0 if cell.mode == "frozen" else 0
    )
    bbox = {
        "AP": base,
        "AP50": base + 20,
        "AP75": base + 1,
        "APs": base / 2,
        "APm": base,
        "APl": base + 10,
    }
    out = {"bbox": bbox}
    if cell.detector == "mask_rcnn":
        out["segm"] = {k: v - 2 for k, v in bbox.items()}
    return {"metrics": out}


def test_grid_resumes_and_records_failures(tmp_path):
    calls = []

    def run(cell, cell_dir):
        calls.append(cell.key)
        assert os.path.isdir(cell_dir)
        if cell == Cell("fcos", "stn_cpp", "frozen"):
            raise RuntimeError("boom: out of memory")
        return _fake_metrics(cell)

    cells = plan()
    assert len(cells) == 18
    recs = run_grid(cells, str(tmp_path), run, render=False)
    assert len(calls) == 18
    failed = recs["fcos/stn_cpp_frozen"]
    assert failed["status"] == "failed" and "boom: out of memory" in failed["error"]
    assert sum(r["status"] == "ok" for r in recs.values()) == 17
    on_disk = json.loads((tmp_path / "fcos" / "stn_cpp_frozen" / "result.json").read_text())
    assert on_disk["status"] == "failed" and on_disk["error"] == "RuntimeError: boom: out of memory"
    calls.clear()
    recs = run_grid(cells, str(tmp_path), run)
    assert calls == []  # nothing redone: failed cells wait for retry_failed
    calls.clear()
    recs = run_grid(
        cells,
        str(tmp_path),
        lambda c, d: calls.append(c.key) or _fake_metrics(c),
        retry_failed=True,
    )
    assert calls == ["fcos/stn_cpp_frozen"]  # only the failed cell is retried
    assert (tmp_path / "table5.md").is_file() and (
        tmp_path / "table5.png"
    ).is_file()  # re-rendered after it
    assert all(r["status"] == "ok" for r in recs.values())


def test_markdown_layout_bold_and_parentheses(tmp_path):
    records = {c: {"status": "ok", **_fake_metrics(c)} for c in plan()}
    records[Cell("faster_rcnn", "imagenet", "frozen")] = {
        "status": "failed",
        "error": "ValueError: bad",
    }
    del records[Cell("fcos", "imagenet", "finetune")]
    md = render_markdown(records, title="## T5")
    lines = md.splitlines()
    assert lines[0] == "## T5"
    box = md[: md.index("**Mask AP (Mask R-CNN)**")]
    header = rows_starting(box, "Detector")[0]  # the first table: box AP, one column per metric
    assert header == ["Detector", "Encoder", "AP", "AP50", "AP75", "AP_s", "AP_m", "AP_l"]
    assert row_starting(box, "Mask R-CNN", "SeeThroughNet w/ CPP")[2] == "**25.0** (**22.0**)"
    assert row_starting(box, "Mask R-CNN", "ImageNet")[2] == "20.0 (17.0)"
    assert row_starting(box, "Faster R-CNN", "ImageNet")[2] == "20.0 (failed)"
    assert row_starting(box, "FCOS", "ImageNet")[2] == "– (17.0)"
    assert "**Mask AP (Mask R-CNN)**" in md
    assert "- `faster_rcnn/imagenet_frozen`: ValueError: bad" in md
    assert "Not run yet: `fcos/imagenet_finetune`" in md


def test_render_from_a_small_results_file(tmp_path):
    # a results folder as the earlier runner left it: cell.json files only (read as results)
    for c in [Cell("mask_rcnn", "stn_cpp", "finetune"), Cell("fcos", "imagenet", "frozen")]:
        d = tmp_path / c.detector / f"{c.init}_{c.mode}"
        d.mkdir(parents=True)
        rec = {"status": "ok", **_fake_metrics(c)}
        rec["metrics"]["bbox"]["APl"] = None  # no large objects: COCOeval's NaN
        (d / "cell.json").write_text(json.dumps(rec))
    assert rt.main(["--out-dir", str(tmp_path), "--render-only", "--title", "smoke"]) == 0
    md = (tmp_path / "table5.md").read_text()
    assert md.startswith("## smoke")
    # nothing to compare: no bold
    assert has_row(md, "Mask R-CNN", "SeeThroughNet w/ CPP", "25.0 (–)") and "n/a" in md
    with Image.open(tmp_path / "table5.png") as im:
        assert im.format == "PNG" and im.size[0] > 600
    render_chart({}, str(tmp_path / "empty.png"))  # nothing to plot is not an error
    assert (tmp_path / "empty.png").is_file()


def test_cell_command_and_missing_weights(tmp_path):
    w = tmp_path / "stn_cpp.pth"
    w.write_bytes(b"x")
    cmd = cell_command(
        Cell("fcos", "stn_cpp", "frozen"),
        str(tmp_path / "c"),
        weights={"stn_cpp": str(w)},
        extra_opts=["SOLVER.MAX_ITER", "3"],
    )
    assert cmd[1:3] == ["-m", "transfer.train_net"] and cmd[4].endswith("fcos_hrnetv2_w48.yaml")
    s = " ".join(cmd)
    assert "SOLVER.MAX_ITER 3" in s and f"MODEL.TRANSFER.ENCODER_WEIGHTS {w}" in s
    assert (
        "MODEL.TRANSFER.ENCODER_INIT seethroughnet" in s
        and "MODEL.TRANSFER.FREEZE_ENCODER True" in s
    )
    with pytest.raises(CellError, match="pass --imagenet-weights"):
        cell_command(Cell("fcos", "imagenet", "frozen"), str(tmp_path), weights={})
    with pytest.raises(CellError, match="--stn-weights .*nope.pth: file not found"):
        cell_command(
            Cell("fcos", "stn_wo_cpp", "frozen"),
            str(tmp_path),
            weights={"stn_wo_cpp": str(tmp_path / "nope.pth")},
        )
    # through the runner: recorded as a failed cell, nothing launched
    runner = rt.subprocess_runner(weights={})
    recs = run_grid(
        [Cell("faster_rcnn", "imagenet", "finetune")], str(tmp_path / "grid"), runner, render=False
    )
    assert "pass --imagenet-weights" in recs["faster_rcnn/imagenet_finetune"]["error"]


def test_cli_refuses_the_removed_keep_failed_flag(tmp_path, capsys):
    assert rt.main(["--out-dir", str(tmp_path / "g"), "--keep-failed", "--render-only"]) == 2
    assert "pass --retry-failed" in capsys.readouterr().err and not (tmp_path / "g").exists()


def test_cli_options_to_config_overrides():
    args = rt.build_parser().parse_args(
        [
            "--smoke",
            "--iters",
            "8",
            "--variant",
            "hrnet_w18_small_v2",
            "--min-size",
            "96",
            "MODEL.FPN.OUT_CHANNELS",
            "32",
        ]
    )
    opts = rt.extra_opts_from_args(args)
    pairs = dict(zip(opts[::2], opts[1::2]))  # later pairs win, as in cfg.merge_from_list
    assert pairs["SOLVER.MAX_ITER"] == "8" and pairs["SOLVER.STEPS"] == "(6,)"
    assert (
        pairs["MODEL.HRNET.VARIANT"] == "hrnet_w18_small_v2"
        and pairs["INPUT.MIN_SIZE_TEST"] == "96"
    )
    assert pairs["MODEL.DEVICE"] == "cpu" and pairs["MODEL.FPN.OUT_CHANNELS"] == "32"


# ----------------------------------------------------------------------------- train_net end to end
def _tiny_cityscapes(root, n_train=2, n_val=1, h=64, w=128):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            stem = f"tiny_{i:06d}_000019"
            inst = np.full((h, w), 7, np.int32)
            img = np.full((h, w, 3), 90, np.uint8)
            for k, (lid, color) in enumerate([(26, (0, 0, 142)), (24, (220, 20, 60))]):
                y0, x0 = int(rng.integers(0, h - 24)), int(rng.integers(0, w - 40))
                inst[y0 : y0 + 20, x0 : x0 + 30 + 5 * k] = lid * 1000 + k
                img[y0 : y0 + 20, x0 : x0 + 30 + 5 * k] = color
            for sub, arr, suffix in (
                ("leftImg8bit", img, "_leftImg8bit.png"),
                ("gtFine", inst.astype(np.uint16), "_gtFine_instanceIds.png"),
            ):
                d = root / sub / split / "tiny"
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(d / f"{stem}{suffix}")


@pytest.mark.slow
def test_train_net_end_to_end_one_iteration(tmp_path):
    pytest.importorskip("seethroughnet.nn.hrnet")
    import torch

    from seethroughnet.nn.hrnet import HRNetV2Encoder
    from transfer.cityscapes_to_coco import convert_cityscapes
    from transfer.train_net import INIT_REPORT_FILE, RESULTS_FILE, cli

    root = tmp_path / "cityscapes"
    _tiny_cityscapes(root)
    convert_cityscapes(str(root), ["train", "val"], progress=False)
    torch.manual_seed(0)
    enc = HRNetV2Encoder("hrnet_w18_small_v2")
    ckpt = tmp_path / "stn.pth"
    torch.save({"model": {"sem_seg.encoder." + k: v for k, v in enc.state_dict().items()}}, ckpt)
    out = tmp_path / "out"
    opts = [o for pair in zip(rt.SMOKE_OPTS[::2], rt.SMOKE_OPTS[1::2]) for o in pair]
    cli(
        [
            "--config-file",
            os.path.join(rt.HERE, "configs", "faster_rcnn_hrnetv2_w48.yaml"),
            *opts,
            "MODEL.HRNET.VARIANT",
            "hrnet_w18_small_v2",
            "MODEL.TRANSFER.ENCODER_INIT",
            "seethroughnet",
            "MODEL.TRANSFER.ENCODER_WEIGHTS",
            str(ckpt),
            "MODEL.TRANSFER.FREEZE_ENCODER",
            "True",
            "SOLVER.MAX_ITER",
            "1",
            "SOLVER.STEPS",
            "()",
            "DATASETS.CITYSCAPES_ROOT",
            str(root),
            "INPUT.MIN_SIZE_TRAIN",
            "(64,)",
            "INPUT.MIN_SIZE_TEST",
            "64",
            "OUTPUT_DIR",
            str(out),
        ]
    )
    res = json.loads((out / RESULTS_FILE).read_text())
    assert set(res["metrics"]) == {"bbox"} and set(res["metrics"]["bbox"]) == set(METRICS)
    assert (
        res["encoder_init"]["prefix"] == "sem_seg.encoder."
        and res["encoder_init"]["frozen"] is True
    )
    assert json.loads((out / INIT_REPORT_FILE).read_text())["loaded"] == len(enc.state_dict())
    # --eval-only: everything from MODEL.WEIGHTS, no encoder checkpoint needed
    cli(
        [
            "--config-file",
            os.path.join(rt.HERE, "configs", "faster_rcnn_hrnetv2_w48.yaml"),
            "--eval-only",
            *opts,
            "MODEL.HRNET.VARIANT",
            "hrnet_w18_small_v2",
            "MODEL.WEIGHTS",
            str(out / "model_final.pth"),
            "DATASETS.CITYSCAPES_ROOT",
            str(root),
            "INPUT.MIN_SIZE_TEST",
            "64",
            "OUTPUT_DIR",
            str(tmp_path / "eval"),
        ]
    )
    ev = json.loads((tmp_path / "eval" / RESULTS_FILE).read_text())
    assert ev["mode"] == "eval" and set(ev["metrics"]["bbox"]) == set(METRICS)


def test_missing_converted_json_is_a_clear_error(tmp_path):
    from transfer.data import DatasetMissingError, check_datasets, register_cityscapes_coco

    names = register_cityscapes_coco(str(tmp_path / "cs"), splits=("val",))
    assert list(names) == ["cityscapes_coco_val"]
    with pytest.raises(
        DatasetMissingError,
        match=r"instancesonly_gtFine_val\.json does not exist; .*"
        r"python -m transfer\.convert_cityscapes_to_coco --root .*cs --splits val",
    ):
        check_datasets(["cityscapes_coco_val", "coco_2017_val"])


# ------------------------------------------------------------------ encoder checks, seeds, resume
def _stn_run(tmp_path, name, aux_loss, config=True):
    d = tmp_path / name
    d.mkdir()
    ckpt = d / "model_final.pth"
    ckpt.write_bytes(name.encode() * 100)
    if config:
        (d / "config.yaml").write_text(
            f"MODEL:\n  DEVICE: cpu\n  SEE_THROUGH:\n    AUX_LOSS: {aux_loss}\n    CE_WEIGHT: "
            "1.0\nSEED: -1\n"
        )
    return str(ckpt)


def test_runner_refuses_swapped_unknown_and_unverifiable_encoders(tmp_path, capsys):
    on = _stn_run(tmp_path, "cpp_on", "cpp_kl")
    off = _stn_run(tmp_path, "cpp_off", "upsample_ce")
    near = _stn_run(tmp_path, "cpp_off_nearest", "nearest_ce")
    odd = _stn_run(tmp_path, "odd", "kl_cpp")
    bare = _stn_run(tmp_path, "bare", None, config=False)
    ok = rt.check_encoders({"stn_wo_cpp": off, "stn_cpp": on}, INITS)
    assert ok["stn_cpp"]["aux_loss"] == "cpp_kl" and ok["stn_wo_cpp"]["cpp"] is False
    assert (
        rt.check_encoders({"stn_wo_cpp": near, "stn_cpp": on}, INITS)["stn_wo_cpp"]["aux_loss"]
        == "nearest_ce"
    )
    with pytest.raises(
        rt.EncoderCheckError,
        match=r"--stn-weights .*cpp_on/model_final\.pth: .*cpp_on/config\.yaml has "
        r"MODEL\.SEE_THROUGH\.AUX_LOSS 'cpp_kl' \(CPP on\).*WITHOUT CPP; swapped",
    ):
        rt.check_encoders({"stn_wo_cpp": on, "stn_cpp": off}, INITS)
    with pytest.raises(
        rt.EncoderCheckError,
        match=r"--stn-cpp-weights .*odd/model_final\.pth: .*'kl_cpp', which is neither",
    ):
        rt.check_encoders({"stn_wo_cpp": off, "stn_cpp": odd}, INITS)
    with pytest.raises(
        rt.EncoderCheckError, match=r"bare/model_final\.pth: no config\.yaml beside it"
    ):
        rt.check_encoders({"stn_cpp": bare}, ["stn_cpp"])
    with pytest.raises(rt.EncoderCheckError, match="same file"):
        rt.check_encoders({"stn_wo_cpp": on, "stn_cpp": on}, ["imagenet"])
    # through the CLI: nothing is run and nothing written
    out = tmp_path / "grid"
    assert rt.main(["--out-dir", str(out), "--stn-weights", on, "--stn-cpp-weights", off]) == 2
    assert "swapped --stn-weights and --stn-cpp-weights" in capsys.readouterr().err
    assert not out.exists()


def test_cell_records_encoder_sha256_and_is_not_resumed_with_another_encoder(tmp_path):
    import hashlib

    on = _stn_run(tmp_path, "cpp_on", "cpp_kl")
    other = _stn_run(tmp_path, "cpp_on_2", "cpp_kl")
    cell = Cell("fcos", "stn_cpp", "finetune")
    d = tmp_path / "cell"
    d.mkdir()
    info = rt._guard_encoder(cell, str(d), on)
    with open(on, "rb") as f:
        assert info["sha256"] == hashlib.sha256(f.read()).hexdigest()
    assert json.loads((d / rt.ENCODER_FILE).read_text())["sha256"] == info["sha256"]
    assert (
        rt._guard_encoder(cell, str(d), other)["sha256"] != info["sha256"]
    )  # no checkpoint yet: fine
    rt._guard_encoder(cell, str(d), on)
    (d / "last_checkpoint").write_text("model_0000001.pth")
    rt._guard_encoder(cell, str(d), on)  # same file: resumable
    with pytest.raises(
        CellError,
        match=r"trained from .*cpp_on/model_final\.pth .*not from "
        r".*cpp_on_2/model_final\.pth.*delete",
    ):
        rt._guard_encoder(cell, str(d), other)
    with pytest.raises(rt.EncoderCheckError, match="WITHOUT CPP"):
        rt._guard_encoder(Cell("fcos", "stn_wo_cpp", "finetune"), str(d), on)


def test_seeds_give_mean_and_sample_std(tmp_path):
    cells = plan(["fcos"], ["imagenet", "stn_cpp"], ["finetune"], seeds=3)
    assert [c.key for c in cells] == [
        "fcos/imagenet_finetune",
        "fcos/imagenet_finetune_seed1",
        "fcos/imagenet_finetune_seed2",
        "fcos/stn_cpp_finetune",
        "fcos/stn_cpp_finetune_seed1",
        "fcos/stn_cpp_finetune_seed2",
    ]
    ap = {
        ("imagenet", 0): 20.0,
        ("imagenet", 1): 21.0,
        ("imagenet", 2): 23.0,
        ("stn_cpp", 0): 24.0,
        ("stn_cpp", 1): 26.0,
    }  # seed 2 of stn_cpp fails

    def run(cell, cell_dir):
        if (cell.init, cell.seed) not in ap:
            raise RuntimeError("diverged")
        return {
            "metrics": {"bbox": {m: ap[cell.init, cell.seed] for m in METRICS}},
            "encoder_sha256": "ab" * 32,
        }

    run_grid(cells, str(tmp_path), run, render=False)
    cmd = cell_command(
        cells[2], str(tmp_path / "x"), weights={"imagenet": _stn_run(tmp_path, "w", "cpp_kl")}
    )
    assert cmd[cmd.index("SEED") + 1] == "2" and "--resume" in cmd
    records = gather(str(tmp_path))  # seeds found on disk
    assert len([c for c in records if c.detector == "fcos"]) == 6
    md = render_markdown(records)
    mean_i, std_i = np.mean([20, 21, 23]), np.std([20, 21, 23], ddof=1)
    mean_s, std_s = np.mean([24, 26]), np.std([24, 26], ddof=1)
    row = rows_starting(md, "FCOS", "ImageNet")[0]  # the first table: box AP
    assert row[2] == f"{mean_i:.1f} ± {std_i:.1f} (–)"
    row = rows_starting(md, "FCOS", "SeeThroughNet w/ CPP")[0]
    assert row[2] == f"**{mean_s:.1f} ± {std_s:.1f}** (–)"
    assert "mean ± sample std over up to 3 seeds" in md
    assert "- `fcos/stn_cpp_finetune_seed2`: RuntimeError: diverged" in md


@pytest.mark.slow
def test_killed_cell_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    """A cell that dies after its checkpoint at iteration 1 is re-run by the grid and continues
    at iteration 2 with the checkpoint's weights (train_net in-process, the runner's command)."""
    import torch
    from detectron2.engine import HookBase

    from seethroughnet.nn.hrnet import HRNetV2Encoder
    from transfer import train_net
    from transfer.cityscapes_to_coco import convert_cityscapes

    root = tmp_path / "cityscapes"
    _tiny_cityscapes(root)
    convert_cityscapes(str(root), ["train", "val"], progress=False)
    torch.manual_seed(0)
    imagenet = tmp_path / "imagenet.pth"
    torch.save(
        {
            k[len("body.") :]: v
            for k, v in HRNetV2Encoder("hrnet_w18_small_v2").state_dict().items()
        },
        imagenet,
    )
    opts = [o for pair in zip(rt.SMOKE_OPTS[::2], rt.SMOKE_OPTS[1::2]) for o in pair] + [
        "MODEL.HRNET.VARIANT",
        "hrnet_w18_small_v2",
        "SOLVER.MAX_ITER",
        "4",
        "SOLVER.STEPS",
        "()",
        "SOLVER.CHECKPOINT_PERIOD",
        "2",
        "DATASETS.CITYSCAPES_ROOT",
        str(root),
        "INPUT.MIN_SIZE_TRAIN",
        "(64,)",
        "INPUT.MIN_SIZE_TEST",
        "64",
    ]
    events = {"start_iter": [], "killed": 0, "saved": None}

    class Kill(HookBase):
        def after_step(self):
            if self.trainer.iter == 2:
                ckpt = os.path.join(self.trainer.cfg.OUTPUT_DIR, "model_0000001.pth")
                events["saved"] = torch.load(ckpt, map_location="cpu", weights_only=False)["model"]
                events["killed"] += 1
                raise KeyboardInterrupt("killed")

    orig_hooks, orig_resume = train_net.Trainer.build_hooks, train_net.Trainer.resume_or_load

    def resume_or_load(self, resume=True):
        orig_resume(self, resume)
        events["start_iter"].append(self.start_iter)
        if self.start_iter:
            state = self.model.state_dict()
            assert all(torch.equal(state[k], v) for k, v in events["saved"].items())

    monkeypatch.setattr(train_net.Trainer, "resume_or_load", resume_or_load)
    monkeypatch.setattr(train_net.Trainer, "build_hooks", lambda self: orig_hooks(self) + [Kill()])

    def run_cell(cell, cell_dir):
        cmd = cell_command(cell, cell_dir, weights={"imagenet": str(imagenet)}, extra_opts=opts)
        try:
            train_net.cli(cmd[3:])
        except KeyboardInterrupt as e:  # what a killed subprocess looks like to the grid
            raise CellError(f"interrupted: {e}") from None
        return {
            "metrics": json.loads(
                (
                    tmp_path / "g" / "faster_rcnn" / "imagenet_finetune" / "transfer_results.json"
                ).read_text()
            )["metrics"]
        }

    cells = [Cell("faster_rcnn", "imagenet", "finetune")]
    rec = run_grid(cells, str(tmp_path / "g"), run_cell, render=False)[
        "faster_rcnn/imagenet_finetune"
    ]
    assert (
        rec["status"] == "failed" and "interrupted" in rec["error"] and events["start_iter"] == [0]
    )
    monkeypatch.setattr(train_net.Trainer, "build_hooks", orig_hooks)
    rec = run_grid(cells, str(tmp_path / "g"), run_cell, render=False, retry_failed=True)[
        "faster_rcnn/imagenet_finetune"
    ]
    assert rec["status"] == "ok" and events["start_iter"] == [0, 2] and events["killed"] == 1
    assert set(rec["metrics"]["bbox"]) == set(METRICS)
