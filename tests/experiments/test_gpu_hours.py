"""The GPU-hours estimate of REPRODUCE.md (seethroughnet/experiments/gpu_hours.py): the scaling
arithmetic against a hand computation, the grouping of a shipped grid's cells, and a measured tiny
model whose FLOP line predicts a third size's fvcore count."""

import os
import re

import pytest
import torch

pytest.importorskip("detectron2")

from seethroughnet.experiments import gpu_hours as gh  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TABLE1 = "projects/SeeThroughNet/configs/CPP-Plugin/grids/table1_full.yaml"


def test_image_seconds_scale_with_the_flop_line():
    cost = gh.ModelCost("m", seconds=1.5, measure_size=(2, 3), a=2.0, b=10.0)
    assert cost.flops((4, 6)) == 2.0 * 24 + 10.0
    assert cost.image_seconds((4, 6)) == pytest.approx(1.5 * 58.0 / 22.0)


def test_run_rows_multiply_batch_iterations_and_runs():
    cfg = os.path.join(REPO, "tests/configs/seethroughnet_tiny.yaml")  # crop 64x128, batch 2, 4 it
    cost = gh.ModelCost("tiny", seconds=3.0, measure_size=(64, 128), a=1.0, b=0.0)
    run = {"table": "T", "name": "r", "model": "tiny", "config": cfg, "opts": [], "runs": 5}
    (row,) = gh.run_rows([run], {"tiny": cost}, speedup=100.0)
    assert (row["crop"], row["batch"], row["iters"]) == ((64, 128), 2, 4)
    assert row["cpu_step_s"] == pytest.approx(6.0) and row["gpu_step_s"] == pytest.approx(0.06)
    assert row["gpu_hours"] == pytest.approx(5 * 4 * 0.06 / 3600)


def test_table1_grid_groups_every_cell_once():
    models, runs = gh.runs_from_grid("Table 1", os.path.join(REPO, TABLE1))
    assert len(models) == 7 and len(runs) == 7 * 4
    assert sum(r["runs"] for r in runs) == 7 * 4 * 2 * 3  # variants x seeds 0-2
    assert {r["model"] for r in runs} == set(models)


def test_measured_tiny_model_flop_line_predicts_a_third_size():
    cfg = os.path.join(REPO, "tests/configs/seethroughnet_tiny.yaml")
    cost = gh.measure_model("tiny", cfg, measure_size=(64, 128), warmup=0, steps=1)
    assert cost.seconds > 0 and cost.a > 0
    from detectron2.modeling import build_model

    from seethroughnet.experiments.models import load_config

    model = build_model(load_config(cfg, list(gh.MEASURE_OPTS)))
    third = gh.inference_flops(model, (192, 384))
    assert cost.flops((192, 384)) == pytest.approx(third, rel=1e-3)


@pytest.mark.parametrize("detector", ["mask_rcnn", "fcos"])
def test_detector_is_measured_at_its_training_size(detector):
    """Table 5's detectors: one training step on random boxes/polygons at the config's training
    size (mean short side, 1:2), no FLOP line; the rows scale by pixels only across sizes."""
    import transfer.modeling  # noqa: F401  (registers the detectors' backbones)
    from transfer.config import add_transfer_config
    from transfer.table5 import SMOKE_OPTS

    cfg = os.path.join(REPO, f"transfer/configs/{detector}_hrnetv2_w48.yaml")
    opts = [
        *SMOKE_OPTS,
        "MODEL.HRNET.VARIANT",
        "hrnet_w18_small_v2",
        "INPUT.MIN_SIZE_TRAIN",
        "(64, 96)",
    ]
    cost = gh.measure_model(
        detector, cfg, opts, warmup=0, steps=1, extra_config=(add_transfer_config,)
    )
    assert cost.measure_size == (80, 160) and cost.a is None and cost.seconds > 0
    assert cost.image_seconds((160, 320)) == pytest.approx(4 * cost.seconds)


# ---- memory estimate and calibration (seethroughnet/experiments/gpu_calibration.py) -------------


class _TwoConvs(torch.nn.Module):
    """conv 3->4 (3x3) -> ReLU -> conv 4->2 (1x1) -> sum, plus a frozen parameter of 5 floats.
    Autograd keeps for backward the input of conv 1 (3 channels), the ReLU output (4 channels,
    also conv 2's input: one storage); the weights are parameters, counted apart."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.c2 = torch.nn.Conv2d(4, 2, 1)
        self.frozen = torch.nn.Parameter(torch.zeros(5), requires_grad=False)

    def forward(self, x):
        return {"loss": self.c2(torch.relu(self.c1(x))).sum()}


def test_saved_tensor_bytes_of_two_convs_by_hand():
    net = _TwoConvs()
    x = torch.randn(2, 3, 8, 16)
    nbytes, out = gh.saved_tensor_bytes(lambda: net(x), exclude=list(net.parameters()))
    assert nbytes == 2 * 8 * 16 * (3 + 4) * 4  # fp32: input 3 ch + ReLU output 4 ch, per pixel
    assert out["loss"].requires_grad


def test_model_memory_fits_activations_and_counts_parameters_by_hand():
    net = _TwoConvs()
    mem = gh.model_memory("two", net, lambda b, s: torch.randn(b, 3, *s), [(8, 8), (16, 24)], 2)
    assert mem.a == pytest.approx(7 * 4) and mem.b == pytest.approx(0.0, abs=1e-6)
    trainable = (4 * 3 * 9 + 4 + 2 * 4 + 2) * 4
    assert mem.trainable_bytes == trainable and mem.param_bytes == trainable + 5 * 4
    # params + grads + momentum + 3 images of 32x64 activations
    expected = trainable + 20 + 2 * trainable + 3 * 28 * 32 * 64
    assert mem.peak_bytes((32, 64), 3) == pytest.approx(expected)


def _calibrators(tmp_path, text):
    from seethroughnet.experiments.gpu_calibration import load_calibration

    path = tmp_path / "cal.yaml"
    path.write_text(text)
    return load_calibration(str(path))


CAL = """
time:
  - {name: step, source: s1, model: m1, size: [4, 8], seconds_per_step: 0.9, images_per_gpu: 3,
     applies_to: [resnet, hrnet]}
  - {name: wall, source: s2, model: m2, size: [4, 4], wall_days: [2, 3], gpus: 10,
     images: 864000, applies_to: [hrnet]}
  - {name: absent, source: s3, model: nowhere, size: [4, 4], seconds_per_step: 1,
     images_per_gpu: 1, applies_to: [resnet]}
memory:
  - {name: mem, source: s4, model: m1, size: [4, 8], images_per_gpu: 2, gb: 6.0,
     applies_to: [resnet, hrnet]}
gpu_choice: {sizes_gb: [24, 16, 80], margin: 1.25}
"""


def test_calibration_ratios_and_ranges_by_hand(tmp_path):
    from seethroughnet.experiments import gpu_calibration as gc

    cal = _calibrators(tmp_path, CAL)
    assert cal["gpu_choice"] == {"sizes_gb": [16.0, 24.0, 80.0], "margin": 1.25}
    est = {"m1": 0.1, "m2": 0.5}  # estimated GPU-seconds per image
    time = gc.calibrator_ratios(cal["time"], lambda c: est.get(c.model))
    # step: 0.9 s / 3 images = 0.3 s per image, / 0.1 estimated = 3
    assert time[0]["published"] == pytest.approx((0.3, 0.3))
    assert time[0]["ratio"] == pytest.approx((3.0, 3.0))
    # wall: 2..3 days x 86400 s x 10 GPUs / 864000 images = 2..3 s per image, / 0.5 = 4..6
    assert time[1]["published"] == pytest.approx((2.0, 3.0))
    assert time[1]["ratio"] == pytest.approx((4.0, 6.0))
    assert time[2]["ratio"] is None  # its model was not measured: left out of every range
    assert gc.family_range(time, "resnet") == pytest.approx((3.0, 3.0))
    assert gc.family_range(time, "hrnet") == pytest.approx((3.0, 6.0))
    assert gc.family_range(time, "detector") is None
    memory = gc.calibrator_ratios(cal["memory"], lambda c: 4e9)  # 6 GB published / 4 GB = 1.5
    rows = [
        {"table": "T", "family": "hrnet", "gpu_hours": 10.0, "peak_bytes": 10e9},
        {"table": "T", "family": "resnet", "gpu_hours": 2.0, "peak_bytes": None},
        {"table": "U", "family": "detector", "gpu_hours": 1.0, "peak_bytes": 1e9},
        {"table": "V", "family": "hrnet", "gpu_hours": None, "peak_bytes": 4e9},  # not timed
    ]
    out = gc.calibrated_rows(rows, time, memory, cal["gpu_choice"])
    assert out[0]["gpu_hours_range"] == pytest.approx((30.0, 60.0))
    assert out[0]["peak_gb_range"] == pytest.approx((15.0, 15.0))
    assert out[0]["gpu_gb"] == 24.0  # 15 GB x 1.25 = 18.75 > 16
    assert out[1]["gpu_hours_range"] == pytest.approx((6.0, 6.0)) and out[1]["gpu_gb"] is None
    assert out[2]["gpu_hours_range"] is None and out[2]["peak_gb_range"] is None
    tot = gc.totals(out)
    assert tot["T"]["gpu_hours"] == 12.0 and tot["T"]["range"] == pytest.approx((36.0, 66.0))
    assert tot["U"]["range"] is None
    assert out[3]["gpu_hours_range"] is None and out[3]["peak_gb_range"] == pytest.approx((6, 6))
    assert out[3]["gpu_gb"] == 16.0 and tot["V"]["gpu_hours"] is None


@pytest.mark.parametrize(
    "peak, expected", [(13.3, 16.0), (13.4, 24.0), (66.6, 80.0), (66.7, None), (0.1, 16.0)]
)
def test_gpu_choice_is_the_smallest_that_holds_peak_times_margin(peak, expected):
    from seethroughnet.experiments.gpu_calibration import choose_gpu

    assert choose_gpu(peak, [80, 16, 24, 32, 40], 1.2) == expected


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("source: s1, ", "", "time[0] (step) needs a 'source' entry"),
        ("applies_to: [hrnet]}", "applies_to: [gpu]}", "time[1] (wall): 'applies_to'"),
        ("wall_days: [2, 3]", "wall_days: [3, 2]", "time[1] (wall): 'wall_days' low 3.0"),
        ("images: 864000", "images: 0", "time[1] (wall): 'images' must be a positive integer"),
        ("gb: 6.0", "gb: lots", "memory[0] (mem): 'gb' must be a positive number"),
        ("seconds_per_step: 0.9, ", "", "time[0] (step) needs a 'seconds_per_step' entry"),
        ("gpu_choice: {sizes_gb: [24, 16, 80], margin: 1.25}", "", "'gpu_choice' mapping"),
    ],
)
def test_bad_calibration_file_names_the_key(tmp_path, old, new, message):
    assert old in CAL
    with pytest.raises(ValueError) as e:
        _calibrators(tmp_path, CAL.replace(old, new))
    assert message in str(e.value) and "cal.yaml" in str(e.value)


def test_shipped_calibration_file_loads_and_names_cost_file_models():
    from seethroughnet.experiments.gpu_calibration import load_calibration

    cal = load_calibration(
        os.path.join(REPO, "projects/SeeThroughNet/configs/gpu_hours_calibration.yaml")
    )
    spec = gh.load_cost_file(os.path.join(REPO, "projects/SeeThroughNet/configs/gpu_hours.yaml"))
    for c in cal["time"] + cal["memory"]:
        assert c.model in spec["models"], c.name
        assert c.source


def test_calibrate_from_a_bad_json_says_what_to_do(tmp_path):
    bad = tmp_path / "gpu_hours.json"
    bad.write_text('{"rows": []}')
    with pytest.raises(SystemExit) as e:
        gh.load_measurements(str(bad))
    assert str(bad) in str(e.value) and "without --calibrate-from" in str(e.value)


def test_command_line_calibrates_time_and_memory_by_hand(tmp_path):
    """tools/estimate_gpu_hours.py end to end on the tiny model (warm-up and steps given), with a
    calibrator stating the run's own setting: the calibrated GPU-hours are the published seconds
    per image x images trained, the calibrated memory the published GB, whatever this machine
    measured; ``--calibrate-from`` reuses the step time and re-measures only the memory."""
    import json

    tiny = "tests/configs/seethroughnet_tiny.yaml"  # crop 64x128, batch 2, 4 iterations
    cost = tmp_path / "cost.yaml"
    cost.write_text(
        'gpu: {name: "test GPU", peak_tflops: 10}\nmeasure_size: [32, 64]\ntables:\n'
        f"  - table: T\n    runs:\n      - {{name: tiny, runs: 3, gpus: 2, config: {tiny}}}\n"
    )
    cal = tmp_path / "cal.yaml"
    cal.write_text(
        f"time:\n  - {{name: t, source: s, model: {tiny}, size: [64, 128], seconds_per_step: 0.5,"
        " images_per_gpu: 1, applies_to: [hrnet]}\n"
        f"memory:\n  - {{name: m, source: s, model: {tiny}, size: [64, 128], images_per_gpu: 1,"
        " gb: 1.0, applies_to: [hrnet]}\n"
        "gpu_choice: {sizes_gb: [0.5, 2, 4], margin: 1.5}\n"
    )
    out = tmp_path / "out"
    args = ["--cost-file", str(cost), "--calibration", str(cal), "--out", str(out)]
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        assert gh.main(args + ["--warmup", "1", "--steps", "1"]) == 0
        first = json.loads((out / "gpu_hours.json").read_text())
        (row,) = first["rows"]
        assert (row["gpus"], row["images_per_gpu"], row["family"]) == (2, 1.0, "hrnet")
        # 3 runs x 4 iterations x 2 images x 0.5 GPU-s per image (the calibrator's statement)
        assert row["gpu_hours_range"] == pytest.approx([3 * 4 * 2 * 0.5 / 3600] * 2)
        assert row["peak_gb_range"] == pytest.approx([1.0, 1.0]) and row["gpu_gb"] == 2.0
        assert row["peak_bytes"] > 0
        assert re.search(r"\|\s*2 GB\s*\|", (out / "gpu_hours.md").read_text())
        second_out = tmp_path / "again"
        again = args[:-1] + [str(second_out), "--calibrate-from", str(out / "gpu_hours.json")]
        assert gh.main(again) == 0
        second = json.loads((second_out / "gpu_hours.json").read_text())
        assert second["models"] == first["models"]  # step times reused, not measured again
        assert second["cpu_sgemm_gflops"] == first["cpu_sgemm_gflops"]
        assert second["memories"] == first["memories"]  # the count is deterministic
    finally:
        os.chdir(cwd)


def test_padding_to_the_crop_is_off_while_measuring():
    """The Table 1 configs pad every training input to INPUT.CROP.SIZE inside the model
    (INPUT.PAD.MODE "normalized"); measured with that, a step "at" a small size would run at the
    full crop. A tiny PSPNet of those configs, measured at sizes below its crop: the saved
    activations grow with the input (they would be equal if padded)."""
    cfg = "projects/SeeThroughNet/configs/CPP-Plugin/pspnet_R101_cityscapes.yaml"
    tiny = ["MODEL.RESNETS.DEPTH", "18", "MODEL.RESNETS.RES2_OUT_CHANNELS", "64"]
    tiny += ["MODEL.RESNETS.STEM_OUT_CHANNELS", "32", "MODEL.RESNETS.RES5_MULTI_GRID", "[1, 1]"]
    tiny += ["MODEL.RESNETS.NORM", "BN", "MODEL.DECODE_HEAD.CHANNELS", "16"]
    tiny += ["MODEL.DECODE_HEAD.NORM", "BN", "INPUT.CROP.SIZE", "(64, 128)"]
    from seethroughnet.experiments.models import load_config

    assert load_config(os.path.join(REPO, cfg), tiny).INPUT.PAD.MODE == "normalized"
    mem = gh.measure_memory("psp", os.path.join(REPO, cfg), tiny, measure_size=(32, 64))
    small, large = mem.activation_bytes((16, 32)), mem.activation_bytes((32, 64))
    assert mem.a > 0 and large > 1.5 * small > 0  # padded: a == 0, equal at both sizes
