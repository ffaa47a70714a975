"""``tools/convert_weights.py mmseg`` on bad input, without MMSegmentation (route A): a missing
file, a file that is not an MMSegmentation checkpoint, a checkpoint of another model (one error
naming the first mismatching keys, the checkpoint and the config; nothing written), and the rules
of :func:`seethroughnet.conversion.mmseg.convert_mmseg_state_dict` on small state dicts. The
equal-logits checks against MMSegmentation itself are in
``tests/mmseg/test_mmseg_conversion_resnet.py``."""

import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("detectron2")

from seethroughnet.conversion.key_maps import KEY_MAPS  # noqa: E402
from seethroughnet.conversion.mmseg import (  # noqa: E402
    MMSegConversionError,
    convert_mmseg_checkpoint,
    convert_mmseg_state_dict,
    mmseg_state_dict,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PSP = os.path.join(REPO, "projects/SeeThroughNet/configs/CPP-Plugin/pspnet_R101_cityscapes.yaml")
BN_OPTS = ["MODEL.RESNETS.NORM", "BN", "MODEL.DECODE_HEAD.NORM", "BN"]


def test_the_six_resnet_models_have_key_maps():
    assert {"psp", "deeplabv3plus", "upernet", "dmnet", "ccnet", "ann"} <= set(KEY_MAPS["mmseg"])


def test_missing_file_is_named(tmp_path):
    out = tmp_path / "out.pth"
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        convert_mmseg_checkpoint(tmp_path / "nothere.pth", PSP, out, BN_OPTS)
    assert not out.exists()


def test_cli_missing_file_exit_1_names_it(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.join(REPO, "projects/SeeThroughNet"), REPO, env.get("PYTHONPATH", "")]
    )
    out = tmp_path / "out.pth"
    cmd = [sys.executable, os.path.join(REPO, "tools/convert_weights.py"), "mmseg"]
    cmd += ["--config", PSP, str(tmp_path / "nothere.pth"), str(out)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert "nothere.pth" in r.stderr and "does not exist" in r.stderr
    assert not out.exists()


def test_detectron2_checkpoint_is_not_an_mmseg_checkpoint(tmp_path):
    src, out = tmp_path / "model_final.pth", tmp_path / "out.pth"
    torch.save({"model": {"backbone.stem.conv1.weight": torch.zeros(2)}, "iteration": 5}, src)
    with pytest.raises(MMSegConversionError, match="not an MMSegmentation checkpoint") as e:
        convert_mmseg_checkpoint(src, PSP, out, BN_OPTS)
    assert str(src) in str(e.value) and "iteration, model" in str(e.value)
    assert not out.exists()


def test_unreadable_file_is_named(tmp_path):
    src, out = tmp_path / "notes.pth", tmp_path / "out.pth"
    src.write_text("not a checkpoint")
    with pytest.raises(MMSegConversionError, match="notes.pth is not a PyTorch checkpoint"):
        convert_mmseg_checkpoint(src, PSP, out, BN_OPTS)
    torch.save({"state_dict": {"a": torch.zeros(1000)}}, src)
    src.write_bytes(src.read_bytes()[:200])  # cut short
    with pytest.raises(MMSegConversionError, match="notes.pth is truncated or corrupt"):
        convert_mmseg_checkpoint(src, PSP, out, BN_OPTS)
    assert not out.exists()


def test_layouts():
    w = torch.zeros(1)
    assert mmseg_state_dict({"meta": {"mmengine_version": "0.10.7"}, "state_dict": {"a": w}})[
        1
    ] == ("MMSegmentation 1.x")
    assert mmseg_state_dict({"meta": {"mmcv_version": "1.7.0"}, "state_dict": {"a": w}})[1] == (
        "MMSegmentation 0.x"
    )
    state, layout = mmseg_state_dict({"module.a": w})
    assert layout == "bare state dict" and list(state) == ["a"]  # DataParallel prefix removed
    with pytest.raises(MMSegConversionError, match="holds a list"):
        mmseg_state_dict([w], "x.pth")


def test_wrong_model_names_first_keys_checkpoint_and_config(tmp_path):
    """A bare state dict of some other network: one error naming its keys, the model keys it lacks,
    the checkpoint and the config; no output file."""
    src, out = tmp_path / "other.pth", tmp_path / "out.pth"
    torch.save(
        {"encoder.conv1.weight": torch.zeros(8, 3, 3, 3), "head.fc.bias": torch.zeros(4)}, src
    )
    with pytest.raises(MMSegConversionError) as e:
        convert_mmseg_checkpoint(src, PSP, out, BN_OPTS)
    msg = str(e.value)
    assert str(src) in msg and PSP in msg and "MODEL.DECODE_HEAD.NAME psp" in msg
    assert "encoder.conv1.weight" in msg and "head.fc.bias" in msg
    assert "model keys not in the checkpoint" in msg and "backbone.res2.0.conv1.weight" in msg
    assert "nothing was written" in msg
    assert not out.exists() and os.listdir(tmp_path) == ["other.pth"]


def _tiny_target():
    return {
        "backbone.stem.conv1.weight": torch.zeros(32, 3, 3, 3),
        "backbone.stem.conv1.norm.running_var": torch.ones(32),
        "decode_head.cca.gamma": torch.zeros(1),
        "aux_heads.heads.res4.0.weight": torch.full((2,), 7.0),
    }


def _tiny_source():
    return {
        "backbone.stem.0.weight": torch.randn(32, 3, 3, 3),
        "backbone.stem.1.running_var": torch.rand(32),
        "decode_head.cca.gamma.scale": torch.tensor(0.5),  # mmcv 2.x Scale: shape ()
        "auxiliary_head.conv_seg.weight": torch.randn(19, 256, 1, 1),
    }


def test_state_dict_rules_drop_report_and_keep_new_keys():
    src = _tiny_source()
    out, dropped, new = convert_mmseg_state_dict(src, _tiny_target(), "ccnet")
    assert torch.equal(out["backbone.stem.conv1.weight"], src["backbone.stem.0.weight"])
    assert torch.equal(
        out["backbone.stem.conv1.norm.running_var"], src["backbone.stem.1.running_var"]
    )
    assert out["decode_head.cca.gamma"].shape == (1,) and float(out["decode_head.cca.gamma"]) == 0.5
    assert dropped == ["auxiliary_head.conv_seg.weight"]
    assert new == ["aux_heads.heads.res4.0.weight"]
    assert torch.equal(out["aux_heads.heads.res4.0.weight"], torch.full((2,), 7.0))


def test_state_dict_shape_mismatch_names_key_and_shapes():
    src = _tiny_source()
    src["backbone.stem.0.weight"] = torch.zeros(16, 3, 3, 3)
    with pytest.raises(MMSegConversionError, match=r"1 shape mismatches: backbone.stem.0.weight"):
        convert_mmseg_state_dict(src, _tiny_target(), "ccnet", path="a.pth", config="c.yaml")


def test_state_dict_unmapped_and_missing_keys():
    src = _tiny_source()
    src["decode_head.extra.weight"] = torch.zeros(1)
    del src["backbone.stem.1.running_var"]
    with pytest.raises(MMSegConversionError) as e:
        convert_mmseg_state_dict(src, _tiny_target(), "ccnet", path="a.pth", config="c.yaml")
    msg = str(e.value)
    assert "1 checkpoint keys with no project key: decode_head.extra.weight" in msg
    assert "1 model keys not in the checkpoint: backbone.stem.conv1.norm.running_var" in msg
    assert "a.pth" in msg and "c.yaml" in msg


def test_unknown_model_lists_key_maps():
    with pytest.raises(MMSegConversionError, match="valid choices: .*psp"):
        convert_mmseg_state_dict(_tiny_source(), _tiny_target(), "fcn")


def test_ccnet_gamma_of_shape_1_is_accepted():
    """``decode_head.cca.gamma`` of shape (1,) (the original CCNet code's parameter) as well as
    mmcv's ``cca.gamma.scale`` (shape ())."""
    src = _tiny_source()
    src["decode_head.cca.gamma"] = src.pop("decode_head.cca.gamma.scale").reshape(1)
    out, _, _ = convert_mmseg_state_dict(src, _tiny_target(), "ccnet")
    assert float(out["decode_head.cca.gamma"]) == 0.5
