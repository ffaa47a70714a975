"""Smoke test of the benchmark (seethroughnet.experiments.benchmark and its command line
benchmark_cli, behind tools/benchmark_seethroughnet.py) at a tiny size (W18-small-v2, demo heads,
64x128, one repetition): every table has the expected rows. No timing is asserted."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seethroughnet.experiments import benchmark, benchmark_cli, benchmark_flops
from seethroughnet.experiments.report import markdown_table

REPO = Path(__file__).resolve().parents[2]
BB = "hrnet_w18_small_v2"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return benchmark.build_model(BB, "demo")


def test_params_rows():
    rows = benchmark_flops.params_rows([BB], "demo")
    assert [r[0] for r in rows] == [benchmark.PART_LABELS[p] for p in benchmark.PARTS] + [
        "**total**"
    ]
    m = benchmark.build_model(BB, "demo")
    assert rows[-1][1] == f"{sum(p.numel() for p in m.parameters()) / 1e6:.3f}M"


def test_markdown_table():
    t = markdown_table(["a", "b"], [[1, 2], [3, 4]])
    # tabulate's "github" format: columns padded to a common width
    assert t.splitlines() == ["| a   | b   |", "|-----|-----|", "| 1   | 2   |", "| 3   | 4   |"]
    # cells kept as written (no number re-formatting), alignment marks with colalign
    t = markdown_table(["id", "mIoU"], [[7, "1.50"], [10, None]], colalign=("right", "left"))
    assert t.splitlines() == [
        "|   id | mIoU   |",
        "|-----:|:-------|",
        "|    7 | 1.50   |",
        "|   10 | None   |",
    ]


def test_inference_wrapper_matches_model_inference(model):
    x = torch.randn(1, 3, 64, 128)
    model.eval()
    with torch.no_grad():
        ref = model.inference(x)
        got = benchmark_flops.TraceableInference(model, (64, 128))(x)
    torch.testing.assert_close(got, ref)


def test_flops_rows_and_linear_extrapolation(model):
    rows, f = benchmark_flops.flops_rows(model, (64, 128), (128, 256))
    labels = [r[0] for r in rows]
    assert labels[:4] == [benchmark.PART_LABELS[p] for p in benchmark.PARTS[:3]] + [
        benchmark.PART_LABELS["scale_attention"] + " (not run at single scale)"
    ]
    assert any(label.startswith("**single-scale inference") for label in labels)
    assert any(label.startswith("HRNetV2") for label in labels)
    assert f["half_size"] == (32, 64)
    counted = f["counted"]
    assert counted["total"] == pytest.approx(
        counted["encoder"] + counted["decoder"] + counted["ocr"] + counted["other"]
    )
    # the a*HW+b extrapolation equals a direct count (the model is exactly linear + constant in HW)
    direct = benchmark_flops.count_flops(model, (128, 256))
    for k in ("encoder", "decoder", "ocr", "total"):
        assert f["target"][k] == pytest.approx(direct[k], rel=1e-9, abs=1.0)


def test_train_benchmark_rows(model):
    res = benchmark.benchmark_train(
        model,
        batch=1,
        size=(64, 128),
        variants=("cpp_kl", "none", "upsample_ce"),
        warmup=0,
        steps=1,
        cpp_repeats=1,
        aux_repeats=1,
    )
    rows, cpp_rows = benchmark.train_rows(res)
    assert [r[0] for r in rows] == ["cpp_kl", "none", "upsample_ce"]
    assert all(r[1] == 1 for r in rows)
    assert len(rows[0]) == len(benchmark.TRAIN_HEADERS) and all(
        len(r) == len(benchmark.CPP_HEADERS) for r in cpp_rows
    )
    # decoder terms alone for cpp_kl and upsample_ce, then the cpp_targets call
    assert len(cpp_rows) == 3 and "cpp_kl" in cpp_rows[0][0] and "upsample_ce" in cpp_rows[1][0]
    assert cpp_rows[2][0].startswith("cpp_targets(labels 1x64x128")
    assert res["strides"] == [4, 8, 16, 32]
    # "none" drops the six decoder terms: rmi + 2 CE; the others keep all nine
    assert res["times"]["none"][0]["n_terms"] == 3
    assert res["times"]["cpp_kl"][0]["n_terms"] == 9
    assert res["times"]["upsample_ce"][0]["n_terms"] == 9
    assert not res["nonfinite"]
    assert all(t["step"] > 0 and t["cpu_step"] > 0 for ts in res["times"].values() for t in ts)


def test_infer_benchmark_rows(model):
    cells = [(BB, "single"), (BB, "multi")]
    res = benchmark.benchmark_infer(cells, (64, 128), {c: 1 for c in cells}, {}, models={BB: model})
    rows = benchmark.infer_rows(res, (64, 128))
    assert [(r[0], r[1]) for r in rows] == [
        (BB, "single scale (1.0)"),
        (BB, "{0.5,1.0,2.0} + flip, attention merge"),
    ]
    assert all(r[3] == 1 and len(r) == len(benchmark.INFER_HEADERS) for r in rows)


def test_cli_train_small_size(capsys):
    """The GPU command's code path (plain model, --size, --batch), run on CPU at a tiny size."""
    benchmark_cli.main(
        [
            "train",
            "--backbone",
            BB,
            "--heads",
            "demo",
            "--size",
            "64",
            "128",
            "--batch",
            "1",
            "--variants",
            "cpp_kl",
            "none",
            "--warmup",
            "0",
            "--steps",
            "1",
            "--cpp-repeats",
            "1",
            "--aux-repeats",
            "1",
        ]
    )
    out = capsys.readouterr().out
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in out.splitlines()]
    assert [c[:2] for c in cells if c[0] in ("cpp_kl", "none")] == [["cpp_kl", "1"], ["none", "1"]]
    assert "cpp_targets(labels 1x64x128" in out


def test_cli_memory_measures_each_cell_in_its_own_process(capsys):
    """`memory`: one subprocess per cell (precision x checkpointing x aux variant), peak RSS >=
    RSS after building, the loss terms of each variant (9 with the decoder terms, 3 without),
    the same loss with and without checkpointing; the larger size is skipped when its estimate
    exceeds --max-rss-gib."""
    benchmark_cli.main(
        ["memory", "--backbone", BB, "--heads", "demo", "--size", "64", "128", "--threads", "1"]
        + ["--sizes", "128x256", "--precisions", "float32", "bf16", "--max-rss-gib", "0.01"]
        + ["--checkpointing", "none", "encoder,decoder,ocr", "--variants", "cpp_kl"]
        + ["--skip", "128x256:bf16"]
    )
    out = capsys.readouterr().out
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in out.splitlines()]
    rows = [r for r in rows if r[0] in ("64x128", "128x256")]
    assert [r[:3] for r in rows] == [
        [size, prec, ckpt]
        for size in ("64x128", "128x256")
        for prec in ("float32", "bf16")
        for ckpt in ("none", "encoder,decoder,ocr")
    ]
    small, large = rows[:4], rows[4:]
    for row in small:
        _, _, _, name, terms, built, peak = row[:7]
        assert float(peak) >= float(built) > 0 and terms == "9"
    assert small[0][9] == small[1][9]  # float32 loss, checkpointing off / on
    assert [r[6].split(":")[0] for r in large] == ["skipped"] * 2 + ["not measured (--skip)"] * 2
    benchmark_cli.main(
        ["memory", "--backbone", BB, "--heads", "demo", "--size", "64", "128", "--threads", "1"]
        + ["--variants", "none"]
    )
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| 64x128 ")]
    assert len(rows) == 1 and [c.strip() for c in rows[0].strip("|").split("|")][4] == "3"


def test_build_model_from_config_goes_through_load_model():
    """``train --config``: the plain SeeThroughNet of the config, via load_model (no weights)."""
    cfg_file = str(REPO / benchmark.DEMO_CONFIG)
    opts = [
        "MODEL.SEE_THROUGH.DECODER_ATTENTION_CHANNELS",
        "16",
        "MODEL.SEE_THROUGH.OCR_MID_CHANNELS",
        "32",
        "MODEL.SEE_THROUGH.OCR_KEY_CHANNELS",
        "16",
    ]
    model, cfg = benchmark.build_model_from_config(cfg_file, opts)
    assert type(model).__name__ == "SeeThroughNet" and cfg.MODEL.SEE_THROUGH.OCR_MID_CHANNELS == 32


def test_tool_help_runs_as_a_subprocess():
    r = subprocess.run(
        [sys.executable, str(REPO / "tools" / "benchmark_seethroughnet.py"), "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert r.returncode == 0 and "params" in r.stdout and "memory" in r.stdout


def test_cli_memory_of_a_table1_config_with_and_without_checkpointing(capsys):
    """`memory --config`: a Table 1 config's own model and losses (DeepLabV3+ with its four CPP
    heads, narrowed to ResNet-18 by --opts), one process per checkpointing setting; the same loss
    with MODEL.CPP_SEGMENTOR.CHECKPOINT_ACTIVATIONS on."""
    config = os.path.join(
        REPO, "projects/SeeThroughNet/configs/CPP-Plugin/deeplabv3plus_R101_cityscapes.yaml"
    )
    opts = ["MODEL.RESNETS.DEPTH", "18", "MODEL.RESNETS.RES2_OUT_CHANNELS", "64"]
    opts += ["MODEL.RESNETS.RES5_MULTI_GRID", "[1, 1]", "MODEL.DECODE_HEAD.CHANNELS", "16"]
    opts += ["MODEL.CPP_AUX.HIDDEN_CHANNELS", "8", "MODEL.RESNETS.NORM", "BN"]
    opts += ["MODEL.DECODE_HEAD.NORM", "BN"]
    benchmark_cli.main(
        ["memory", "--config", config, "--opts", *opts, "--size", "64", "128", "--batch", "2"]
        + ["--threads", "1", "--checkpointing", "none", "backbone,decode_head"]
    )
    out = capsys.readouterr().out
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in out.splitlines()]
    rows = [r for r in rows if r[0] == "64x128"]
    assert [r[2] for r in rows] == ["none", "backbone,decode_head"]
    for r in rows:  # the decode head's CE + the four CPP heads' KL terms
        assert r[4] == "5" and float(r[6]) >= float(r[5]) > 0
    assert rows[0][9] == rows[1][9]
