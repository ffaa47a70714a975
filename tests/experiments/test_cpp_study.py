"""seethroughnet.experiments.cpp_study (behind tools/run_cpp_study.py): grid expansion, resume,
failure recording and the renderers (with a fake, instant cell function), plus one real
subprocess cell that fails and the command line run as a subprocess."""

import json
import os
import sys

import pytest
from markdown_rows import has_row, row_starting, rows_starting, table_rows

from seethroughnet.experiments import cpp_study as rs
from seethroughnet.experiments import cpp_study_report as report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CLASSES = ["sky", "road", "car", "pedestrian"]


def _grid(**kw):
    g = {
        "datasets": {
            "toy": {
                "train": "toy_train",
                "test": "toy_val",
                "num_classes": 4,
                "instance_classes": ["car", "pedestrian"],
            }
        },
        "models": {
            "psp": {"config": "a.yaml"},
            "dlv3p": {"config": "b.yaml", "opts": ["SOLVER.MAX_ITER", 3]},
        },
        "variants": {
            "baseline": {"loss": "upsample_ce", "num_heads": 4},
            "cpp": {"loss": "cpp_kl", "num_heads": 4},
        },
        "seeds": [0, 1],
        "table1": {"baseline": "baseline", "cpp": "cpp"},
        "figure5": {
            "model": "psp",
            "dataset": "toy",
            "num_heads": [0, 1, 2, 4],
            "losses": {"upsample": "upsample_ce", "cpp": "cpp_kl"},
            "seeds": [0],
        },
    }
    g.update(kw)
    return g


class FakeLauncher:
    """Deterministic results: CPP helps the instance classes; optional crash / interrupt."""

    def __init__(self, crash=(), interrupt_after=None):
        self.calls = []
        self.crash = set(crash)
        self.interrupt_after = interrupt_after

    def __call__(self, cell, cell_dir):
        if self.interrupt_after is not None and len(self.calls) >= self.interrupt_after:
            raise KeyboardInterrupt
        self.calls.append(cell["id"])
        if cell["id"] in self.crash:
            raise RuntimeError("CUDA out of memory (fake)")
        bonus = 2.0 if cell["loss"] == "cpp_kl" else 0.0
        iou = {
            c: 50.0
            + cell["seed"]
            + (bonus * cell["num_heads"] / 4 if c in ("car", "pedestrian") else 0.0)
            for c in CLASSES
        }
        os.makedirs(cell_dir, exist_ok=True)
        return {"status": "ok", "mIoU": sum(iou.values()) / len(iou), "IoU": iou}


def test_expand_grid_dedups_and_builds_opts():
    cells = rs.expand_grid(_grid())
    ids = [c["id"] for c in cells]
    assert len(ids) == len(set(ids))
    # 2 models x 2 variants x 2 seeds + figure5 extra: h0 (shared), h1, h2 for 2 losses = 5
    assert len(cells) == 8 + 5
    c4 = next(c for c in cells if c["id"] == "psp__toy__cpp_kl_h4__s0")
    assert "figure5:cpp" in c4["tags"] and "variant:cpp" in c4["tags"]
    assert c4["opts"][-8:] == [
        "MODEL.CPP_AUX.ENABLED",
        "True",
        "MODEL.CPP_AUX.NUM_HEADS",
        "4",
        "MODEL.CPP_AUX.LOSS",
        "cpp_kl",
        "SEED",
        "0",
    ]
    h0 = next(c for c in cells if c["num_heads"] == 0)
    assert "False" in h0["opts"] and h0["loss"] == "none"
    d = next(c for c in cells if c["model"] == "dlv3p")
    assert d["opts"][:2] == ["SOLVER.MAX_ITER", "3"] and "('toy_train',)" in d["opts"]


def test_unknown_loss_or_model_in_grid_lists_choices():
    with pytest.raises(ValueError, match="valid choices: upsample_ce, nearest_ce, cpp_kl"):
        rs.expand_grid(_grid(variants={"x": {"loss": "dice", "num_heads": 4}}))
    with pytest.raises(ValueError, match="unknown model 'nope'; valid choices: psp, dlv3p"):
        rs.expand_grid(_grid(figure5={"model": "nope", "dataset": "toy"}))


def test_resume_skips_finished_cells(tmp_path):
    grid = _grid()
    first = FakeLauncher(interrupt_after=5)
    with pytest.raises(KeyboardInterrupt):
        rs.run_grid(grid, str(tmp_path), run_cell=first)
    assert len(first.calls) == 5
    second = FakeLauncher()
    records = rs.run_grid(grid, str(tmp_path), run_cell=second)
    assert not set(first.calls) & set(second.calls)
    assert len(first.calls) + len(second.calls) == len(rs.expand_grid(grid))
    assert all(r["status"] == "ok" for r in records)
    third = FakeLauncher()
    rs.run_grid(grid, str(tmp_path), run_cell=third)
    assert third.calls == []
    assert (tmp_path / first.calls[0] / "result.json").is_file()
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(records) and json.loads(lines[0])["status"] == "ok"


def test_crashing_cell_is_recorded_and_marked_and_retried(tmp_path):
    grid = _grid()
    bad = "dlv3p__toy__cpp_kl_h4__s1"
    records = rs.run_grid(grid, str(tmp_path), run_cell=FakeLauncher(crash=[bad]))
    rec = next(r for r in records if r["id"] == bad)
    assert rec["status"] == "failed" and "out of memory" in rec["error"]
    assert sum(r["status"] == "ok" for r in records) == len(records) - 1
    md = rs.render(grid, str(tmp_path))
    row = row_starting(md, "dlv3p", "toy")
    assert "FAILED: s1" in row[-1] and "1/1" not in row and "2/1" in row
    assert f"`{bad}`" in md and "Failed cells" in md
    # not retried by default, retried with retry_failed
    again = FakeLauncher()
    rs.run_grid(grid, str(tmp_path), run_cell=again)
    assert again.calls == []
    rs.run_grid(grid, str(tmp_path), run_cell=again, retry_failed=True)
    assert again.calls == [bad]


def test_renderers_tables_and_figure(tmp_path):
    grid = _grid()
    rs.run_grid(grid, str(tmp_path), run_cell=FakeLauncher())
    md_path, fig_path = tmp_path / "t.md", tmp_path / "figs" / "f5.png"
    md = rs.render(grid, str(tmp_path), str(md_path), str(fig_path))
    assert md_path.read_text() == md
    assert fig_path.stat().st_size > 1000 and fig_path.read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob("**/*.tmp*"))
    # Table 1: baseline mIoU = 50.5 +- 0.71 (seeds 0, 1), CPP adds 2 on 2 of 4 classes -> +1.00
    row = row_starting(md, "psp", "toy")
    assert "50.50 ± 0.71" in row and "51.50 ± 0.71" in row and "+1.00 ± 0.00" in row
    # Table 2: instance classes +2, the rest 0
    assert has_row(md, "**instance avg**", "", "", "", "+2.00")
    assert has_row(md, "**non-instance avg**", "", "", "", "+0.00")
    assert has_row(md, "car", "yes") and has_row(md, "sky", "")
    # Figure 5 rows: 0, 1, 2, 4 heads; CPP rises with the heads, up-sampling stays flat
    data = report.figure5_data(grid, rs.gather(grid, str(tmp_path)))
    assert [p[0] for p in data["cpp"]] == [0, 1, 2, 4]
    assert [round(p[1], 2) for p in data["cpp"]] == [50.0, 50.25, 50.5, 51.0]
    assert [round(p[1], 2) for p in data["upsample"]] == [50.0] * 4
    assert has_row(md, "4", "50.00 (n=1)", "51.00 (n=1)")  # one seed: no std
    assert "50.0, 51.0 / 51.0, 52.0" in row  # per-seed values


def test_pending_cells_are_marked(tmp_path):
    md = rs.render(_grid(), str(tmp_path))
    assert "pending: s0, s1" in md and "no complete pair of runs" in md


def test_grid_file_yaml_and_json(tmp_path):
    import yaml

    (tmp_path / "g.yaml").write_text(yaml.safe_dump(_grid()))
    (tmp_path / "g.json").write_text(json.dumps(_grid()))
    assert rs.load_grid(str(tmp_path / "g.yaml")) == rs.load_grid(str(tmp_path / "g.json"))
    (tmp_path / "bad.json").write_text(json.dumps({"models": {}}))
    with pytest.raises(ValueError, match="non-empty 'models'"):
        rs.load_grid(str(tmp_path / "bad.json"))


def test_dry_run_launches_nothing(tmp_path):
    launcher = FakeLauncher()
    rs.run_grid(_grid(), str(tmp_path), run_cell=launcher, dry_run=True)
    assert launcher.calls == []


def test_subprocess_cell_that_crashes_is_recorded(tmp_path):
    """A real ``run_cpp_study.py cell`` subprocess with a missing config: failed, with its error."""
    grid = _grid(
        models={"psp": {"config": str(tmp_path / "missing.yaml")}},
        seeds=[0],
        variants={"cpp": {"loss": "cpp_kl", "num_heads": 4}},
        figure5=None,
        table1={"baseline": "cpp", "cpp": "cpp"},
    )
    records = rs.run_grid(grid, str(tmp_path))
    assert records[0]["status"] == "failed"
    assert "FileNotFoundError" in records[0]["error"] and "missing.yaml" in records[0]["error"]
    assert os.path.exists(tmp_path / records[0]["id"] / "log.txt")
    rec = json.loads((tmp_path / records[0]["id"] / "result.json").read_text())
    assert rec["returncode"] == 1 and "missing.yaml" in rec["log_tail"]


def test_train_cell_end_to_end_on_synthetic_cityscapes(tmp_path, monkeypatch):
    """The real cell function: CPPSegmentor (ResNet-18, PSP head, 4 CPP heads) trained 2 iterations
    by the project's Trainer on a tiny synthetic Cityscapes, evaluated, result fields filled."""
    pytest.importorskip("detectron2")
    from seethroughnet.data.datasets import register_all
    from seethroughnet.data.synthetic import generate_synthetic_cityscapes

    generate_synthetic_cityscapes(
        str(tmp_path / "d2" / "cityscapes"),
        seed=1,
        height=64,
        width=128,
        num_images={"train": 2, "val": 2, "test": 0},
        progress=False,
    )
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "d2"))
    cfg = os.path.join(
        REPO, "projects/SeeThroughNet/configs/CPP-Plugin/CamVid-CPU/pspnet_R18_camvid.yaml"
    )
    opts = [
        "DATASETS.TRAIN",
        "('cityscapes_fine_sem_seg_train',)",
        "DATASETS.TEST",
        "('cityscapes_fine_sem_seg_val',)",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES",
        "19",
        "SOLVER.MAX_ITER",
        "2",
        "SOLVER.IMS_PER_BATCH",
        "2",
        "INPUT.MIN_SIZE_TRAIN",
        "(64,)",
        "INPUT.CROP.SIZE",
        "(64, 64)",
        "INPUT.MIN_SIZE_TEST",
        "64",
        "MODEL.DECODE_HEAD.CHANNELS",
        "16",
        "MODEL.CPP_AUX.HIDDEN_CHANNELS",
        "8",
    ]
    try:
        res = rs.train_cell(cfg, str(tmp_path / "cell"), opts)
    finally:
        monkeypatch.undo()
        register_all()
    assert res["status"] == "ok" and 0.0 <= res["mIoU"] <= 100.0
    assert len(res["IoU"]) == 19 and res["params_aux"] > 0 and res["params_inference"] > 0
    assert res["aux_features"] == ["res2", "res3", "res4", "res5"]
    rows = [
        json.loads(line)
        for line in (tmp_path / "cell" / "metrics.json").read_text().splitlines()
        if line.strip()
    ]
    assert any("loss_aux_res2" in r and "loss_sem_seg" in r for r in rows)


def test_shipped_camvid_grid_expands():
    grid = rs.load_grid(
        os.path.join(REPO, "projects/SeeThroughNet/configs/CPP-Plugin/grids/camvid_r18_cpu.yaml")
    )
    cells = rs.expand_grid(grid)
    assert {c["model"] for c in cells} == {"pspnet", "deeplabv3plus"}
    assert all(os.path.exists(os.path.join(REPO, c["config"])) for c in cells)
    assert grid["datasets"]["camvid"]["instance_classes"] == ["car", "pedestrian", "bicyclist"]


def test_shipped_figure5_cells_add_heads_res4_first():
    """Figure 5's x axis: the cells' opts on their real config put 1 head on res4 (MMSegmentation's
    auxiliary head), then res5, res3, res2 (MODEL.CPP_AUX.ADD_ORDER)."""
    pytest.importorskip("detectron2")
    from seethroughnet.config import build_config
    from seethroughnet.modeling.segmentors.cpp_segmentor import aux_head_features

    grid = rs.load_grid(
        os.path.join(REPO, "projects/SeeThroughNet/configs/CPP-Plugin/grids/camvid_r18_cpu.yaml")
    )
    expected = {
        0: [],
        1: ["res4"],
        2: ["res4", "res5"],
        3: ["res3", "res4", "res5"],
        4: ["res2", "res3", "res4", "res5"],
    }
    seen = set()
    for c in rs.expand_grid(grid):
        if any(t.startswith("figure5:") for t in c["tags"]) and c["seed"] == 0:
            cfg = build_config(os.path.join(REPO, c["config"]), c["opts"])
            assert aux_head_features(cfg) == expected[c["num_heads"]], c["id"]
            seen.add(c["num_heads"])
    assert seen == set(expected)


def test_figure5_markdown_names_the_stages_each_point_used(tmp_path):
    grid = _grid()
    order = ["res4", "res5", "res3", "res2"]

    def launcher(cell, cell_dir):
        res = FakeLauncher()(cell, cell_dir)
        res["aux_features"] = sorted(order[: cell["num_heads"]])
        return res

    rs.run_grid(grid, str(tmp_path), run_cell=launcher)
    md = report.figure5_markdown(grid, rs.gather(grid, str(tmp_path)))
    assert "first n of MODEL.CPP_AUX.ADD_ORDER" in md
    heads = [r[0] for r in table_rows(md)[1:]]  # header off
    assert heads == ["0 (none)", "1 (res4)", "2 (res4, res5)", "4 (res2, res3, res4, res5)"]


def test_cli_dry_run_and_render(tmp_path):
    """``tools/run_cpp_study.py run --dry-run`` as a subprocess: nothing runs, the tables render
    with every cell pending; an output folder of the earlier runner (``results.json``) is read."""
    import subprocess

    import yaml

    grid = _grid(models={"psp": {"config": "a.yaml"}}, figure5=None, seeds=[0])
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(grid))
    legacy = tmp_path / "out" / "psp__toy__upsample_ce_h4__s0"
    legacy.mkdir(parents=True)
    iou = {c: 50.0 for c in CLASSES}
    (legacy / "results.json").write_text(json.dumps({"status": "ok", "mIoU": 50.0, "IoU": iou}))
    out = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "tools", "run_cpp_study.py"),
            "run",
            str(tmp_path / "g.yaml"),
            "--out",
            str(tmp_path / "out"),
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    assert (
        "2 cells, 1 done, 1 to run" in out.stderr
        and "would run psp__toy__cpp_kl_h4__s0" in out.stderr
    )
    assert "Cells: 2 (1 ok, 0 failed, 1 pending)." in out.stdout
    assert not (tmp_path / "out" / "psp__toy__cpp_kl_h4__s0").exists()


def test_cli_overrides_reach_every_cell_after_the_grid_opts(tmp_path, monkeypatch):
    """``run GRID KEY VALUE ...`` (REPRODUCE.md passes the ImageNet files this way): the pairs are
    appended to every cell's opts after the grid's own; an odd count is refused."""
    import yaml

    grid = _grid(models={"psp": {"config": "a.yaml"}}, figure5=None, seeds=[0])
    grid["opts"] = ["SOLVER.MAX_ITER", "3"]
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(grid))
    seen = {}
    monkeypatch.setattr(
        rs, "run_grid", lambda g, out, **kw: seen.update(cells=rs.expand_grid(g)) or []
    )
    monkeypatch.setattr(rs, "render", lambda *a, **k: "")
    args = ["run", str(tmp_path / "g.yaml"), "--out", str(tmp_path / "out")]
    assert rs.main(args + ["MODEL.HRNET.CHECKPOINT", "w.pth", "SOLVER.MAX_ITER", "5"]) == 0
    assert len(seen["cells"]) == 2
    for cell in seen["cells"]:
        assert cell["opts"][-6:] == [
            "SOLVER.MAX_ITER", "3", "MODEL.HRNET.CHECKPOINT", "w.pth", "SOLVER.MAX_ITER", "5",
        ]  # fmt: skip
    assert rs.main(args + ["MODEL.HRNET.CHECKPOINT"]) == 2


# --------------------------------------------------------------------------- GPUs of a cell
TABLE1_GRID = os.path.join(REPO, "projects/SeeThroughNet/configs/CPP-Plugin/grids/table1_full.yaml")
CPP_TINY = os.path.join(REPO, "tests/configs/cpp_plugin_tiny_overrides.yaml")


def _tiny_table1_grid(tmp_path, gpus):
    """table1_full.yaml cut to one cell (PSPNet, Cityscapes, CPP heads, seed 0) on ``gpus`` GPUs,
    narrowed to the tests' tiny widths (tests/configs/cpp_plugin_tiny_overrides.yaml), 2
    iterations of a batch of 4 on 64x64 crops."""
    import yaml

    def flat(d, prefix=""):
        out = []
        for k, v in d.items():
            out += flat(v, prefix + k + ".") if isinstance(v, dict) else [prefix + k, str(v)]
        return out

    grid = rs.load_grid(TABLE1_GRID)
    grid["models"] = {"pspnet": grid["models"]["pspnet"]}
    grid["datasets"] = {"cityscapes": {**grid["datasets"]["cityscapes"], "gpus": gpus}}
    grid["variants"] = {"cpp": {"loss": "cpp_kl", "num_heads": 4}}
    grid["table1"] = {"baseline": "cpp", "cpp": "cpp"}
    grid["seeds"], grid["threads"] = [0], 1
    with open(CPP_TINY) as f:
        grid["opts"] = flat(yaml.safe_load(f)) + [
            "MODEL.REQUIRES_PRETRAINED", "False", "SOLVER.MAX_ITER", "2",
            "SOLVER.IMS_PER_BATCH", "4", "SOLVER.CHECKPOINT_PERIOD", "100",
            "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.CROP.SIZE", "(64, 64)",
            "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "128", "TEST.EVAL_PERIOD", "0",
            "DATALOADER.NUM_WORKERS", "0",
        ]  # fmt: skip
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return str(path)


@pytest.mark.slow
def test_table1_cell_trains_across_both_processes_of_a_2_gpu_cpu_standin(tmp_path):
    """``run --cpu-gpus 2``: a Table 1 cell asking for 2 GPUs runs as 2 gloo processes of
    detectron2's launch on the CPU. Both ranks log themselves, train the same cell (each its share
    of the batch: detectron2's sampler gives the ranks different images) and end with
    bit-identical weights (DistributedDataParallel averaged the gradients); result.json records
    world size 2, gloo, the stand-in GPUs the executor handed out and 2 images per process."""
    import subprocess

    from seethroughnet.data.synthetic import generate_synthetic_cityscapes

    pytest.importorskip("detectron2")
    generate_synthetic_cityscapes(
        str(tmp_path / "d2" / "cityscapes"),
        seed=3,
        height=64,
        width=128,
        num_images={"train": 4, "val": 2, "test": 0},
        progress=False,
    )
    env = dict(os.environ, DETECTRON2_DATASETS=str(tmp_path / "d2"), PYTHONWARNINGS="ignore")
    cmd = [sys.executable, os.path.join(REPO, "tools", "run_cpp_study.py"), "run"]
    cmd += [_tiny_table1_grid(tmp_path, 2), "--out", str(tmp_path / "out"), "--cpu-gpus", "2"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    cell = tmp_path / "out" / "pspnet__cityscapes__cpp_kl_h4__s0"
    rec = json.loads((cell / "result.json").read_text())
    assert rec["status"] == "ok", rec.get("error")
    assert rec["world_size"] == 2 and rec["backend"] == "gloo" and rec["ims_per_gpu"] == 2
    assert rec["devices"] == ["0", "1"] and rec["cpu_standin"] is True
    assert [x["rank"] for x in rec["ranks"]] == [0, 1]
    assert rec["ranks"][0]["pid"] != rec["ranks"][1]["pid"]
    assert all(x["device"] == "cpu" and x["iterations"] == 2 for x in rec["ranks"])
    assert rec["ranks"][0]["weights_sha1"] == rec["ranks"][1]["weights_sha1"]
    log = (cell / "log.txt").read_text()
    assert "--num-gpus 2" in log and "CUDA_VISIBLE_DEVICES=''" in log
    assert "rank 0/2 (gloo)" in log and "rank 1/2 (gloo)" in log
    assert len(rec["IoU"]) == 19 and 0.0 <= rec["mIoU"] <= 100.0


def test_a_grid_with_a_failed_cell_exits_non_zero_naming_the_cell(tmp_path, capsys):
    """The grid goes on past a failing cell, renders what it has, then exits 1 naming the failed
    cells and how to retry: a script (or a smoke test) never reads a half-failed grid as done."""
    pytest.importorskip("detectron2")
    grid = _tiny_table1_grid(tmp_path, 1)
    out = tmp_path / "out"
    # a key no config has: the cell's training stops at config time, the grid records it
    assert rs.main(["run", grid, "--out", str(out), "MODEL.NOT_A_KEY", "1"]) == 1
    err = capsys.readouterr().err
    cell = "pspnet__cityscapes__cpp_kl_h4__s0"
    assert f"1 of 1 cells failed: {cell}" in err and "--retry-failed" in err
    assert json.loads((out / cell / "result.json").read_text())["status"] == "failed"
    assert (out / "tables.md").exists()


def test_a_grid_asking_for_more_gpus_than_the_node_has_stops_before_any_cell(tmp_path, capsys):
    grid = _tiny_table1_grid(tmp_path, 4)
    args = ["run", grid, "--out", str(tmp_path / "out"), "--cpu-gpus", "2"]
    assert rs.main(args) == 2
    err = capsys.readouterr().err
    assert "ask for up to 4 GPUs each" in err and "(--cpu-gpus 2) has 2" in err
    assert not (tmp_path / "out" / "pspnet__cityscapes__cpp_kl_h4__s0").exists()
    # a dry run lists the cells anyway, after the same message as a warning
    assert rs.main(args + ["--dry-run"]) == 0
    assert not (tmp_path / "out" / "pspnet__cityscapes__cpp_kl_h4__s0").exists()
    # no GPU and no stand-in: a 1-GPU cell runs on the CPU, a 2-GPU one is refused
    cpu = rs.LocalExecutor(devices=[])
    cells = rs.expand_grid(rs.load_grid(grid))
    with pytest.raises(ValueError, match="up to 4 GPUs each.*has 0"):
        rs.check_gpus(cells, cpu)
    rs.check_gpus([{**c, "gpus": 1} for c in cells], cpu)


def test_cells_pass_their_gpus_to_the_executor_and_the_command(tmp_path):
    """subprocess_cell: ``--num-gpus N`` in the cell's command where N > 1, ``gpus=N`` to the
    executor (which hands out the GPUs / asks SLURM for them)."""
    seen = []

    class Recorder:
        def run(self, cmd, cell_dir, **kw):
            seen.append((list(cmd), kw["gpus"]))
            raise RuntimeError("recorded")

    grid = _grid(figure5=None, seeds=[0])
    grid["datasets"]["toy"]["gpus"] = 3
    run = rs.subprocess_cell(executor=Recorder())
    cell = rs.expand_grid(grid)[0]
    assert cell["gpus"] == 3
    with pytest.raises(RuntimeError, match="recorded"):
        run(cell, str(tmp_path))
    cmd, gpus = seen[0]
    assert gpus == 3 and cmd[cmd.index("--num-gpus") + 1] == "3"
    one = {**cell, "gpus": 1}
    with pytest.raises(RuntimeError):
        run(one, str(tmp_path))
    assert "--num-gpus" not in seen[1][0] and seen[1][1] == 1


def test_figure5_for_several_models_one_table_and_one_panel_each(tmp_path):
    """``figure5.models``: the sweep runs for every model listed; the markdown has a table per
    model and the PNG a panel per model (2 panels side by side: twice the width of one)."""
    import struct

    def png_size(path):
        with open(path, "rb") as f:
            return struct.unpack(">II", f.read(24)[16:24])

    fig = {**_grid()["figure5"], "models": ["psp", "dlv3p"]}
    fig.pop("model")
    grid = _grid(figure5=fig)
    cells = rs.expand_grid(grid)
    for m in ("psp", "dlv3p"):
        assert {(c["loss"], c["num_heads"]) for c in cells if c["model"] == m} >= {
            ("none", 0),
            ("cpp_kl", 1),
            ("upsample_ce", 2),
        }
    rs.run_grid(grid, str(tmp_path), run_cell=FakeLauncher())
    md = rs.render(grid, str(tmp_path), fig_path=str(tmp_path / "two.png"))
    assert "mIoU of psp on toy" in md and "mIoU of dlv3p on toy" in md
    assert len(rows_starting(md, "4", "50.00 (n=1)", "51.00 (n=1)")) == 2
    rs.render(_grid(), str(tmp_path), fig_path=str(tmp_path / "one.png"))
    (w2, h2), (w1, h1) = png_size(tmp_path / "two.png"), png_size(tmp_path / "one.png")
    assert h2 == h1 and w2 == 2 * w1
