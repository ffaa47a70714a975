"""``HRNetV2Encoder(fuse_upsample=...)``: the fuse layers of every HRNet module up-sample a lower
branch bilinearly (the segmentation HRNet: MMSegmentation's ``HRModule``, checked against
MMSegmentation itself in tests/mmseg/test_mmseg_hrnet_fuse.py) or by nearest neighbour (timm's
classification network, unchanged). Same tensors either way. References written here: the fuse of
one module spelled out with ``F.interpolate`` / pixel repetition."""

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from seethroughnet.nn.hrnet import HRNetV2Encoder

SMALL = "hrnet_w18_small_v2"


def _randomized(enc: HRNetV2Encoder, seed: int = 0) -> HRNetV2Encoder:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in enc.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return enc.eval()


def test_nearest_is_timms_network_unchanged():
    torch.manual_seed(0)
    timm_features = timm.create_model(
        SMALL, pretrained=False, features_only=True, feature_location="", out_indices=(1, 2, 3, 4)
    ).eval()
    enc = HRNetV2Encoder(SMALL, fuse_upsample="nearest").eval()
    enc.body.load_state_dict(timm_features.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ours, theirs = enc(x), timm_features(x)
    for name, t in zip(("res2", "res3", "res4", "res5"), theirs):
        assert torch.equal(ours[name], t)


def test_same_tensors_and_imagenet_checkpoint_load_either_way(tmp_path):
    path = tmp_path / "imagenet.pth"
    torch.save(timm.create_model(SMALL, pretrained=False).state_dict(), path)  # with classifier
    bilinear = HRNetV2Encoder(SMALL, checkpoint=str(path), fuse_upsample="bilinear")
    nearest = HRNetV2Encoder(SMALL, checkpoint=str(path), fuse_upsample="nearest")
    a, b = bilinear.state_dict(), nearest.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sum(p.numel() for p in bilinear.parameters()) == sum(
        p.numel() for p in nearest.parameters()
    )
    # different functions of the same tensors
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ya, yb = bilinear.eval()(x), nearest.eval()(x)
    assert not torch.allclose(ya["res2"], yb["res2"], atol=1e-3)


def _fuse_reference(module, xs, mode, align_corners):
    """One HRNet module: branches, then ``y_i = ReLU(sum_j t_ij)`` with ``t_ii = x_i``, lower
    branches (``j > i``) by their 1x1 conv + BN then up-sampled to ``x_i``'s size, higher ones by
    the strided 3x3 convs."""
    xs = [branch(x) for branch, x in zip(module.branches, xs)]
    out = []
    for i, layers in enumerate(module.fuse_layers):
        y = torch.zeros_like(xs[i])
        for j, x in enumerate(xs):
            if j == i:
                t = x
            elif j > i:
                t = layers[j][1](layers[j][0](x))  # conv, BN
                s = 2 ** (j - i)
                if mode == "nearest":
                    t = t.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)
                else:
                    t = F.interpolate(
                        t, size=xs[i].shape[-2:], mode="bilinear", align_corners=align_corners
                    )
            else:
                t = layers[j](x)
            y = y + t
        out.append(torch.relu(y))
    return out


@pytest.mark.parametrize(
    "mode,align_corners", [("bilinear", False), ("bilinear", True), ("nearest", False)]
)
def test_fuse_of_one_module_equals_written_out_reference(mode, align_corners):
    torch.manual_seed(1)
    enc = _randomized(HRNetV2Encoder(SMALL, fuse_upsample=mode, fuse_align_corners=align_corners))
    module = enc.body.stage4[0]  # four branches: up-sampling by 2, 4 and 8
    chans = [b[0].conv1.in_channels for b in module.branches]
    xs = [torch.randn(1, c, 16 // 2**k, 24 // 2**k) for k, c in enumerate(chans)]
    with torch.no_grad():
        ref = _fuse_reference(module, [x.clone() for x in xs], mode, align_corners)
        got = module([x.clone() for x in xs])
    assert len(got) == 4
    for r, o in zip(ref, got):
        assert torch.allclose(o, r, atol=1e-5)


def test_bad_fuse_settings_are_refused():
    with pytest.raises(ValueError, match="FUSE_UPSAMPLE"):
        HRNetV2Encoder(SMALL, fuse_upsample="bicubic")
    with pytest.raises(ValueError, match="FUSE_ALIGN_CORNERS"):
        HRNetV2Encoder(SMALL, fuse_upsample="nearest", fuse_align_corners=True)
