"""``tools/convert_weights.py nvidia|hrnet_ocr`` without the references (route A): the key maps
against the key-and-shape lists recorded from the reference models themselves
(``reference_keys/*.json.gz``, written by ``tools/compare_with_reference.py --record-keys`` from
NVIDIA/semantic-segmentation ``ocrnet.HRNet_Mscale`` / ``ocrnet.HRNet`` and HRNet-OCR
``seg_hrnet_ocr``, commits in the files): a fake checkpoint of exactly those names and shapes, in
the reference's layout, converts and loads strictly into the project model; bad input is one
error naming the checkpoint, the config and the first mismatching keys, with nothing written.
The equal-logits check against the reference code is ``tools/compare_with_reference.py``
(docs/checkpoint_conversion.md)."""

import gzip
import json
import os

import pytest
import torch
from torch import nn

pytest.importorskip("detectron2")

from seethroughnet.conversion.commands import main  # noqa: E402
from seethroughnet.conversion.convert import build_project_model  # noqa: E402
from seethroughnet.conversion.ocr_references import (  # noqa: E402
    ReferenceConversionError,
    convert_reference_checkpoint,
    convert_reference_state_dict,
    fold_conv_biases,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(REPO, "projects", "SeeThroughNet", "configs")
STN = os.path.join(CONFIGS, "Cityscapes", "seethroughnet_W48_cityscapes_fine.yaml")
OCRNET = os.path.join(CONFIGS, "CPP-Plugin", "ocrnet_HRW48_cityscapes.yaml")
OPTS = ["MODEL.HRNET.NORM", "BN", "MODEL.REQUIRES_PRETRAINED", "False"]
KEYS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference_keys")


def _recorded(name):
    with gzip.open(os.path.join(KEYS, name), "rt") as f:
        return json.load(f)


def _fake_state(name, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in _recorded(name)["keys"]:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        else:
            state[key] = torch.randn(shape, generator=g)
    return state


@pytest.fixture(scope="module")
def stn_target():
    return build_project_model(STN, OPTS)[1].state_dict()


@pytest.fixture(scope="module")
def ocrnet_target():
    return build_project_model(OCRNET, OPTS)[1].state_dict()


def test_recorded_lists_are_the_reference_models():
    mscale = _recorded("nvidia_hrnet_mscale_w48.json.gz")
    assert mscale["reference"] == "NVIDIA ocrnet.HRNet_Mscale" and len(mscale["commit"]) == 40
    names = {k for k, _ in mscale["keys"]}
    assert "scale_attn.conv0.weight" in names and "ocr.aux_head.2.weight" in names
    assert "scale_attn.conv0.weight" not in {
        k for k, _ in _recorded("nvidia_ocrnet_hrnet_w48.json.gz")["keys"]
    }
    assert "aux_head.3.weight" in {k for k, _ in _recorded("hrnet_ocr_w48.json.gz")["keys"]}


def test_mscale_fills_seethroughnet_encoder_ocr_and_attention(stn_target):
    state = _fake_state("nvidia_hrnet_mscale_w48.json.gz")
    converted, dropped, new, folded = convert_reference_state_dict(
        "nvidia", state, stn_target, "seethroughnet"
    )
    assert set(converted) == set(stn_target)
    assert new and all(k.startswith("net.decoder.") for k in new)  # the See-Through decoder only
    assert dropped and all(k.startswith("ocr.aux_head.") for k in dropped)
    assert folded == ["ocr.conv3x3_ocr.0.bias"]  # aux_head's bias is dropped with its head
    # values: trunk and attention copied, the folded bias subtracted from the BN mean
    assert torch.equal(
        converted["net.encoder.body.stage4.2.fuse_layers.0.3.1.weight"],
        state["backbone.stage4.2.fuse_layers.0.3.1.weight"],
    )
    assert torch.equal(
        converted["net.scale_attention.net.6.weight"], state["scale_attn.conv2.weight"]
    )
    assert torch.allclose(
        converted["net.ocr.pixel_conv.1.running_mean"],
        state["ocr.conv3x3_ocr.1.0.running_mean"] - state["ocr.conv3x3_ocr.0.bias"],
    )
    model = build_project_model(STN, OPTS)[1]
    model.load_state_dict(converted, strict=True)


def test_ocrnet_checkpoints_of_both_references_fill_the_ocrnet_hrnet(ocrnet_target):
    for source, name in (
        ("nvidia", "nvidia_ocrnet_hrnet_w48.json.gz"),
        ("hrnet_ocr", "hrnet_ocr_w48.json.gz"),
    ):
        state = _fake_state(name)
        converted, dropped, new, folded = convert_reference_state_dict(
            source, state, ocrnet_target, "ocr"
        )
        assert set(converted) == set(ocrnet_target) and not dropped
        assert new and all(k.startswith("aux_heads.") for k in new)  # the CPP auxiliary heads
        assert folded == ["ocr.conv3x3_ocr.0.bias", "ocr.aux_head.0.bias"]
    last = "aux_head.3.weight"  # HRNet-OCR's index of the soft-region classifier (NVIDIA: .2)
    assert torch.equal(converted["decode_head.soft_region.1.weight"], state[last])


def test_bias_folding_is_the_same_function():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(4, 3, 1, bias=True), nn.BatchNorm2d(3).eval()
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    state = {
        "ocr.conv3x3_ocr.0.bias": conv.bias.detach(),
        "ocr.conv3x3_ocr.1.0.running_mean": bn.running_mean.clone(),
    }
    folded, names = fold_conv_biases(state)
    assert names == ["ocr.conv3x3_ocr.0.bias"] and "ocr.conv3x3_ocr.0.bias" not in folded
    plain, bn2 = nn.Conv2d(4, 3, 1, bias=False), nn.BatchNorm2d(3).eval()
    plain.weight.data.copy_(conv.weight.data)
    bn2.load_state_dict(bn.state_dict())
    bn2.running_mean.copy_(folded["ocr.conv3x3_ocr.1.0.running_mean"])
    x = torch.randn(2, 4, 5, 5)
    assert torch.allclose(bn(conv(x)), bn2(plain(x)), atol=1e-6)


def test_mscale_checkpoint_to_a_config_without_scale_attention(ocrnet_target):
    state = _fake_state("nvidia_hrnet_mscale_w48.json.gz")
    with pytest.raises(
        ReferenceConversionError, match=r"checkpoint keys with no project key: scale_attn\."
    ):
        convert_reference_state_dict(
            "nvidia", state, ocrnet_target, "ocr", path="m.pth", config="c.yaml"
        )


def test_ocrnet_checkpoint_lacks_seethroughnets_scale_attention(stn_target):
    state = _fake_state("nvidia_ocrnet_hrnet_w48.json.gz")
    with pytest.raises(
        ReferenceConversionError, match=r"model keys not in the checkpoint: net\.scale_attention"
    ):
        convert_reference_state_dict("nvidia", state, stn_target, "seethroughnet")


def test_other_width_classes_or_architecture(stn_target):
    state = _fake_state("nvidia_hrnet_mscale_w48.json.gz")
    state["ocr.cls_head.weight"] = torch.zeros(20, 512, 1, 1)
    with pytest.raises(ReferenceConversionError, match=r"1 shape mismatches: ocr.cls_head.weight"):
        convert_reference_state_dict("nvidia", state, stn_target, "seethroughnet")
    mmseg_like = {
        "backbone.stem.0.weight": torch.zeros(64, 3, 3, 3),
        "decode_head.conv_seg.weight": torch.zeros(19, 512, 1, 1),
    }
    with pytest.raises(ReferenceConversionError, match="decode_head.conv_seg.weight"):
        convert_reference_state_dict("nvidia", mmseg_like, stn_target, "seethroughnet")


def test_command_line_writes_only_a_good_conversion(tmp_path, capsys):
    state = {"module." + k: v for k, v in _fake_state("nvidia_hrnet_mscale_w48.json.gz").items()}
    good = tmp_path / "mscale.pth"
    torch.save({"arch": "network.ocrnet.HRNet_Mscale", "epoch": 3, "state_dict": state}, good)
    out = tmp_path / "out.pth"
    assert main(["nvidia", "--config", STN, str(good), str(out)] + OPTS) == 0
    text = capsys.readouterr().out
    assert "arch network.ocrnet.HRNet_Mscale" in text and "net.decoder" in text
    assert "net.encoder, net.ocr, net.scale_attention" in text
    saved = torch.load(out, weights_only=True)
    assert saved["conversion"]["folded_biases"] == ["ocr.conv3x3_ocr.0.bias"]
    bad_out = tmp_path / "bad.pth"
    assert main(["nvidia", "--config", OCRNET, str(good), str(bad_out)] + OPTS) == 1
    err = capsys.readouterr().err
    assert "mscale.pth" in err and "ocrnet_HRW48_cityscapes.yaml" in err and "scale_attn." in err
    assert not bad_out.exists()
    with pytest.raises(ReferenceConversionError, match="not a PyTorch checkpoint"):
        notes = tmp_path / "notes.pth"
        notes.write_text("hello")
        convert_reference_checkpoint("hrnet_ocr", notes, OCRNET, tmp_path / "x.pth", OPTS)
    assert not (tmp_path / "x.pth").exists()


def test_mapillary_classes_need_new_classifiers(stn_target):
    state = _fake_state("nvidia_hrnet_mscale_w48.json.gz")
    state["ocr.cls_head.weight"], state["ocr.cls_head.bias"] = (
        torch.zeros(65, 512, 1, 1),
        torch.zeros(65),
    )
    state["ocr.aux_head.2.weight"], state["ocr.aux_head.2.bias"] = (
        torch.zeros(65, 720, 1, 1),
        torch.zeros(65),
    )
    with pytest.raises(ReferenceConversionError, match="shape mismatches: ocr.cls_head"):
        convert_reference_state_dict("nvidia", state, stn_target, "seethroughnet")
    converted, dropped, new, _ = convert_reference_state_dict(
        "nvidia", state, stn_target, "seethroughnet", new_classifiers=True
    )
    assert {"net.ocr.classifier.weight", "net.ocr.classifier.bias"} <= set(new)
    assert "ocr.cls_head.weight" in dropped
    assert torch.equal(
        converted["net.ocr.classifier.weight"], stn_target["net.ocr.classifier.weight"]
    )


def test_mapillary_initialised_variants_name_their_conversion():
    """The Table 6 and Table 4 variants read a converted NVIDIA Mapillary checkpoint: each file's
    comment gives the convert_weights.py command for its own config and its MODEL.WEIGHTS."""
    from seethroughnet.config import build_config

    paths = [
        os.path.join(
            CONFIGS,
            "Cityscapes",
            "table6",
            "seethroughnet_W48_table6_finetune_train_nvidia_mapillary.yaml",
        )
    ]
    ablation = os.path.join(CONFIGS, "Cityscapes", "ablation")
    paths += [
        os.path.join(ablation, n)
        for n in sorted(os.listdir(ablation))
        if n.endswith("_mapillary.yaml")
    ]
    assert len(paths) == 5
    for path in paths:
        text = open(path).read()
        cfg = build_config(path, [])
        rel = os.path.relpath(path, REPO)
        assert f"convert_weights.py nvidia --new-classifiers --config {rel}" in text, rel
        assert cfg.MODEL.WEIGHTS and cfg.MODEL.WEIGHTS in text and not cfg.MODEL.HRNET.CHECKPOINT
        assert cfg.MODEL.META_ARCHITECTURE == "SeeThroughNetSegmentor"
