"""Issue 15: opening a config or a weight file never runs code from it.

Every file below carries a payload that would create a marker file when parsed / unpickled:
a YAML ``!!python/object/apply:os.system`` tag, a ``.pth`` and a ``.pkl`` holding a pickled
``os.system`` call. Each entry point refuses them with a message naming the file and the opt-in,
and the marker never appears; the opt-ins (``--allow-unsafe-config``, ``--trust-weights-file`` /
``MODEL.WEIGHTS_TRUSTED``) do load them (the marker then appears, which also shows the payloads
are live); the project's own checkpoints, timm / torchvision state dicts and Detectron-style
numpy ``.pkl`` files still load."""

import importlib.util
import json
import os
import pickle
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("detectron2")

from seethroughnet.utils.safe_load import (  # noqa: E402
    RestrictedUnpickler,
    UnsafeConfigError,
    UntrustedWeightsError,
    load_weights_file,
    load_yaml_file,
)

REPO = Path(__file__).resolve().parents[2]
DEMO = str(
    REPO / "projects/SeeThroughNet/configs/Cityscapes-Synthetic/seethroughnet_W18small_demo.yaml"
)
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}
TINY_CONFIG = str(REPO / "tests/configs/seethroughnet_tiny.yaml")  # the tests' tiny SeeThroughNet
SEMSEG_CONFIG = str(REPO / "tests/configs/semantic_segmentor_tiny.yaml")  # plain detectron2


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class Payload:
    """Pickles as ``os.system("touch MARKER")``: unpickling it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def _linear_state():
    return {"weight": torch.arange(4.0).reshape(2, 2), "bias": torch.tensor([1.0, -1.0])}


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "MARKER"
    ns = SimpleNamespace(marker=marker, dir=tmp_path)
    ns.yaml = tmp_path / "evil.yaml"
    ns.yaml.write_text(f'MODEL:\n  DEVICE: !!python/object/apply:os.system ["touch {marker}"]\n')
    ns.top = tmp_path / "top.yaml"  # a clean file whose _BASE_ holds the payload
    ns.top.write_text("_BASE_: evil.yaml\nSEED: 3\n")
    ns.pth = tmp_path / "evil.pth"  # a loadable nn.Linear(2, 2) checkpoint plus the payload
    torch.save({"model": _linear_state(), "iteration": 7, "payload": Payload(marker)}, ns.pth)
    ns.pkl = tmp_path / "evil.pkl"
    with open(ns.pkl, "wb") as f:
        pickle.dump(
            {
                "model": {k: v.numpy() for k, v in _linear_state().items()},
                "__author__": "test",
                "payload": Payload(marker),
            },
            f,
            protocol=2,
        )
    return ns


def _refused_config(msg, path, line=2):
    assert (
        str(path) in msg and "!!python/object/apply:os.system" in msg and f"line {line}" in msg
    ), msg
    assert "--allow-unsafe-config" in msg, msg


def _refused_weights(msg, path):
    assert str(path) in msg and "posix.system" in msg, msg
    assert "--trust-weights-file" in msg and "MODEL.WEIGHTS_TRUSTED" in msg, msg


# ------------------------------------------------------------------------------------ configs
def test_yaml_python_tag_refused_by_the_config_builders(evil):
    from seethroughnet.config import build_config

    for load in (load_yaml_file, build_config):
        with pytest.raises(UnsafeConfigError) as e:
            load(str(evil.yaml))
        _refused_config(str(e.value), evil.yaml)
    with pytest.raises(UnsafeConfigError) as e:  # _BASE_ files are checked too
        build_config(str(evil.top))
    _refused_config(str(e.value), evil.yaml)
    assert f"_BASE_ of {evil.top}" in str(e.value)
    assert not evil.marker.exists()


def test_detectron2_is_never_asked_to_fall_back_to_unsafe_yaml(evil, monkeypatch):
    """Defence in depth: even if the tag scan missed the tag, detectron2's merge_from_file is
    called with allow_unsafe=False and so raises instead of calling yaml.unsafe_load."""
    import yaml

    from seethroughnet.config import build_config
    from seethroughnet.utils import safe_load

    monkeypatch.setattr(safe_load, "_config_chain", lambda path, allow_unsafe: [])  # skip the scan
    with pytest.raises(yaml.constructor.ConstructorError):
        build_config(str(evil.yaml))
    assert not evil.marker.exists()


def test_allow_unsafe_config_opt_in(evil, tmp_path):
    from seethroughnet.config import build_config

    load_yaml_file(str(evil.yaml), allow_unsafe=True)
    assert evil.marker.exists()  # the payload is live: the refusals above are real
    tup = tmp_path / "tuple.yaml"
    tup.write_text(
        f'_BASE_: "{TINY_CONFIG}"\nINPUT:\n  CROP:\n    SIZE: !!python/tuple [64, 128]\n'
    )
    with pytest.raises(UnsafeConfigError, match="!!python/tuple"):
        build_config(str(tup))
    assert tuple(build_config(str(tup), allow_unsafe=True).INPUT.CROP.SIZE) == (64, 128)


def test_a_config_file_cannot_vouch_for_weights(tmp_path):
    from seethroughnet.config import build_config

    bad = tmp_path / "trusting.yaml"
    bad.write_text(f'_BASE_: "{DEMO}"\nMODEL:\n  WEIGHTS_TRUSTED: True\n')
    with pytest.raises(UnsafeConfigError) as e:
        build_config(str(bad))
    assert str(bad) in str(e.value) and "--trust-weights-file" in str(e.value)
    assert build_config(DEMO).MODEL.WEIGHTS_TRUSTED is False
    assert build_config(DEMO, ["MODEL.WEIGHTS_TRUSTED", "True"]).MODEL.WEIGHTS_TRUSTED is True


def test_project_configs_are_plain_yaml():
    from seethroughnet.utils.safe_load import find_unsafe_yaml_tag

    files = list(REPO.glob("projects/SeeThroughNet/configs/**/*.yaml")) + list(
        REPO.glob("transfer/configs/*.yaml")
    )
    assert len(files) > 10
    assert [f for f in files if find_unsafe_yaml_tag(f.read_text(), str(f))] == []


# ------------------------------------------------------------------------------------ weights
def test_weight_files_with_pickled_code_are_refused(evil):
    from seethroughnet.checkpoint import SafeCheckpointer
    from seethroughnet.config import build_config
    from seethroughnet.engine import Trainer

    cfg = build_config(DEMO)
    for path in (evil.pth, evil.pkl):
        with pytest.raises(UntrustedWeightsError) as e:
            load_weights_file(str(path))
        _refused_weights(str(e.value), path)
        for ckp in (
            Trainer.build_checkpointer(cfg, nn.Linear(2, 2)),
            SafeCheckpointer(nn.Linear(2, 2)),
        ):
            with pytest.raises(UntrustedWeightsError) as e:
                ckp.load(str(path))
            _refused_weights(str(e.value), path)
    assert not evil.marker.exists()


@pytest.mark.parametrize("kind", ["pth", "pkl"])
def test_trust_weights_opt_in(evil, kind):
    from seethroughnet.config import build_config
    from seethroughnet.engine import Trainer

    path = str(getattr(evil, kind))
    cfg = build_config(DEMO, ["MODEL.WEIGHTS_TRUSTED", "True"])
    model = nn.Linear(2, 2)
    Trainer.build_checkpointer(cfg, model).load(path)
    assert evil.marker.exists()
    assert torch.equal(model.weight.detach(), _linear_state()["weight"])


def test_restricted_unpickler_builds_only_plain_data_and_numpy():
    data = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "f": np.asfortranarray(np.ones((2, 3))),
        "s": np.float32(1.5),
        "i": np.int64(3),
        "b": b"xy",
        "t": (1, 2.5, "x", None, True),
        "l": [np.zeros(0, np.uint8)],
        "c": 1 + 2j,
        "u": np.array(["ab"]),
        "set": {1, 2},
    }
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        out = RestrictedUnpickler(
            __import__("io").BytesIO(pickle.dumps(data, protocol=proto)), encoding="latin1"
        ).load()
        assert out.keys() == data.keys()
        for k in ("a", "f", "u"):
            assert np.array_equal(out[k], data[k]) and out[k].dtype == data[k].dtype, (proto, k)
        assert (
            out["s"] == np.float32(1.5)
            and out["t"] == data["t"]
            and out["b"] == b"xy"
            and out["set"] == {1, 2}
        )
    up = RestrictedUnpickler(__import__("io").BytesIO(b""))
    for module, name in [
        ("builtins", "eval"),
        ("numpy", "load"),
        ("numpy", "frombuffer"),
        ("os", "system"),
        ("numpy._core.multiarray", "fromstring"),
        ("torch", "load"),
    ]:
        with pytest.raises(pickle.UnpicklingError, match=f"{module}.{name} is not allowed"):
            up.find_class(module, name)


def test_detectron_style_numpy_pkl_loads(tmp_path):
    """detectron2 model-zoo layout ({"model": ..., "__author__": ...}) and Caffe2 / Detectron1
    layout ({"blobs": ...}, momenta dropped, name-matching heuristics) through the project's
    checkpointer."""
    from seethroughnet.checkpoint import StrictCheckpointer

    state = {k: v.numpy() for k, v in _linear_state().items()}
    zoo = tmp_path / "zoo.pkl"
    with open(zoo, "wb") as f:
        pickle.dump({"model": state, "__author__": "Detectron2 Model Zoo"}, f)
    model = nn.Linear(2, 2)
    StrictCheckpointer(model).load(str(zoo))
    assert torch.equal(model.weight.detach(), _linear_state()["weight"])
    c2 = tmp_path / "c2.pkl"
    with open(c2, "wb") as f:
        pickle.dump(
            {
                "blobs": {
                    "fc.weight": state["weight"],
                    "fc.bias": state["bias"],
                    "fc.weight_momentum": np.zeros((2, 2), np.float32),
                }
            },
            f,
            protocol=2,
        )
    model = nn.Sequential()
    model.add_module("fc", nn.Linear(2, 2))
    StrictCheckpointer(model).load(str(c2))
    assert torch.equal(model.fc.bias.detach(), _linear_state()["bias"])


def test_timm_and_torchvision_state_dicts_load(tmp_path, evil):
    import timm
    import torchvision

    from seethroughnet.checkpoint import StrictCheckpointer
    from seethroughnet.nn.hrnet import HRNetV2Encoder

    src = timm.create_model("hrnet_w18_small_v2", pretrained=False)
    torch.save(src.state_dict(), tmp_path / "timm.pth")
    enc = HRNetV2Encoder("hrnet_w18_small_v2", checkpoint=str(tmp_path / "timm.pth"))
    assert torch.equal(enc.body.conv1.weight, src.conv1.weight)
    with pytest.raises(UntrustedWeightsError) as e:  # an ImageNet checkpoint with a payload
        HRNetV2Encoder("hrnet_w18_small_v2", checkpoint=str(evil.pth))
    _refused_weights(str(e.value), evil.pth)
    assert not evil.marker.exists()

    tv = torchvision.models.resnet18(num_classes=3)
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    other = torchvision.models.resnet18(num_classes=3)
    StrictCheckpointer(other).load(str(tmp_path / "tv.pth"))
    assert torch.equal(other.fc.weight, tv.fc.weight)


def test_project_checkpoint_with_optimizer_and_schedule_resumes_weights_only(tmp_path):
    """What detectron2's trainer saves (model, optimizer, scheduler, iteration) loads with
    weights_only=True and resumes through the project's checkpointer (the full trainer's resume
    is covered in test_seethroughnet_train_net.py)."""
    from detectron2.projects.deeplab.lr_scheduler import WarmupPolyLR

    from seethroughnet.checkpoint import StrictCheckpointer

    def make():
        model = nn.Linear(2, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return model, opt, WarmupPolyLR(opt, max_iters=10, warmup_iters=2)

    model, opt, sched = make()
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    sched.step()
    StrictCheckpointer(model, str(tmp_path), optimizer=opt, scheduler=sched).save(
        "model_0000000", iteration=0
    )
    assert set(torch.load(tmp_path / "model_0000000.pth", weights_only=True)) >= {
        "model",
        "optimizer",
        "scheduler",
        "iteration",
    }
    model2, opt2, sched2 = make()
    extra = StrictCheckpointer(
        model2, str(tmp_path), optimizer=opt2, scheduler=sched2
    ).resume_or_load("", resume=True)
    assert extra["iteration"] == 0 and sched2.last_epoch == sched.last_epoch
    assert (
        torch.equal(model2.weight, model.weight)
        and opt2.state_dict()["state"].keys() == opt.state_dict()["state"].keys()
    )


# ------------------------------------------------------------------------------- entry points
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
    _refused_config(r.stderr, evil.yaml)
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
    _refused_weights(r.stderr, evil.pth)
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
    _refused_config(str(e.value.code), evil.yaml)
    assert str(e.value.code).startswith("error: ")
    with pytest.raises(SystemExit) as e:
        ex.main(["--config-file", TINY_CONFIG, "--weights", str(evil.pth), *base])
    _refused_weights(str(e.value.code), evil.pth)
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
    _refused_config(res["error"], evil.yaml)
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
    _refused_config(str(e.value), configs / DETECTORS["mask_rcnn"][1])
    assert not evil.marker.exists()

    from transfer.train_net import cli

    with pytest.raises(UnsafeConfigError) as e:  # in process, and its _BASE_ chain
        cli(["--config-file", str(evil.top)])
    _refused_config(str(e.value), evil.yaml)
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
        _refused_weights(str(e.value), evil.pth)
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
    torch.save({"model": state, "payload": Payload(evil.marker)}, tmp_path / "stn_evil.pth")
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
    _refused_config(capsys.readouterr().err, evil.yaml)
    assert (
        commands.overlay_main(
            ["--config-file", str(evil.top), "--input", str(img), "--output", out]
        )
        == 2
    )
    _refused_config(capsys.readouterr().err, evil.yaml)
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
    _refused_config(capsys.readouterr().err, evil.yaml)
    semseg = SEMSEG_CONFIG
    for w in (evil.pth, evil.pkl):
        assert commands.gradcam_main(["--config-file", semseg, "--weights", str(w), *cam]) == 2
        _refused_weights(capsys.readouterr().err, w)
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
