"""nn/layers.py: the shared building blocks behave as the model parts relied on before."""

import numpy as np
import pytest
import torch
from torch import nn

from seethroughnet.nn.layers import (
    ConvNormAct,
    FrozenBatchNorm2d,
    convert_norm,
    norm_layer,
    resize,
    short_list,
    state_dict_of,
    strip_wrapper_prefixes,
)


def test_norm_layer_by_name():
    assert type(norm_layer("BN", 8)) is nn.BatchNorm2d
    assert type(norm_layer("SyncBN", 8)) is nn.SyncBatchNorm
    assert norm_layer("GN", 64).num_groups == 32 and norm_layer("GN", 48).num_groups == 1
    with pytest.raises(
        ValueError, match="unknown norm 'LN'; valid choices: BN, SyncBN, FrozenBN, GN"
    ):
        norm_layer("LN", 8)
    frozen = norm_layer("FrozenBN", 8)  # fixed: buffers only, the identity until a state dict loads
    assert type(frozen) is FrozenBatchNorm2d and not list(frozen.parameters())
    x = torch.randn(2, 8, 3, 3)
    assert torch.allclose(frozen(x), x, atol=1e-4)


def test_convert_norm_names_every_norm_but_gn():
    def net():
        return nn.Sequential(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8))

    assert type(convert_norm(net(), "BN")[1]) is nn.BatchNorm2d
    assert type(convert_norm(net(), "SyncBN")[1]) is nn.SyncBatchNorm
    assert type(convert_norm(net(), "FrozenBN")[1]) is FrozenBatchNorm2d
    with pytest.raises(ValueError, match="'GN' cannot replace the BatchNorms"):
        convert_norm(net(), "GN")
    with pytest.raises(ValueError, match="unknown norm 'LN'"):
        convert_norm(net(), "LN")


def test_conv_norm_act_layout_and_padding():
    block = ConvNormAct(4, 6, 3, dilation=2)
    assert list(block.state_dict())[:3] == [
        "0.weight",
        "1.weight",
        "1.bias",
    ]  # checkpoint key layout
    assert block[0].bias is None and isinstance(block[2], nn.ReLU)
    assert block(torch.randn(1, 4, 9, 7)).shape == (1, 6, 9, 7)
    assert len(ConvNormAct(4, 6, act=False)) == 2


def test_resize_is_identity_at_the_same_size_and_bilinear_otherwise():
    x = torch.randn(1, 2, 4, 4)
    assert resize(x, (4, 4)) is x
    ref = nn.functional.interpolate(x, size=(8, 6), mode="bilinear", align_corners=True)
    assert torch.equal(resize(x, (8, 6), align_corners=True), ref)


def test_state_dict_of_opens_every_container():
    sd = {"a.weight": torch.ones(2), "n": torch.tensor(3)}
    assert state_dict_of({"model": sd, "iteration": 5}).keys() == sd.keys()
    assert state_dict_of({"state_dict": {"model_state_dict": sd}}).keys() == sd.keys()
    out = state_dict_of({"blobs": 1, "x": np.arange(4.0).reshape(2, 2).T, "c": np.array(7)})
    assert (
        set(out) == {"x", "c"}
        and out["c"].shape == ()
        and torch.equal(out["x"], torch.tensor([[0.0, 2], [1, 3]]))
    )
    assert set(state_dict_of(nn.Linear(2, 3))) == {"weight", "bias"}
    with pytest.raises(ValueError, match="does not hold a state dict"):
        state_dict_of([1, 2])


def test_strip_wrapper_prefixes_and_short_list():
    state = {"module.backbone.a": 1, "module.backbone.b": 2}
    assert strip_wrapper_prefixes(state, ("module.", "backbone.")) == {"a": 1, "b": 2}
    assert strip_wrapper_prefixes({"module.a": 1, "b": 2}, ("module.",)) == {"module.a": 1, "b": 2}
    assert short_list(["c", "a", "b"], 2) == "a, b, ... (1 more)"
    assert short_list(["c", "a"], 5, sort=False) == "c, a"
    assert short_list([], 3) == "-"
