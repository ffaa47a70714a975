"""Issue 15: opening a config or a weight file never runs code from it.

Every file below carries a payload that would create a marker file when parsed / unpickled:
a YAML ``!!python/object/apply:os.system`` tag, a ``.pth`` and a ``.pkl`` holding a pickled
``os.system`` call. Each entry point refuses them with a message naming the file and the opt-in,
and the marker never appears; the opt-ins (``--allow-unsafe-config``, ``--trust-weights-file`` /
``MODEL.WEIGHTS_TRUSTED``) do load them (the marker then appears, which also shows the payloads
are live); the project's own checkpoints, timm / torchvision state dicts and Detectron-style
numpy ``.pkl`` files still load."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("detectron2")

from seethroughnet.nn.weights import UntrustedWeightsError as NNUntrustedWeightsError  # noqa: E402
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
TINY_CONFIG = str(REPO / "tests/configs/seethroughnet_tiny.yaml")  # the tests' tiny SeeThroughNet


def test_yaml_python_tag_refused_by_the_config_builders(evil):
    from seethroughnet.config import build_config

    for load in (load_yaml_file, build_config):
        with pytest.raises(UnsafeConfigError) as e:
            load(str(evil.yaml))
        evil.refused_config(str(e.value), evil.yaml)
    with pytest.raises(UnsafeConfigError) as e:  # _BASE_ files are checked too
        build_config(str(evil.top))
    evil.refused_config(str(e.value), evil.yaml)
    assert f"_BASE_ of {evil.top}" in str(e.value)
    assert not evil.marker.exists()


def test_fvcore_itself_refuses_unsafe_yaml(evil, monkeypatch):
    """fvcore does the reading (merge_from_file with allow_unsafe=False, yaml.safe_load): with the
    project's explanation of a failure switched off, fvcore's own ConstructorError stops the
    load and the payload never runs."""
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
        evil.refused_weights(str(e.value), path)
        for ckp in (
            Trainer.build_checkpointer(cfg, nn.Linear(2, 2)),
            SafeCheckpointer(nn.Linear(2, 2)),
        ):
            with pytest.raises(UntrustedWeightsError) as e:
                ckp.load(str(path))
            evil.refused_weights(str(e.value), path)
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
    assert torch.equal(model.weight.detach(), evil.linear_state()["weight"])


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


def test_detectron_style_numpy_pkl_loads(evil, tmp_path):
    """detectron2 model-zoo layout ({"model": ..., "__author__": ...}) and Caffe2 / Detectron1
    layout ({"blobs": ...}, momenta dropped, name-matching heuristics) through the project's
    checkpointer."""
    from seethroughnet.checkpoint import StrictCheckpointer

    state = {k: v.numpy() for k, v in evil.linear_state().items()}
    zoo = tmp_path / "zoo.pkl"
    with open(zoo, "wb") as f:
        pickle.dump({"model": state, "__author__": "Detectron2 Model Zoo"}, f)
    model = nn.Linear(2, 2)
    StrictCheckpointer(model).load(str(zoo))
    assert torch.equal(model.weight.detach(), evil.linear_state()["weight"])
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
    assert torch.equal(model.fc.bias.detach(), evil.linear_state()["bias"])


def test_timm_and_torchvision_state_dicts_load(tmp_path, evil):
    import timm
    import torchvision

    from seethroughnet.checkpoint import StrictCheckpointer
    from seethroughnet.nn.hrnet import HRNetV2Encoder

    src = timm.create_model("hrnet_w18_small_v2", pretrained=False)
    torch.save(src.state_dict(), tmp_path / "timm.pth")
    enc = HRNetV2Encoder("hrnet_w18_small_v2", checkpoint=str(tmp_path / "timm.pth"))
    assert torch.equal(enc.body.conv1.weight, src.conv1.weight)
    with pytest.raises(NNUntrustedWeightsError) as e:  # an ImageNet checkpoint with a payload
        HRNetV2Encoder("hrnet_w18_small_v2", checkpoint=str(evil.pth))
    evil.refused_weights(str(e.value), evil.pth)
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
