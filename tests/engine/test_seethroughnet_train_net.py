"""End-to-end: the detectron2 trainer on a tiny synthetic Cityscapes — train, evaluate, resume,
export a benchmark submission and score it with cityscapesscripts; plus the failure paths
(config keys, checkpoints, non-finite losses, export into a used folder) and a 2-process gloo
run."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("detectron2")

from detectron2.config import CfgNode  # noqa: E402
from detectron2.data import MetadataCatalog  # noqa: E402
from PIL import Image  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(
    REPO, "projects/SeeThroughNet/configs/Cityscapes-Synthetic/seethroughnet_W18small_demo.yaml"
)
ABLATIONS = sorted(
    glob.glob(os.path.join(REPO, "projects/SeeThroughNet/configs/Cityscapes/ablation/*.yaml"))
)

#: the tests' tiny SeeThroughNet
TINY_CONFIG = os.path.join(REPO, "tests/configs/seethroughnet_tiny.yaml")


@pytest.fixture(scope="module")
def cityscapes_root(make_synthetic_cityscapes):
    return make_synthetic_cityscapes()


def _cfg(out_dir, *opts):
    from seethroughnet.config import build_config

    cfg = build_config(TINY_CONFIG, ["OUTPUT_DIR", str(out_dir), *opts])
    return cfg


def _metrics(out_dir):
    with open(os.path.join(out_dir, "metrics.json")) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def trained(cityscapes_root, tmp_path_factory):
    """4 iterations, checkpoints at 2 and final, evaluation at the end."""
    from seethroughnet.engine import Trainer

    out = tmp_path_factory.mktemp("train")
    cfg = _cfg(out)
    cfg.freeze()
    torch.manual_seed(0)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    return cfg, out, trainer


def test_training_logs_every_loss_term_and_evaluates(trained):
    cfg, out, trainer = trained
    rows = _metrics(out)
    train_rows = [r for r in rows if "total_loss" in r]
    assert train_rows and train_rows[-1]["iteration"] == 3
    terms = {"loss_rmi", "loss_ce_r1.0", "loss_ce_r0.5"} | {
        f"loss_cpp_s{s}_r{r}" for s in (16, 8, 4) for r in ("1.0", "0.5")
    }
    assert terms <= set(train_rows[-1])
    # every term finite; all but RMI positive (the reference's RMI part is a log-det that is
    # negative on images this small, see docs/rmi_reference_check.md)
    assert all(
        np.isfinite(train_rows[-1][k]) and (k == "loss_rmi" or train_rows[-1][k] > 0) for k in terms
    )
    assert glob.glob(os.path.join(out, "events.out.tfevents.*")), "no TensorBoard event file"
    for name in ("model_0000001.pth", "model_final.pth", "last_checkpoint"):
        assert os.path.exists(os.path.join(out, name)), name
    results = trainer.last_eval_results
    assert 0.0 <= results["sem_seg"]["mIoU"] <= 100.0
    assert "IoU" in results["cityscapes_sem_seg"]


def test_resume_continues_the_iteration_counter_with_the_saved_weights(trained, tmp_path):
    """An interrupted run (last checkpoint at iteration 1) resumes at 2 with those weights."""
    import shutil

    from seethroughnet.engine import Trainer

    cfg, out, _ = trained
    run = tmp_path / "interrupted"
    run.mkdir()
    shutil.copy(os.path.join(out, "model_0000001.pth"), run)
    (run / "last_checkpoint").write_text("model_0000001.pth")
    cfg2 = cfg.clone()
    cfg2.defrost()
    cfg2.OUTPUT_DIR = str(run)
    cfg2.freeze()
    saved = torch.load(run / "model_0000001.pth", map_location="cpu", weights_only=True)
    assert saved["iteration"] == 1
    trainer = Trainer(cfg2)
    trainer.resume_or_load(resume=True)
    assert trainer.start_iter == 2
    state = trainer.model.state_dict()
    for k, v in saved["model"].items():
        assert torch.equal(state[k], v), k
    trainer.train()
    rows = [r for r in _metrics(run) if "total_loss" in r]
    assert [r["iteration"] for r in rows] == [
        3
    ]  # detectron2 writes metrics every 20 its and at the end
    assert os.path.exists(run / "model_final.pth")


def test_resume_with_a_longer_schedule_extends_the_poly_lr(trained, tmp_path):
    import shutil

    from seethroughnet.engine import Trainer

    cfg, out, _ = trained
    run = tmp_path / "longer"
    run.mkdir()
    shutil.copy(os.path.join(out, "model_final.pth"), run)
    (run / "last_checkpoint").write_text("model_final.pth")
    cfg2 = cfg.clone()
    cfg2.defrost()
    cfg2.OUTPUT_DIR = str(run)
    cfg2.SOLVER.MAX_ITER = 6
    cfg2.freeze()
    trainer = Trainer(cfg2)
    trainer.resume_or_load(resume=True)
    assert trainer.start_iter == 4 and trainer.scheduler.max_iters == 6
    trainer.train()
    rows = [r for r in _metrics(run) if "total_loss" in r]
    assert rows[-1]["iteration"] == 5 and rows[-1]["lr"] > 0


def test_export_matches_semsegevaluator_through_cityscapesscripts(trained, tmp_path):
    from seethroughnet.engine import Trainer
    from seethroughnet.experiments.export import (
        evaluate_exported_predictions,
        export_predictions,
        trainid_to_labelid_lut,
    )

    cfg, out, trainer = trained
    model = trainer.model
    val = cfg.DATASETS.TEST[0]
    pred_dir = tmp_path / "val_pred"
    written = export_predictions(
        model, Trainer.build_test_loader(cfg, val), str(pred_dir), progress=False
    )
    assert len(written) == 3 and os.path.exists(str(pred_dir) + ".zip")
    # names and values as the benchmark takes them: <city>_<seq>_<frame>*.png holding labelIds
    lut = trainid_to_labelid_lut()
    for p in written:
        assert os.path.basename(p).endswith("_pred_labelIds.png")
        values = set(np.unique(np.asarray(Image.open(p))))
        assert values <= set(lut[:19].tolist())
    miou, class_scores = evaluate_exported_predictions(
        str(pred_dir), MetadataCatalog.get(val).gt_dir
    )
    model.eval()
    res = Trainer.test(cfg, model)["sem_seg"]
    # The two evaluators agree per class and on the mIoU: the project's evaluator uses
    # cityscapesscripts' definition (a class predicted but absent from the ground truth counts as
    # IoU 0, a class in neither is left out) on every detectron2 install (evaluation/metrics.py).
    compared = 0
    for name in MetadataCatalog.get(val).stuff_classes:
        if np.isnan(class_scores[name]):
            assert np.isnan(res[f"IoU-{name}"]), name
            continue
        assert abs(100 * class_scores[name] - res[f"IoU-{name}"]) < 1e-3, (
            name,
            class_scores[name],
            res[f"IoU-{name}"],
        )
        compared += 1
    assert compared >= 3
    valid = [v for v in class_scores.values() if not np.isnan(v)]
    assert miou == pytest.approx(np.mean(valid))
    assert res["mIoU"] == pytest.approx(100 * miou, abs=1e-3)

    # the test split exports too, and a used folder is refused unless overwrite
    test_dir = tmp_path / "submission"
    export_predictions(
        model,
        Trainer.build_test_loader(cfg, "cityscapes_fine_sem_seg_test"),
        str(test_dir),
        progress=False,
    )
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_predictions(
            model,
            Trainer.build_test_loader(cfg, "cityscapes_fine_sem_seg_test"),
            str(test_dir),
            progress=False,
        )
    again = export_predictions(
        model,
        Trainer.build_test_loader(cfg, "cityscapes_fine_sem_seg_test"),
        str(test_dir),
        overwrite=True,
        progress=False,
    )
    assert len(again) == 2


def test_export_cli_refuses_a_used_folder(trained, tmp_path):
    cfg, out, _ = trained
    target = tmp_path / "sub"
    (target / "x").mkdir(parents=True)
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(target / "x" / "old.png")
    r = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "tools/export_cityscapes_submission.py"),
            "--config-file",
            TINY_CONFIG,
            "--weights",
            os.path.join(out, "model_final.pth"),
            "--dataset",
            "cityscapes_fine_sem_seg_val",
            "--output",
            str(target),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert r.returncode != 0
    assert "already holds 1 PNG file(s)" in r.stderr and "--overwrite" in r.stderr


def test_checkpoint_of_another_architecture_is_refused(trained, tmp_path):
    from seethroughnet.checkpoint import CheckpointMismatchError
    from seethroughnet.engine import Trainer

    cfg, out, _ = trained
    other = _cfg(
        tmp_path,
        "MODEL.SEE_THROUGH.TRAIN_SCALES",
        "[1.0]",
        "MODEL.SEE_THROUGH.OCR_MID_CHANNELS",
        "48",
    )
    model = Trainer.build_model(other)
    with pytest.raises(CheckpointMismatchError) as e:
        Trainer.build_checkpointer(other, model).load(os.path.join(out, "model_final.pth"))
    msg = str(e.value)
    assert "model_final.pth" in msg and "unexpected keys" in msg and "net.scale_attention" in msg
    assert "shape mismatches" in msg and "WEIGHTS_ALLOW_PARTIAL" in msg
    other.MODEL.WEIGHTS_ALLOW_PARTIAL = True
    Trainer.build_checkpointer(other, model).load(
        os.path.join(out, "model_final.pth")
    )  # explicit opt-in


def test_unknown_config_key_and_wrong_type_name_the_key(tmp_path):
    from seethroughnet.config import build_config

    with pytest.raises(KeyError, match="MODEL.SEE_THROUGH.AUX_LOSSS"):
        build_config(DEMO, ["MODEL.SEE_THROUGH.AUX_LOSSS", "cpp_kl"])
    bad = tmp_path / "bad.yaml"
    bad.write_text(f'_BASE_: "{DEMO}"\nMODEL:\n  SEE_THROUGH:\n    CE_WEIGHT: "a lot"\n')
    with pytest.raises(ValueError, match="MODEL.SEE_THROUGH.CE_WEIGHT"):
        build_config(str(bad))


def test_unknown_aux_loss_lists_the_choices():
    from seethroughnet.config import build_config
    from seethroughnet.modeling.meta_arch.seethroughnet import build_seethroughnet_from_cfg

    cfg = build_config(DEMO, ["MODEL.SEE_THROUGH.AUX_LOSS", "kl_cpp"])
    with pytest.raises(ValueError, match="cpp_kl"):
        build_seethroughnet_from_cfg(cfg)


def test_non_finite_loss_stops_training_naming_term_and_iteration(
    cityscapes_root, tmp_path, monkeypatch
):
    from seethroughnet.engine import Trainer
    from seethroughnet.nn.seethroughnet import SeeThroughNet

    original = SeeThroughNet.losses

    def poisoned(self, outputs, labels):
        losses = original(self, outputs, labels)
        losses["loss_cpp_s8_r1.0"] = losses["loss_cpp_s8_r1.0"] * float("nan")
        return losses

    monkeypatch.setattr(SeeThroughNet, "losses", poisoned)
    cfg = _cfg(tmp_path)
    cfg.freeze()
    trainer = Trainer(cfg)
    with pytest.raises(FloatingPointError, match=r"iteration 0: loss_cpp_s8_r1.0 = nan"):
        trainer.train()


@pytest.mark.parametrize("path", ABLATIONS, ids=[os.path.basename(p) for p in ABLATIONS])
def test_table4_ablation_configs_build_and_differ_only_in_two_keys(path):
    from seethroughnet.config import build_config
    from seethroughnet.modeling.meta_arch.seethroughnet import build_seethroughnet_from_cfg

    cfg = build_config(path)
    net = build_seethroughnet_from_cfg(cfg)
    assert net.aux_loss.kind == cfg.MODEL.SEE_THROUGH.AUX_LOSS
    assert net.decoder.use_scale_attention == cfg.MODEL.SEE_THROUGH.USE_SCALE_ATTENTION
    assert sum(p.numel() for p in net.encoder.parameters()) > 60e6  # HRNetV2-W48

    def flat(c, prefix=""):
        out = {}
        for k, v in c.items():
            out.update(flat(v, prefix + k + ".") if isinstance(v, CfgNode) else {prefix + k: v})
        return out

    reference = flat(build_config(ABLATIONS[0]))
    differing = {k for k, v in flat(cfg).items() if reference[k] != v}
    # the Mapillary-initialised variants (*_mapillary.yaml) also change the initialisation only
    init = (
        {"MODEL.WEIGHTS", "MODEL.HRNET.CHECKPOINT"} if path.endswith("_mapillary.yaml") else set()
    )
    assert (
        differing
        <= {
            "MODEL.SEE_THROUGH.AUX_LOSS",
            "MODEL.SEE_THROUGH.USE_SCALE_ATTENTION",
            "OUTPUT_DIR",
        }
        | init
    )
    if init:  # and equal their ImageNet-initialised twin in everything else
        twin = flat(build_config(path.replace("_mapillary.yaml", ".yaml")))
        assert {k for k, v in flat(cfg).items() if twin[k] != v} <= init | {"OUTPUT_DIR"}


_DDP_SCRIPT = r"""
import os, sys, torch
import numpy as np
sys.path.insert(0, {repo!r} + "/projects/SeeThroughNet")
from detectron2.engine import launch
from detectron2.utils import comm

def main(out):
    from seethroughnet.data.datasets import register_all
    from seethroughnet.engine import Trainer
    from seethroughnet.config import build_config
    register_all()
    # the same 3 iterations without and with activation checkpointing of every part
    for name, parts in (("plain", "[]"), ("checkpointed", "['encoder', 'decoder', 'ocr']")):
        # SyncBN as in the W48 configs: the CPU trainer must convert it (SyncBatchNorm trains only
        # on GPUs)
        cfg = build_config({tiny_config!r}, [
            "OUTPUT_DIR", os.path.join(out, name), "SOLVER.MAX_ITER", "3",
            "SOLVER.IMS_PER_BATCH", "4", "MODEL.HRNET.NORM", "SyncBN",
            "MODEL.SEE_THROUGH.HEAD_NORM", "SyncBN",
            "MODEL.SEE_THROUGH.CHECKPOINT_ACTIVATIONS", parts,
        ])
        cfg.freeze()
        assert cfg.MODEL.DEVICE == "cpu"
        torch.manual_seed(comm.get_rank())  # different initial weights: DDP broadcasts rank 0's
        np.random.seed(0)  # the data stream's seed (comm.shared_random_seed): the same in both runs
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=False)
        trainer.train()
        assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in trainer.model.modules())
        assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in trainer.model.modules()) > 50
        model = trainer.model.module
        state = {{
            "params": {{k: v.detach().clone() for k, v in model.named_parameters()}},
            "buffers": {{k: v.detach().clone() for k, v in model.named_buffers()}},
        }}
        torch.save(state, os.path.join(out, f"{{name}}_rank{{comm.get_rank()}}.pth"))
        assert torch.distributed.get_backend() == "gloo"
        comm.synchronize()

if __name__ == "__main__":
    launch(main, 2, dist_url="auto", args=(sys.argv[1],))
"""


@pytest.mark.slow
def test_two_process_gloo_training_with_syncbn_config_keeps_weights_identical(
    cityscapes_root, tmp_path
):
    """DDP on two gloo processes: the ranks end with the same weights and BatchNorm statistics;
    with activation checkpointing (MODEL.SEE_THROUGH.CHECKPOINT_ACTIVATIONS) they are the plain
    run's (gradients all-reduced from the recomputed backward, BN statistics updated once)."""
    script = tmp_path / "ddp.py"
    script.write_text(_DDP_SCRIPT.format(repo=REPO, tiny_config=TINY_CONFIG))
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    runs = {
        n: [torch.load(tmp_path / f"{n}_rank{i}.pth") for i in (0, 1)]
        for n in ("plain", "checkpointed")
    }
    for name, (r0, r1) in runs.items():  # DDP: the same parameters on both ranks
        p0, p1 = r0["params"], r1["params"]
        assert p0.keys() == p1.keys() and len(p0) > 100, name
        for k in p0:
            assert torch.equal(p0[k], p1[k]), (name, k)
    for rank in (0, 1):  # checkpointed = plain: parameters and each rank's own BN statistics
        plain, ckpt = runs["plain"][rank], runs["checkpointed"][rank]
        for kind in ("params", "buffers"):
            assert plain[kind].keys() == ckpt[kind].keys()
            for k, want in plain[kind].items():
                if k.endswith("num_batches_tracked"):
                    assert torch.equal(ckpt[kind][k], want), k
                else:
                    torch.testing.assert_close(ckpt[kind][k], want, rtol=1e-4, atol=1e-5, msg=k)


def test_registered_hrnetv2_backbone_output_shape_matches_its_features():
    from detectron2.modeling import build_backbone

    from seethroughnet.config import build_config

    cfg = build_config(DEMO, ["MODEL.BACKBONE.NAME", "build_hrnetv2_backbone"])
    backbone = build_backbone(cfg)
    shapes = backbone.output_shape()
    assert {k: v.stride for k, v in shapes.items()} == {
        "res2": 4,
        "res3": 8,
        "res4": 16,
        "res5": 32,
    }
    feats = backbone(torch.zeros(1, 3, 64, 128))
    for k, f in feats.items():
        assert f.shape[1] == shapes[k].channels
        assert f.shape[-2:] == (64 // shapes[k].stride, 128 // shapes[k].stride)


def test_training_refuses_random_init_where_the_config_requires_pretrained(
    cityscapes_root, tmp_path, trained
):
    """Base-SeeThroughNet.yaml sets MODEL.REQUIRES_PRETRAINED; the demo opts out with
    MODEL.ALLOW_RANDOM_INIT (the `trained` fixture is that path). Without the opt-out, training
    stops before the first step naming the keys; resuming an existing run is not blocked."""
    import shutil

    from seethroughnet.engine import RandomInitError, Trainer

    cfg = _cfg(tmp_path / "fresh", "MODEL.ALLOW_RANDOM_INIT", "False")
    assert cfg.MODEL.REQUIRES_PRETRAINED
    cfg.freeze()
    trainer = Trainer(cfg)
    with pytest.raises(
        RandomInitError, match=r"MODEL.HRNET.CHECKPOINT .*MODEL.ALLOW_RANDOM_INIT True"
    ):
        trainer.resume_or_load(resume=False)
    # a run with a checkpoint resumes without the guard
    _, out, _ = trained
    copy = tmp_path / "resumed"
    shutil.copytree(out, copy)
    cfg = _cfg(copy, "MODEL.ALLOW_RANDOM_INIT", "False")
    cfg.freeze()
    Trainer(cfg).resume_or_load(resume=True)


def test_amp_on_cpu_trains_with_bfloat16_autocast(cityscapes_root, tmp_path, monkeypatch):
    """SOLVER.AMP.ENABLED on CPU: the project's step trainer runs the forward pass under bfloat16
    autocast (seen inside the model), every logged loss term is finite."""
    from seethroughnet.engine import CPUAutocastTrainer, Trainer
    from seethroughnet.nn.seethroughnet import SeeThroughNet

    seen = []
    original = SeeThroughNet.forward

    def spy(self, images):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return original(self, images)

    monkeypatch.setattr(SeeThroughNet, "forward", spy)
    cfg = _cfg(
        tmp_path,
        "SOLVER.AMP.ENABLED",
        "True",
        "SOLVER.MAX_ITER",
        "2",
        "SOLVER.CHECKPOINT_PERIOD",
        "100",
    )
    cfg.freeze()
    trainer = Trainer(cfg)
    assert isinstance(trainer.step_loop, CPUAutocastTrainer)
    trainer.resume_or_load(resume=False)
    trainer.train()
    train_seen = seen[:2]
    assert train_seen and all(on and dtype == torch.bfloat16 for on, dtype in train_seen)
    rows = [r for r in _metrics(tmp_path) if "total_loss" in r]
    assert rows and all(np.isfinite(v) for k, v in rows[-1].items() if k.startswith("loss_"))
