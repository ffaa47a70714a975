"""Issue 15 at the entry points: train_net.py, the export, the CPP study and Table 5 runners,
transfer/train_net.py, the visualisation and figure tools refuse a config or weight file that
would run code (``evil``, tests/utils/conftest.py), naming the file and the opt-in; the opt-ins
are forwarded. The file-level checks are in test_safe_loading.py."""

import importlib.util
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("detectron2")

# the plain loader's error (seethroughnet.nn.weights): the encoder builders raise it, and the
# detectron2 glue's UntrustedWeightsError is its subclass, so it catches a refusal from either
from seethroughnet.nn.weights import UntrustedWeightsError  # noqa: E402
from seethroughnet.utils.safe_load import UnsafeConfigError  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEMO = str(
    REPO / "projects/SeeThroughNet/configs/Cityscapes-Synthetic/seethroughnet_W18small_demo.yaml"
)
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}
TINY_CONFIG = str(REPO / "tests/configs/seethroughnet_tiny.yaml")  # the tests' tiny SeeThroughNet
SEMSEG_CONFIG = str(REPO / "tests/configs/semantic_segmentor_tiny.yaml")  # plain detectron2


def _train_net():
    spec = importlib.util.spec_from_file_location(
        "stn_train_net", REPO / "projects/SeeThroughNet/train_net.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_train_net_cli_refuses_an_unsafe_config(evil):
    r = subprocess.run(
        [
            sys.executable,
            str(REPO / "projects/SeeThroughNet/train_net.py"),
            "--config-file",
            str(evil.yaml),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=evil.dir,
    )
    assert r.returncode != 0
    evil.refused_config(r.stderr, evil.yaml)
    assert not evil.marker.exists()


def test_train_net_cli_allow_unsafe_config_then_refuses_the_weights(evil, tmp_path):
    """--allow-unsafe-config reads a config with a Python tag; --eval-only then refuses the
    weight file holding a payload (MODEL.WEIGHTS goes through the project's checkpointer)."""
    tup = tmp_path / "tuple.yaml"
    tup.write_text(
        f'_BASE_: "{TINY_CONFIG}"\nINPUT:\n  CROP:\n    SIZE: !!python/tuple [64, 128]\n'
    )
    r = subprocess.run(
        [
            sys.executable,
            str(REPO / "projects/SeeThroughNet/train_net.py"),
            "--config-file",
            str(tup),
            "--allow-unsafe-config",
            "--eval-only",
            "MODEL.WEIGHTS",
            str(evil.pth),
            "OUTPUT_DIR",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
    )
    assert r.returncode != 0
    evil.refused_weights(r.stderr, evil.pth)
    assert "UnsafeConfigError" not in r.stderr
    assert not evil.marker.exists()


def test_train_net_trust_weights_file_flag(evil, tmp_path):
    """--trust-weights-file (parsed by train_net.py's parser) sets MODEL.WEIGHTS_TRUSTED, and the
    eval-only load then unpickles the file (the payload runs; the checkpoint does not fit the
    model, which the strict checkpointer reports)."""
    from detectron2.engine import default_argument_parser

    from seethroughnet.checkpoint import CheckpointMismatchError
    from seethroughnet.utils.safe_load import add_safety_arguments

    args = add_safety_arguments(default_argument_parser()).parse_args(
        [
            "--config-file",
            TINY_CONFIG,
            "--eval-only",
            "--trust-weights-file",
            "MODEL.WEIGHTS",
            str(evil.pth),
            "OUTPUT_DIR",
            str(tmp_path / "out"),
        ]
    )
    with pytest.raises(CheckpointMismatchError):
        _train_net().main(args)
    assert evil.marker.exists()


def test_export_tool_refuses_config_and_weights(evil, tmp_path):
    from seethroughnet.experiments import export as ex

    base = ["--dataset", "cityscapes_fine_sem_seg_val", "--output", str(tmp_path / "sub")]
    with pytest.raises(SystemExit) as e:
        ex.main(["--config-file", str(evil.yaml), "--weights", str(evil.pth), *base])
    evil.refused_config(str(e.value.code), evil.yaml)
    assert str(e.value.code).startswith("error: ")
    with pytest.raises(SystemExit) as e:
        ex.main(["--config-file", TINY_CONFIG, "--weights", str(evil.pth), *base])
    evil.refused_weights(str(e.value.code), evil.pth)
    assert not evil.marker.exists()
    with pytest.raises(Exception):  # trusted: the file is unpickled, then does not fit the model
        ex.main(
            [
                "--config-file",
                TINY_CONFIG,
                "--weights",
                str(evil.pkl),
                "--trust-weights-file",
                *base,
            ]
        )
    assert evil.marker.exists()


def test_cpp_study_runner_refuses_and_forwards_the_flags(evil, tmp_path, monkeypatch):
    from seethroughnet.experiments import cpp_study as rs
    from seethroughnet.experiments import grid as grid_runner

    out = tmp_path / "cell"
    assert rs.main(["cell", "--config", str(evil.yaml), "--out", str(out)]) == 1
    res = json.loads((out / "result.json").read_text())
    assert res["status"] == "failed" and res["error"].startswith("UnsafeConfigError")
    evil.refused_config(res["error"], evil.yaml)
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        f'models: !!python/object/apply:os.system ["touch {evil.marker}"]\ndatasets: {{}}\n'
    )
    with pytest.raises(UnsafeConfigError, match="grid file"):
        rs.load_grid(str(grid))
    assert not evil.marker.exists()

    # `run` passes the opt-ins on to every cell's subprocess
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return SimpleNamespace(returncode=1)

    monkeypatch.setattr(grid_runner.subprocess, "run", fake_run)
    ok = tmp_path / "ok.yaml"
    ok.write_text(
        "models: {m: {config: a.yaml}}\ndatasets: {d: {train: t, test: v}}\n"
        "variants: {cpp: {loss: cpp_kl, num_heads: 1}}\ntable1: {baseline: cpp, cpp: cpp}\n"
    )
    rs.main(
        [
            "run",
            str(ok),
            "--out",
            str(tmp_path / "study"),
            "--allow-unsafe-config",
            "--trust-weights-file",
        ]
    )
    assert calls and all("--allow-unsafe-config" in c for c in calls)
    assert all(c[-2:] == ["MODEL.WEIGHTS_TRUSTED", "True"] for c in calls)
    calls.clear()
    rs.main(["run", str(ok), "--out", str(tmp_path / "study2")])
    assert calls and not any(
        "--allow-unsafe-config" in c or "MODEL.WEIGHTS_TRUSTED" in c for c in calls
    )


def test_table5_runner_and_transfer_train_net_refuse_an_unsafe_config(evil, tmp_path, monkeypatch):
    import functools

    from transfer import table5 as rt
    from transfer.table5 import CellError
    from transfer.table5_grid import DETECTORS, Cell

    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / DETECTORS["mask_rcnn"][1]).write_text(evil.yaml.read_text())
    monkeypatch.setattr(
        rt, "cell_command", functools.partial(rt.cell_command, config_dir=str(configs))
    )
    run = rt.subprocess_runner(weights={"imagenet": str(evil.pth)})
    cell_dir = tmp_path / "cell"
    cell_dir.mkdir()
    with pytest.raises(CellError) as e:
        run(Cell("mask_rcnn", "imagenet", "finetune"), str(cell_dir))
    assert "UnsafeConfigError" in str(e.value)
    evil.refused_config(str(e.value), configs / DETECTORS["mask_rcnn"][1])
    assert not evil.marker.exists()

    from transfer.train_net import cli

    with pytest.raises(UnsafeConfigError) as e:  # in process, and its _BASE_ chain
        cli(["--config-file", str(evil.top)])
    evil.refused_config(str(e.value), evil.yaml)
    assert not evil.marker.exists()


def test_transfer_encoder_weights_and_checkpointer(evil, tmp_path):
    from seethroughnet.config import add_seethroughnet_config
    from seethroughnet.nn.hrnet import HRNetV2Encoder
    from transfer.encoder_init import read_state_dict
    from transfer.modeling import build_transfer_encoder
    from transfer.train_net import build_checkpointer

    for init in ("seethroughnet", "imagenet"):
        with pytest.raises(UntrustedWeightsError) as e:
            build_transfer_encoder(
                variant="hrnet_w18_small_v2", encoder_init=init, encoder_weights=str(evil.pth)
            )
        evil.refused_weights(str(e.value), evil.pth)
    with pytest.raises(UntrustedWeightsError):
        read_state_dict(str(evil.pkl))
    from detectron2.config import get_cfg

    cfg = add_seethroughnet_config(get_cfg())
    with pytest.raises(UntrustedWeightsError):
        build_checkpointer(cfg, nn.Linear(2, 2)).load(str(evil.pth))
    assert not evil.marker.exists()

    # a SeeThroughNet checkpoint (.pth, and the same as a numpy .pkl) initialises the encoder ...
    enc = HRNetV2Encoder("hrnet_w18_small_v2")
    state = {"backbone.encoder." + k: v for k, v in enc.state_dict().items()}
    torch.save({"model": state, "iteration": 3}, tmp_path / "stn.pth")
    with open(tmp_path / "stn.pkl", "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in state.items()}, "__author__": "x"}, f)
    for name in ("stn.pth", "stn.pkl"):
        got, report = build_transfer_encoder(
            variant="hrnet_w18_small_v2",
            encoder_init="seethroughnet",
            encoder_weights=str(tmp_path / name),
        )
        assert report["loaded"] == len(state) and torch.equal(
            got.body.conv1.weight, enc.body.conv1.weight
        )
    # ... and with MODEL.WEIGHTS_TRUSTED a checkpoint holding other objects is read (payload runs)
    torch.save({"model": state, "payload": evil.payload()}, tmp_path / "stn_evil.pth")
    build_transfer_encoder(
        variant="hrnet_w18_small_v2",
        encoder_init="seethroughnet",
        encoder_weights=str(tmp_path / "stn_evil.pth"),
        trust_weights=True,
    )
    assert evil.marker.exists()


def test_visualisation_tools_refuse_configs_and_weights(evil, tmp_path, capsys):
    from PIL import Image

    from seethroughnet.visualization import commands

    img = tmp_path / "i.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(img)
    out = str(tmp_path / "o.png")
    cam = ["--image", str(img), "--class", "class 1", "--output", out]
    assert commands.gradcam_main(["--config-file", str(evil.yaml), *cam]) == 2
    evil.refused_config(capsys.readouterr().err, evil.yaml)
    assert (
        commands.overlay_main(
            ["--config-file", str(evil.top), "--input", str(img), "--output", out]
        )
        == 2
    )
    evil.refused_config(capsys.readouterr().err, evil.yaml)
    assert (
        commands.compare_main(
            [
                "--baseline-config-file",
                str(evil.yaml),
                "--cpp-config-file",
                DEMO,
                "--image",
                str(img),
                "--class",
                "car",
                "--output",
                out,
            ]
        )
        == 2
    )
    evil.refused_config(capsys.readouterr().err, evil.yaml)
    semseg = SEMSEG_CONFIG
    for w in (evil.pth, evil.pkl):
        assert commands.gradcam_main(["--config-file", semseg, "--weights", str(w), *cam]) == 2
        evil.refused_weights(capsys.readouterr().err, w)
    assert not evil.marker.exists()
    # opt-in: the file is unpickled (the payload runs), then its keys do not fit the model
    assert (
        commands.gradcam_main(
            ["--config-file", semseg, "--weights", str(evil.pth), "--trust-weights-file", *cam]
        )
        == 2
    )
    assert "does not match" in capsys.readouterr().err
    assert evil.marker.exists()


def test_figure_tools_read_results_without_unpickling_objects(evil, tmp_path, capsys):
    from seethroughnet.visualization import commands
    from seethroughnet.visualization.figures import read_iou

    res = {"sem_seg": {"mIoU": 50.0, "IoU-road": 90.0, "IoU-car": 10.0}}
    (tmp_path / "r.json").write_text(json.dumps(res))
    torch.save(res, tmp_path / "r.pth")
    with open(tmp_path / "r.pkl", "wb") as f:
        pickle.dump(res, f)
    for name in ("r.json", "r.pth", "r.pkl"):
        assert read_iou(str(tmp_path / name)) == ({"road": 90.0, "car": 10.0}, 50.0)
    for path in (evil.pth, evil.pkl):
        with pytest.raises(UntrustedWeightsError) as e:
            read_iou(str(path))
        assert str(path) in str(e.value) and "JSON" in str(e.value)
        assert (
            commands.iou_main(
                [str(path), str(tmp_path / "r.json"), "--output", str(tmp_path / "iou.png")]
            )
            == 2
        )
        assert str(path) in capsys.readouterr().err
    assert not evil.marker.exists()
