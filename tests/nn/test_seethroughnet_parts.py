"""Tests of the SeeThroughNet parts (seethroughnet.nn: hrnet, see_through_decoder (Eq. 3),
ocr_head, scale_attention (Eq. 4)) against references written here. CPU only, tiny inputs,
hrnet_w18_small_v2 unless noted."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seethroughnet.nn.hrnet import FrozenBatchNorm2d, HRNetV2Encoder
from seethroughnet.nn.ocr_head import OCRHead, concat_hrnetv2
from seethroughnet.nn.scale_attention import (
    ScaleAttentionHead,
    average_merge,
    hierarchical_merge,
    merge_two_scales,
)
from seethroughnet.nn.see_through_decoder import SeeThroughDecoder, aggregate_coarse_maps

from bilinear_reference import (
    ref_bilinear,  # tests/nn/bilinear_reference.py (a helper, not a test module)
)

SMALL = "hrnet_w18_small_v2"
K = 5


# ----------------------------------------------------------------------------------------------
# independent references
# ----------------------------------------------------------------------------------------------
def ref_eq3(coarse, alphas):
    """Eq. 3 written out: X'_32 = X_32; X'_f = up(a_c * X'_c) + (1 - up(a_c)) * X_f."""
    prev = coarse[0]
    outs = []
    for i, x in enumerate(coarse[1:]):
        h, w = x.shape[-2:]
        if alphas is None:
            prev = ref_bilinear(prev, h, w) + x
        else:
            a = alphas[i]
            prev = ref_bilinear(a * prev, h, w) + (1 - ref_bilinear(a, h, w)) * x
        outs.append(prev)
    return outs


class Fixed(nn.Module):
    """Stand-in head returning a fixed tensor (to drive the decoder with hand-set maps)."""

    def __init__(self, value: torch.Tensor):
        super().__init__()
        self.value = value

    def forward(self, *args):
        return self.value


# ----------------------------------------------------------------------------------------------
# encoder
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "variant,chans,hw",
    [
        (SMALL, (18, 36, 72, 144), (64, 128)),
        ("hrnet_w18", (18, 36, 72, 144), (64, 64)),
        ("hrnet_w48", (48, 96, 192, 384), (64, 64)),
    ],
)
def test_encoder_shapes_and_strides(variant, chans, hw):
    enc = HRNetV2Encoder(variant).eval()
    assert enc.strides == {"res2": 4, "res3": 8, "res4": 16, "res5": 32}
    assert tuple(enc.channels[k] for k in ("res2", "res3", "res4", "res5")) == chans
    with torch.no_grad():
        out = enc(torch.randn(1, 3, *hw))
    assert list(out) == ["res2", "res3", "res4", "res5"]
    for k, f in out.items():
        s = enc.strides[k]
        assert tuple(f.shape) == (1, enc.channels[k], hw[0] // s, hw[1] // s)


def test_encoder_rejects_bad_size():
    enc = HRNetV2Encoder(SMALL)
    with pytest.raises(ValueError, match="multiple of 32"):
        enc(torch.randn(1, 3, 48, 64))
    with pytest.raises(ValueError):
        HRNetV2Encoder(SMALL, norm="GN")
    with pytest.raises(ValueError):
        HRNetV2Encoder(SMALL, freeze_at=6)


def test_encoder_checkpoint_loading(tmp_path):
    import timm

    torch.manual_seed(1)
    cls_model = timm.create_model(SMALL, pretrained=False)
    sd = cls_model.state_dict()
    path = tmp_path / "imagenet.pth"
    # wrapped and prefixed as many training scripts save it; includes the classifier head
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, path)
    enc = HRNetV2Encoder(SMALL, checkpoint=str(path))
    own = enc.body.state_dict()
    for k, v in own.items():
        assert torch.equal(v, sd[k]), k

    # mismatching checkpoint: strict raises listing keys, allow_partial loads the rest
    bad = dict(sd)
    bad.pop("conv1.weight")
    bad["extra.weight"] = torch.zeros(3)
    bad["bn1.weight"] = torch.zeros(7)
    torch.save(bad, path)
    with pytest.raises(ValueError) as err:
        HRNetV2Encoder(SMALL, checkpoint=str(path))
    msg = str(err.value)
    assert "conv1.weight" in msg and "extra.weight" in msg and "bn1.weight" in msg
    with pytest.warns(UserWarning, match="partial load"):
        enc = HRNetV2Encoder(SMALL, checkpoint=str(path), allow_partial=True)
    assert torch.equal(enc.body.state_dict()["conv2.weight"], sd["conv2.weight"])
    with pytest.warns(UserWarning, match="partial load"):
        report = enc.load_checkpoint(str(path), allow_partial=True)
    assert report.missing == ["conv1.weight"] and report.unexpected == ["extra.weight"]
    assert any(k.startswith("classifier.") for k in report.dropped_classifier)


def test_frozen_batchnorm_matches_eval_batchnorm():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
    bn.eval()
    x = torch.randn(2, 6, 5, 7)
    frozen = FrozenBatchNorm2d.convert_frozen_batchnorm(bn)
    assert isinstance(frozen, FrozenBatchNorm2d)
    assert torch.allclose(frozen(x), bn(x), atol=1e-5)
    # the state dict of a BatchNorm2d (with num_batches_tracked) loads
    fresh = FrozenBatchNorm2d(6)
    fresh.load_state_dict(bn.state_dict())
    assert torch.allclose(fresh(x), bn(x), atol=1e-5)


def test_encoder_norms_and_freezing():
    torch.manual_seed(0)
    enc = HRNetV2Encoder(SMALL).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = enc(x)
    frozen = HRNetV2Encoder(SMALL, norm="FrozenBN")
    frozen.body.load_state_dict(enc.body.state_dict(), strict=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())
    frozen.train()  # FrozenBN ignores train mode
    with torch.no_grad():
        out = frozen(x)
    for k in ref:
        assert torch.allclose(out[k], ref[k], atol=1e-4)

    sync = HRNetV2Encoder(SMALL, norm="SyncBN")
    assert any(isinstance(m, nn.SyncBatchNorm) for m in sync.modules())

    enc2 = HRNetV2Encoder(SMALL, freeze_at=2)
    b = enc2.body
    for part in (b.conv1, b.bn1, b.conv2, b.bn2, b.layer1):
        assert all(not p.requires_grad for p in part.parameters())
        assert not any(isinstance(m, nn.BatchNorm2d) for m in part.modules())
    assert all(p.requires_grad for p in b.transition1.parameters())
    assert any(isinstance(m, nn.BatchNorm2d) for m in b.stage4.modules())
    enc5 = HRNetV2Encoder(SMALL, freeze_at=5)
    assert not any(p.requires_grad for p in enc5.parameters())


# ----------------------------------------------------------------------------------------------
# decoder (Eq. 3)
# ----------------------------------------------------------------------------------------------
def _hand_maps(n=1, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    sizes = [(2, 3), (4, 6), (8, 12), (16, 24)]
    coarse = [torch.randn(n, k, h, w, generator=g) for h, w in sizes]
    alphas = [torch.rand(n, 1, h, w, generator=g) for h, w in sizes[:-1]]
    return coarse, alphas


def test_aggregation_matches_eq3_constants():
    # constant maps: up-sampling is the identity on constants, so Eq. 3 is scalar arithmetic
    sizes = [(2, 2), (4, 4), (8, 8), (16, 16)]
    c = [3.0, -1.0, 2.0, 0.5]
    a = [0.25, 0.6, 0.9]
    coarse = [torch.full((1, 1, h, w), v) for (h, w), v in zip(sizes, c)]
    alphas = [torch.full((1, 1, h, w), v) for (h, w), v in zip(sizes, a)]
    out = aggregate_coarse_maps(coarse, alphas)
    x16 = a[0] * c[0] + (1 - a[0]) * c[1]
    x8 = a[1] * x16 + (1 - a[1]) * c[2]
    x4 = a[2] * x8 + (1 - a[2]) * c[3]
    for o, v in zip(out, (x16, x8, x4)):
        assert torch.allclose(o, torch.full_like(o, v), atol=1e-6)
    summed = aggregate_coarse_maps(coarse, None)
    assert torch.allclose(summed[-1], torch.full_like(summed[-1], sum(c)), atol=1e-6)


def test_aggregation_matches_eq3_reference():
    coarse, alphas = _hand_maps()
    out = aggregate_coarse_maps(coarse, alphas)
    ref = ref_eq3(coarse, alphas)
    for o, r in zip(out, ref):
        assert torch.allclose(o, r, atol=1e-5)
    # up(alpha * X') differs from up(alpha) * up(X'): make sure we implement the former
    wrong = (
        F.interpolate(alphas[0], size=(4, 6), mode="bilinear")
        * F.interpolate(coarse[0], size=(4, 6), mode="bilinear")
        + (1 - F.interpolate(alphas[0], size=(4, 6), mode="bilinear")) * coarse[1]
    )
    assert not torch.allclose(out[0], wrong, atol=1e-4)


@pytest.mark.parametrize("use_attention", [True, False])
def test_decoder_module_uses_eq3(use_attention):
    chans = {"res2": 4, "res3": 5, "res4": 6, "res5": 7}
    dec = SeeThroughDecoder(chans, num_classes=3, use_scale_attention=use_attention).eval()
    coarse, alphas = _hand_maps()
    names = ["res5", "res4", "res3", "res2"]
    for name, x in zip(names, coarse):
        dec.coarse_heads[name] = Fixed(x)
    if use_attention:
        for name, a in zip(names, alphas):
            dec.attention_heads[name] = Fixed(a)
    feats = {n: torch.randn(1, chans[n], *x.shape[-2:]) for n, x in zip(names, coarse)}
    out = dec(feats)
    ref = ref_eq3(coarse, alphas if use_attention else None)
    for key, r in zip(("agg_16", "agg_8", "agg_4"), ref):
        assert torch.allclose(out[key], r, atol=1e-5)
    assert out["soft_regions"] is out["agg_4"]
    assert ("attn_32" in out) == use_attention


def test_decoder_real_heads_shapes():
    chans = {"res2": 18, "res3": 36, "res4": 72, "res5": 144}
    dec = SeeThroughDecoder(chans, num_classes=K)
    feats = {
        n: torch.randn(2, c, 64 // s, 128 // s) for (n, c), s in zip(chans.items(), (4, 8, 16, 32))
    }
    out = dec(feats)
    for s in (32, 16, 8, 4):
        assert out[f"coarse_{s}"].shape == (2, K, 64 // s, 128 // s)
    for s in (32, 16, 8):
        a = out[f"attn_{s}"]
        assert a.shape == (2, 1, 64 // s, 128 // s) and bool(((a > 0) & (a < 1)).all())
    for s in (16, 8, 4):
        assert out[f"agg_{s}"].shape == (2, K, 64 // s, 128 // s)


# ----------------------------------------------------------------------------------------------
# OCR head
# ----------------------------------------------------------------------------------------------
def test_ocr_head_shapes_and_region_pooling():
    torch.manual_seed(0)
    feats = {
        "res2": torch.randn(2, 48, 16, 32),
        "res3": torch.randn(2, 96, 8, 16),
        "res4": torch.randn(2, 192, 4, 8),
        "res5": torch.randn(2, 384, 2, 4),
    }
    cat = concat_hrnetv2(feats)
    assert cat.shape == (2, 720, 16, 32)
    assert torch.equal(cat[:, :48], feats["res2"])
    head = OCRHead(720, num_classes=19)
    out = head(cat, torch.randn(2, 19, 16, 32))
    assert out["logits"].shape == (2, 19, 16, 32)
    assert out["feats"].shape == (2, 512, 16, 32)
    # object region representation (OCR Eq. 2) vs a direct loop
    pixels = torch.randn(1, 4, 3, 5)
    regions = torch.randn(1, 2, 3, 5)
    f = OCRHead.object_regions(pixels, regions)
    for k in range(2):
        w = torch.exp(regions[0, k]) / torch.exp(regions[0, k]).sum()
        ref = (pixels[0] * w).sum((1, 2))
        assert torch.allclose(f[0, :, k, 0], ref, atol=1e-5)
    # a peaked region picks the pixel under its peak
    peaked = torch.full((1, 1, 3, 5), -1e4)
    peaked[0, 0, 1, 2] = 0
    assert torch.allclose(OCRHead.object_regions(pixels, peaked)[0, :, 0, 0], pixels[0, :, 1, 2])


# ----------------------------------------------------------------------------------------------
# scale attention (Eq. 4, Tao et al.)
# ----------------------------------------------------------------------------------------------
def test_two_scale_merge_eq4():
    g = torch.Generator().manual_seed(0)
    low = torch.randn(1, 3, 4, 6, generator=g)
    a = torch.rand(1, 1, 4, 6, generator=g)
    high = torch.randn(1, 3, 8, 12, generator=g)
    got = merge_two_scales(low, a, high)
    ref = ref_bilinear(a * low, 8, 12) + (1 - ref_bilinear(a, 8, 12)) * high
    assert torch.allclose(got, ref, atol=1e-5)
    # alpha = 1 keeps only the low scale, alpha = 0 only the high one
    assert torch.allclose(
        merge_two_scales(low, torch.ones_like(a), high), ref_bilinear(low, 8, 12), atol=1e-5
    )
    assert torch.allclose(merge_two_scales(low, torch.zeros_like(a), high), high)


def test_hierarchical_merge_three_scales():
    g = torch.Generator().manual_seed(0)
    x = {
        0.5: torch.randn(1, 2, 4, 4, generator=g),
        1.0: torch.randn(1, 2, 8, 8, generator=g),
        2.0: torch.randn(1, 2, 16, 16, generator=g),
    }
    a = {0.5: torch.rand(1, 1, 4, 4, generator=g), 1.0: torch.rand(1, 1, 8, 8, generator=g)}
    got = hierarchical_merge(x, a, (8, 8))
    inner = a[1.0] * x[1.0] + (1 - a[1.0]) * ref_bilinear(x[2.0], 8, 8)
    ref = ref_bilinear(a[0.5] * x[0.5], 8, 8) + (1 - ref_bilinear(a[0.5], 8, 8)) * inner
    assert torch.allclose(got, ref, atol=1e-5)
    avg = average_merge(x, (8, 8))
    ref_avg = (ref_bilinear(x[0.5], 8, 8) + x[1.0] + ref_bilinear(x[2.0], 8, 8)) / 3
    assert torch.allclose(avg, ref_avg, atol=1e-5)
    head = ScaleAttentionHead(16, 8)
    alpha = head(torch.randn(2, 16, 5, 7))
    assert alpha.shape == (2, 1, 5, 7) and bool(((alpha >= 0) & (alpha <= 1)).all())
