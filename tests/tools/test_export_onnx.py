"""ONNX export of the inference network (tools/export_onnx.py, seethroughnet.deploy): the tiny
SeeThroughNet and a tiny CPP plug-in model (DeepLabV3+, paper Table 1) exported with dynamic
batch / height / width, checked by onnx.checker and run by onnxruntime with logits equal to
PyTorch's within 1e-3 at the traced size and at one that is not a multiple of 32; PSPNet's
pyramid pooling exports only at a static size, and a dynamic export says so."""

import os

import pytest
import torch

pytest.importorskip("detectron2")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from seethroughnet.deploy import onnx_export as ox  # noqa: E402
from seethroughnet.experiments.models import load_config, load_model  # noqa: E402
from seethroughnet.utils.safe_load import merge_config_file  # noqa: E402

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STN_TINY = os.path.join(REPO, "tests/configs/seethroughnet_tiny.yaml")
CPP_DIR = os.path.join(REPO, "projects/SeeThroughNet/configs/CPP-Plugin")
CPP_TINY = os.path.join(REPO, "tests/configs/cpp_plugin_tiny_overrides.yaml")


def _graph(cfg):
    torch.manual_seed(0)
    _, model = load_model(cfg, weights="")
    return ox.calibrate_batch_norm(ox.inference_graph(model))


def _cpp_cfg(head):
    cfg = load_config(os.path.join(CPP_DIR, f"{head}_R101_cityscapes.yaml"), device="cpu")
    merge_config_file(cfg, CPP_TINY)
    cfg.MODEL.DEVICE = "cpu"
    return cfg


@pytest.mark.parametrize("which", ["seethroughnet", "deeplabv3plus"])
def test_onnxruntime_logits_equal_pytorch(which, tmp_path):
    cfg = load_config(STN_TINY, device="cpu") if which == "seethroughnet" else _cpp_cfg(which)
    graph = _graph(cfg)
    path = ox.export_onnx(graph, str(tmp_path / f"{which}.onnx"), (64, 128))
    info = ox.check_onnx(path)
    ((name, dims),) = info["inputs"]
    assert name == "image" and dims[1] == 3 and all(isinstance(d, str) for d in dims[2:]), info
    expected = ["logits", "attn"] if which == "seethroughnet" else ["logits"]
    assert [n for n, _ in info["outputs"]] == expected
    for row in ox.compare_with_pytorch(graph, path, [(64, 128), (70, 100)]):
        h, w = row["size"]
        assert row["shapes"][0] == (1, 19, h, w)
        assert max(row["max_abs_diff"].values()) < 1e-3, row


def test_pspnet_dynamic_export_fails_in_one_message_static_works(tmp_path, capsys):
    args = ["--config-file", os.path.join(CPP_DIR, "pspnet_R101_cityscapes.yaml")]
    args += ["--merge-config", CPP_TINY, "--random-weights"]
    with pytest.raises(SystemExit) as e:
        ox.main(args + ["--output", str(tmp_path / "dyn.onnx")])
    msg = str(e.value.code)
    assert msg.startswith("error: ") and "pspnet_R101_cityscapes.yaml" in msg and "--static" in msg
    assert ox.main(args + ["--output", str(tmp_path / "static.onnx"), "--static"]) == 0
    assert "max abs diff" in capsys.readouterr().out


def test_unsupported_meta_architecture_is_one_message():
    cfg = load_config(
        os.path.join(REPO, "tests/configs/semantic_segmentor_tiny.yaml"), device="cpu"
    )
    _, model = load_model(cfg, weights="")
    with pytest.raises(ox.OnnxExportError, match="SeeThroughNetSegmentor and CPPSegmentor"):
        ox.inference_graph(model)
