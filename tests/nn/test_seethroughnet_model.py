"""Tests of the whole SeeThroughNet (seethroughnet.nn.seethroughnet: losses of Eqs. 5-7, the
ablation switches, inference modes; RMI in test_rmi_loss.py). CPU only, tiny inputs,
hrnet_w18_small_v2 unless noted (the W48 test uses 64x64 inputs and takes a few seconds)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seethroughnet.nn.options import (
    DecoderOptions,
    EncoderOptions,
    LossOptions,
    TrainingScales,
)
from seethroughnet.nn.seethroughnet import SeeThroughNet

from bilinear_reference import (
    ref_bilinear,  # tests/nn/bilinear_reference.py (a helper, not a test module)
)

SMALL = "hrnet_w18_small_v2"
K = 5


def small_model(**kw) -> SeeThroughNet:
    kw.setdefault("num_classes", K)
    kw.setdefault("encoder", EncoderOptions(SMALL))
    return SeeThroughNet(**kw)


def random_batch(n=2, h=64, w=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, h, w, generator=g)
    y = torch.randint(0, K, (n, h, w), generator=g)
    y[:, :3] = 255  # a band of ignored pixels
    return x, y


@pytest.fixture(scope="module")
def trained_step():
    """Default model (scale attention on, CPP on), one forward + losses + backward."""
    torch.manual_seed(0)
    model = small_model()
    model.train()
    x, y = random_batch()
    out = model(x)
    losses = model.losses(out, y)
    sum(losses.values()).backward()
    return model, out, losses


# ----------------------------------------------------------------------------------------------
# full model
# ----------------------------------------------------------------------------------------------
EXPECTED_LOSSES = {
    "loss_rmi",
    "loss_cpp_s16_r1.0",
    "loss_cpp_s8_r1.0",
    "loss_cpp_s4_r1.0",
    "loss_cpp_s16_r0.5",
    "loss_cpp_s8_r0.5",
    "loss_cpp_s4_r0.5",
    "loss_ce_r1.0",
    "loss_ce_r0.5",
}


def test_training_outputs_and_losses(trained_step):
    model, out, losses = trained_step
    assert set(out) == {"r1.0", "r0.5", "merged"}
    assert out["merged"].shape == (2, K, 16, 32)
    assert out["r1.0"]["logits"].shape == (2, K, 16, 32)
    assert out["r0.5"]["logits"].shape == (2, K, 8, 16)
    assert out["r0.5"]["scale_attn"].shape == (2, 1, 8, 16)
    assert out["r0.5"]["agg_16"].shape == (2, K, 2, 4)
    assert set(losses) == EXPECTED_LOSSES
    for k, v in losses.items():
        # the RMI term is the reference's 0.5 log det, which may be negative (nn/rmi_loss.py)
        assert v.dim() == 0 and torch.isfinite(v) and (k == "loss_rmi" or v > 0), k
    # Eq. 4 on the returned tensors
    a, x5, x1 = out["r0.5"]["scale_attn"], out["r0.5"]["logits"], out["r1.0"]["logits"]
    ref = ref_bilinear(a * x5, 16, 32) + (1 - ref_bilinear(a, 16, 32)) * x1
    assert torch.allclose(out["merged"], ref, atol=1e-4)
    # gamma-weighted CE on up-sampled X_0.5
    y = random_batch()[1]
    up = F.interpolate(x5, size=(64, 128), mode="bilinear", align_corners=False)
    ce = F.cross_entropy(up, y, ignore_index=255)
    assert losses["loss_ce_r0.5"].item() == pytest.approx(0.05 * ce.item(), rel=1e-4)


def test_gradients_reach_every_head(trained_step):
    model, _, _ = trained_step
    missing = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or float(p.grad.abs().sum()) == 0.0)
    ]
    assert not missing, missing[:10]
    for part in (
        model.encoder,
        model.decoder.coarse_heads,
        model.decoder.attention_heads,
        model.ocr,
        model.scale_attention,
    ):
        assert any(p.grad is not None for p in part.parameters())


@pytest.mark.parametrize(
    "use_attention,aux_kind", list(itertools.product([True, False], ["cpp_kl", "upsample_ce"]))
)
def test_ablation_combinations(use_attention, aux_kind):
    torch.manual_seed(0)
    model = small_model(
        decoder=DecoderOptions(use_scale_attention=use_attention),
        loss=LossOptions(aux_loss_kind=aux_kind),
    )
    assert (len(model.decoder.attention_heads) > 0) == use_attention
    x, y = random_batch(seed=1)
    out = model(x)
    losses = model.losses(out, y)
    assert set(losses) == EXPECTED_LOSSES
    assert all(torch.isfinite(v) and (k == "loss_rmi" or v > 0) for k, v in losses.items())
    sum(losses.values()).backward()
    assert model.decoder.coarse_heads["res5"][1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("cpp_on,prefix", [("coarse", "coarse"), ("aggregated", "agg")])
def test_cpp_loss_uses_the_right_map_and_stride(cpp_on, prefix):
    """Eq. 6 on the map CPP_ON names; the r=0.5 map at stride 16 is trained against the
    stride-32 CPP target of the labels."""
    from seethroughnet.nn.aux_losses import AuxiliaryLoss
    from seethroughnet.nn.cpp import cpp_targets

    torch.manual_seed(0)
    model = small_model(loss=LossOptions(cpp_on=cpp_on))
    x, y = random_batch()
    out = model(x)
    losses = model.losses(out, y)
    aux = AuxiliaryLoss("cpp_kl", K)
    for r, s, target_stride in (("r0.5", 16, 32), ("r1.0", 8, 8), ("r1.0", 4, 4)):
        direct = aux(out[r][f"{prefix}_{s}"], y, cpp_targets(y, target_stride, K))
        assert losses[f"loss_cpp_s{s}_{r}"].item() == pytest.approx(direct.item(), rel=1e-5)
    assert aux(out["r0.5"][f"{prefix}_16"], y).item() == pytest.approx(
        losses["loss_cpp_s16_r0.5"].item(), rel=1e-5
    )


@pytest.mark.parametrize("cpp_on", ["coarse", "aggregated"])
def test_cpp_on_switch_decides_which_heads_the_cpp_terms_train(cpp_on):
    """Under "coarse" the Eq. 6 terms reach the coarse heads at 1/16, 1/8, 1/4 and not the
    attention-mask generators; under "aggregated" they reach both."""
    torch.manual_seed(0)
    model = small_model(loss=LossOptions(cpp_on=cpp_on))
    x, y = random_batch()
    losses = model.losses(model(x), y)
    cpp_total = sum(v for k, v in losses.items() if k.startswith("loss_cpp_"))
    heads = {f"coarse.{n}": m for n, m in model.decoder.coarse_heads.items()}
    heads.update({f"attention.{n}": m for n, m in model.decoder.attention_heads.items()})
    params = {name: list(m.parameters()) for name, m in heads.items()}
    flat = [p for ps in params.values() for p in ps]
    grads = torch.autograd.grad(cpp_total, flat, allow_unused=True)
    reached, i = {}, 0
    for name, ps in params.items():
        g = grads[i : i + len(ps)]
        i += len(ps)
        reached[name] = any(t is not None and float(t.abs().sum()) > 0 for t in g)
    for branch in ("res4", "res3", "res2"):
        assert reached[f"coarse.{branch}"], branch
    attention = {k: v for k, v in reached.items() if k.startswith("attention.")}
    assert len(attention) == 3
    if cpp_on == "coarse":
        assert not any(attention.values()), attention
        assert not reached["coarse.res5"]  # X_32 carries no Eq. 6 term
    else:
        assert all(attention.values()), attention
        assert reached["coarse.res5"]  # through X'_16 = up(a X_32) + ...


def test_per_scale_loss_bce_is_the_rmi_reference_bce():
    """PER_SCALE_LOSS "bce": gamma x (sigmoid BCE over all classes of the up-sampled X_r,
    summed over valid pixels, / (valid pixels + 1)), as [41]'s code with do_rmi=False."""
    torch.manual_seed(0)
    model = small_model(loss=LossOptions(per_scale_loss="bce"))
    x, y = random_batch()
    out = model(x)
    losses = model.losses(out, y)
    for r in ("r1.0", "r0.5"):
        up = F.interpolate(
            out[r]["logits"], size=y.shape[-2:], mode="bilinear", align_corners=False
        )
        valid = (y != 255).float()
        onehot = F.one_hot(y.clamp(max=K - 1), K).permute(0, 3, 1, 2).float()
        z = up.detach().double()
        bce = (z.clamp(min=0) - z * onehot + torch.log1p(torch.exp(-z.abs()))).sum(1)
        ref = float((bce * valid).sum() / (valid.sum() + 1))
        assert losses[f"loss_ce_{r}"].item() == pytest.approx(0.05 * ref, rel=1e-4)
    with pytest.raises(ValueError, match="per_scale_loss must be one of"):
        LossOptions(per_scale_loss="focal")
    with pytest.raises(ValueError, match="cpp_on must be one of"):
        LossOptions(cpp_on="both")


def test_single_resolution_training_and_size_checks():
    model = small_model(scales=TrainingScales(resolutions=(1.0,)))
    assert model.size_divisibility == 32
    x, y = random_batch(h=32, w=64)
    out = model(x)
    assert set(out) == {"r1.0", "merged"} and out["merged"] is out["r1.0"]["logits"]
    losses = model.losses(out, y)
    assert set(losses) == {
        "loss_rmi",
        "loss_cpp_s16_r1.0",
        "loss_cpp_s8_r1.0",
        "loss_cpp_s4_r1.0",
        "loss_ce_r1.0",
    }
    assert model.scale_attention is None
    model.eval()
    assert model.inference(x, scales=(0.5, 1.0), merge="average").shape == (2, K, 32, 64)
    with pytest.raises(ValueError, match="scale-attention head"):
        model.inference(x, scales=(0.5, 1.0), merge="attention")
    two = small_model()
    assert two.size_divisibility == 64
    with pytest.raises(ValueError, match="multiple of 64"):
        two(torch.randn(1, 3, 96, 128))


# ----------------------------------------------------------------------------------------------
# inference
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eval_model():
    torch.manual_seed(0)
    return small_model().eval()


def test_inference_shapes(eval_model):
    x = torch.randn(1, 3, 64, 96)
    for kw in (
        dict(),
        dict(scales=(0.5, 1.0, 2.0)),
        dict(scales=(0.5, 1.0, 2.0), merge="average", flip=True),
        dict(scales=(1.0,), flip=True, crop_size=(32, 64), stride=(16, 32)),
        dict(scales=(0.5, 1.0), crop_size=48, stride=24),
    ):
        y = eval_model.inference(x, **kw)
        assert y.shape == (1, K, 64, 96), kw
        assert torch.isfinite(y).all()
    # odd sizes are padded internally
    assert eval_model.inference(torch.randn(1, 3, 50, 70), scales=(0.5, 1.0)).shape == (
        1,
        K,
        50,
        70,
    )
    # eval-mode forward uses the test settings
    assert torch.allclose(eval_model(x), eval_model.inference(x), atol=1e-6)


def test_sliding_window_equal_to_crop_is_whole_image(eval_model):
    x = torch.randn(1, 3, 64, 96)
    whole = eval_model.inference(x, scales=(0.5, 1.0))
    win = eval_model.inference(x, scales=(0.5, 1.0), crop_size=(128, 192), stride=(64, 64))
    assert torch.allclose(whole, win, atol=1e-6)
    # scale 1.0 window exactly the image
    assert torch.allclose(
        eval_model.inference(x), eval_model.inference(x, crop_size=(64, 96), stride=32), atol=1e-6
    )


def test_sliding_window_averages_overlaps(eval_model):
    """Two overlapping windows: the overlap is the mean of both windows' predictions."""
    x = torch.randn(1, 3, 64, 96)
    got = eval_model.inference(x, crop_size=(64, 64), stride=(64, 32))
    left = eval_model.inference(x[..., :64])
    right = eval_model.inference(x[..., 32:])
    ref = torch.zeros_like(got)
    ref[..., :32] = left[..., :32]
    ref[..., 32:64] = 0.5 * (left[..., 32:] + right[..., :32])
    ref[..., 64:] = right[..., 32:]
    assert torch.allclose(got, ref, atol=1e-5)


def test_flip_inference_averages_flipped_prediction(eval_model):
    x = torch.randn(1, 3, 64, 64)
    plain = eval_model.inference(x, scales=(0.5, 1.0))
    flipped = eval_model.inference(x.flip(-1), scales=(0.5, 1.0)).flip(-1)
    both = eval_model.inference(x, scales=(0.5, 1.0), flip=True)
    assert torch.allclose(both, 0.5 * (plain + flipped), atol=1e-5)


def test_attention_merge_extremes(eval_model):
    """Attention forced to 1 keeps the lowest scale; forced to 0 keeps the highest."""
    x = torch.randn(1, 3, 64, 64)
    last = eval_model.scale_attention.net[-1]
    try:
        eval_model.scale_attention.net[-1] = Fixed_sigmoid(1.0)
        only_low = eval_model.inference(x, scales=(0.5, 1.0))
        eval_model.scale_attention.net[-1] = Fixed_sigmoid(0.0)
        only_high = eval_model.inference(x, scales=(0.5, 1.0))
    finally:
        eval_model.scale_attention.net[-1] = last
    assert torch.allclose(only_high, eval_model.inference(x, scales=(1.0,)), atol=1e-5)
    low = eval_model.inference(x, scales=(0.5,))
    assert torch.allclose(only_low, low, atol=1e-4)


class Fixed_sigmoid(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x):
        return torch.full_like(x, self.value)


# ----------------------------------------------------------------------------------------------
# W48 (slow)
# ----------------------------------------------------------------------------------------------
def test_w48_full_model():
    """Paper configuration on a tiny input (about 3 s on 2 CPU cores)."""
    model = SeeThroughNet(num_classes=19, encoder=EncoderOptions("hrnet_w48"))
    x = torch.randn(2, 3, 64, 64)
    y = torch.randint(0, 19, (2, 64, 64))
    out = model(x)
    assert out["merged"].shape == (2, 19, 16, 16)
    losses = model.losses(out, y)
    assert set(losses) == EXPECTED_LOSSES
    assert all(torch.isfinite(v) for v in losses.values())
