"""The GPU-hours estimate of REPRODUCE.md (seethroughnet/experiments/gpu_hours.py): the scaling
arithmetic against a hand computation, the grouping of a shipped grid's cells, and a measured tiny
model whose FLOP line predicts a third size's fvcore count."""

import os

import pytest

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
