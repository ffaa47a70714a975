"""Eq. 6, ``MODEL.SEE_THROUGH.CPP_ON``: which decoder maps a loss term supervises directly, on the
tests' tiny SeeThroughNet built from its config (tests/configs/seethroughnet_tiny.yaml), as
docs/seethroughnet_model.md ("Eq. 6: which maps carry the CPP losses") and
projects/SeeThroughNet/configs/Cityscapes/ablation/README.md state it:

* ``coarse`` (default): no loss term acts on the map fed to the OCR head (``soft_regions`` =
  ``agg_4``, Eq. 3's X'_4) other than through the OCR head; the CPP terms act on
  ``coarse_{16,8,4}``;
* ``aggregated``: ``loss_cpp_s4_r{1.0,0.5}`` act on it directly.

"Directly" is measured with autograd: the OCR head receives a detached copy of ``soft_regions``
(a forward pre-hook), so a loss term has a gradient with respect to the decoder's
``soft_regions`` only if it is computed from that map itself. The decoder's attention-mask
generator is also checked to be what its docstring says (one 3x3 layer, a biased 1x1), unlike
Tao et al.'s attention head (two 3x3 layers, an unbiased 1x1)."""

import os
import re

import pytest
import torch
from torch import nn

pytest.importorskip("detectron2")

from seethroughnet.config import build_config  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(REPO, "tests", "configs", "seethroughnet_tiny.yaml")
ABLATION = os.path.join(REPO, "projects", "SeeThroughNet", "configs", "Cityscapes", "ablation")
PASSES = ("r1.0", "r0.5")
TABLE4 = [f"seethroughnet_W48_cpp-{c}_msa-{m}.yaml" for c in ("off", "on") for m in ("off", "on")]


def tiny_model(cpp_on: str):
    from seethroughnet.modeling.meta_arch.seethroughnet import build_seethroughnet_from_cfg

    cfg = build_config(TINY, ["MODEL.SEE_THROUGH.CPP_ON", cpp_on])
    assert sorted(cfg.MODEL.SEE_THROUGH.TRAIN_SCALES) == [0.5, 1.0]  # both passes of Eq. 4
    torch.manual_seed(0)
    model = build_seethroughnet_from_cfg(cfg).train()
    return model, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES


def batch(num_classes: int):
    g = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, 64, 128, generator=g)
    labels = torch.randint(0, num_classes, (2, 64, 128), generator=g)
    labels[:, :4] = 255
    return images, labels


def terms_acting_on(model, num_classes, key: str, through_ocr: bool):
    """``{pass: set of loss names}``: the terms with a non-zero gradient w.r.t. the decoder output
    ``key`` of each pass; with ``through_ocr=False`` the OCR head gets a detached
    ``soft_regions``, so only terms computed from the map itself count."""
    handle = None
    if not through_ocr:
        handle = model.ocr.register_forward_pre_hook(lambda m, args: (args[0], args[1].detach()))
    try:
        images, labels = batch(num_classes)
        outputs = model(images)
        losses = model.losses(outputs, labels)
    finally:
        if handle is not None:
            handle.remove()
    maps = [outputs[p][key] for p in PASSES]
    acting = {p: set() for p in PASSES}
    for name, value in losses.items():
        grads = torch.autograd.grad(value, maps, retain_graph=True, allow_unused=True)
        for p, g in zip(PASSES, grads):
            if g is not None and float(g.abs().sum()) > 0:
                acting[p].add(name)
    return acting, losses


def test_default_is_coarse():
    assert build_config(TINY).MODEL.SEE_THROUGH.CPP_ON == "coarse"
    for name in sorted(os.listdir(ABLATION)):
        if name.endswith(".yaml"):
            assert build_config(os.path.join(ABLATION, name)).MODEL.SEE_THROUGH.CPP_ON == "coarse"


def test_coarse_leaves_the_ocr_input_map_without_a_loss_of_its_own():
    model, k = tiny_model("coarse")
    assert model.loss_options.cpp_on == "coarse"
    direct, losses = terms_acting_on(model, k, "soft_regions", through_ocr=False)
    assert {"loss_cpp_s4_r1.0", "loss_cpp_s4_r0.5", "loss_rmi"} <= set(losses)
    assert direct == {"r1.0": set(), "r0.5": set()}
    # it learns only through the OCR head: the main (RMI) loss and each pass's own Eq. 7 term
    full, _ = terms_acting_on(model, k, "soft_regions", through_ocr=True)
    assert full == {"r1.0": {"loss_rmi", "loss_ce_r1.0"}, "r0.5": {"loss_rmi", "loss_ce_r0.5"}}
    # the Eq. 6 terms act on the coarse heads' maps at 1/16, 1/8, 1/4, one each
    for s in (16, 8, 4):
        on_coarse, _ = terms_acting_on(model, k, f"coarse_{s}", through_ocr=False)
        for p in PASSES:
            assert {t for t in on_coarse[p] if t.startswith("loss_cpp")} == {f"loss_cpp_s{s}_{p}"}
    # X_32 and the attention masks carry no loss of their own
    for key in ("coarse_32", "attn_32", "attn_16", "attn_8"):
        assert terms_acting_on(model, k, key, through_ocr=False)[0] == {p: set() for p in PASSES}


def test_aggregated_puts_the_stride4_cpp_term_on_the_ocr_input_map():
    model, k = tiny_model("aggregated")
    assert model.loss_options.cpp_on == "aggregated"
    direct, _ = terms_acting_on(model, k, "soft_regions", through_ocr=False)
    assert direct == {"r1.0": {"loss_cpp_s4_r1.0"}, "r0.5": {"loss_cpp_s4_r0.5"}}
    # and the coarse maps are reached only through Eq. 3: X_4 by the stride-4 term, X_32 by all
    on_x32, _ = terms_acting_on(model, k, "coarse_32", through_ocr=False)
    for p in PASSES:
        assert on_x32[p] == {f"loss_cpp_s{s}_{p}" for s in (16, 8, 4)}


def test_decoder_attention_head_is_one_3x3_layer_and_a_biased_1x1():
    """The decoder's mask generator (docstring: one 3x3 conv-BN-ReLU, a 1x1 with bias, sigmoid)
    against Tao et al.'s head as ScaleAttentionHead builds it (two 3x3, 1x1 without bias)."""
    model, _ = tiny_model("coarse")

    def convs(module):
        return [
            (m.kernel_size, m.bias is not None) for m in module.modules() if type(m) is nn.Conv2d
        ]

    for name, head in model.decoder.attention_heads.items():
        assert convs(head) == [((3, 3), False), ((1, 1), True)], name
        assert isinstance(head[-1], nn.Sigmoid)
    assert convs(model.scale_attention) == [((3, 3), False), ((3, 3), False), ((1, 1), False)]


def test_ablation_readme_override_selects_the_other_reading():
    """The README's command for the other reading of Eq. 6 is a valid override of every Table 4
    config and selects CPP_ON aggregated."""
    text = open(os.path.join(ABLATION, "README.md")).read()
    overrides = re.findall(r"MODEL\.SEE_THROUGH\.CPP_ON (\w+)", text)
    assert overrides and set(overrides) == {"aggregated"}
    for name in TABLE4:
        assert name in text, name
    for name in sorted(os.listdir(ABLATION)):  # the four and any variant added beside them
        if name.endswith(".yaml"):
            cfg = build_config(
                os.path.join(ABLATION, name), ["MODEL.SEE_THROUGH.CPP_ON", "aggregated"]
            )
            assert cfg.MODEL.SEE_THROUGH.CPP_ON == "aggregated"
