"""ImageNet initialisation from local files (issue 13, item 1): every ResNet-101 / HRNet-W48
checkpoint layout people have on disk loads into the project's backbone with zero missing keys,
and a wrong file is refused with the key report.

* torchvision ``resnet101`` / timm ``resnet101`` / timm ``resnet101d``: randomly initialised models
  of those libraries, saved to disk. Numerical checks (ResNet-50 scale, so they stay fast): the
  loaded backbone's res2..res5 equal the library model's layer1..layer4 outputs (the reference
  computation), also dilated against torchvision's ``replace_stride_with_dilation`` and, for
  ``resnet50d``, with the average-pool shortcut.
* MMSegmentation / MMCV ``resnet101_v1c`` (MMCV is not installed): the key names and shapes are
  generated below from ``mmseg/models/backbones/resnet.py`` (``ResNetV1c``: ``deep_stem=True``,
  ``stem_channels=64``; ``self.stem = nn.Sequential(conv 3->32 s2, BN, ReLU, conv 32->32, BN, ReLU,
  conv 32->64, BN, ReLU)`` -> ``stem.0/1/3/4/6/7``; ``layer{i}`` of ``Bottleneck`` with
  ``conv1/bn1/conv2/bn2/conv3/bn3`` and ``downsample = Sequential(conv, BN)``).
* HRNet-W48: timm's ``hrnet_w48`` classification model saved to disk, and the official HRNet
  ImageNet release (HRNet/HRNet-Image-Classification, ``hrnetv2_w48_imagenet_pretrained.pth``),
  whose key names and shapes are generated below from ``lib/models/cls_hrnet.py`` and the W48
  experiment config (stage1: 1 module, 4 Bottlenecks of 64; stage2-4: 1/4/3 modules of BASIC
  blocks, 4 per branch, widths 48/96/192/384).
"""

import os
import re

import pytest
import torch

pytest.importorskip("detectron2")
timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")

from detectron2.layers import ShapeSpec  # noqa: E402

from seethroughnet.config import build_config  # noqa: E402
from seethroughnet.modeling.segmentors.imagenet_resnet import (  # noqa: E402
    ImageNetCheckpointError,
    load_imagenet_resnet,
)
from seethroughnet.modeling.segmentors.resnet import (  # noqa: E402
    AvgDownShortcut,
    build_dilated_resnet_backbone,
)
from seethroughnet.utils.safe_load import UntrustedWeightsError, load_weights_file  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PSP = os.path.join(REPO, "projects/SeeThroughNet/configs/CPP-Plugin/pspnet_R101_cityscapes.yaml")
BLOCKS = {18: [2, 2, 2, 2], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}
BN_BUFFERS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _cfg(depth, stem="basic", avg_down=False, dilated=False, checkpoint="", layout="auto", **extra):
    cfg = build_config()
    r = cfg.MODEL.RESNETS
    r.DEPTH, r.STEM_TYPE, r.STEM_OUT_CHANNELS, r.NORM = depth, stem, 64, "BN"
    r.RES2_OUT_CHANNELS = 64 if depth < 50 else 256
    r.STRIDE_IN_1X1 = False
    r.RES4_DILATION, r.RES5_DILATION = (2, 4) if dilated else (1, 1)
    r.RES5_MULTI_GRID = [1] * BLOCKS[depth][3]
    r.CONTRACT_DILATION = True
    r.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    r.AVG_DOWN = avg_down
    r.IMAGENET_CHECKPOINT, r.IMAGENET_LAYOUT = checkpoint, layout
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    for k, v in extra.items():
        setattr(cfg.MODEL, k, v)
    return cfg


def _backbone(*args, **kwargs):
    return build_dilated_resnet_backbone(_cfg(*args, **kwargs), ShapeSpec(channels=3))


def _save(obj, path):
    torch.save(obj, str(path))
    return str(path)


def _n_params(state):
    return sum(1 for k in state if not k.endswith("num_batches_tracked"))


def _assert_clean(report, n_file_tensors, dropped=("fc.bias", "fc.weight")):
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    assert sorted(report.dropped_classifier) == sorted(dropped)
    assert (
        len([k for k in report.loaded if not k.endswith("num_batches_tracked")]) == n_file_tensors
    )


def _stages(x, stem, layers):
    out = []
    x = stem(x)
    for layer in layers:
        x = layer(x)
        out.append(x)
    return out


# --------------------------------------------------------------------------- ResNet-101 key sets
def test_torchvision_resnet101_loads_with_zero_missing(tmp_path):
    tv = torchvision.models.resnet101(weights=None)
    path = _save(tv.state_dict(), tmp_path / "resnet101.pth")
    model = _backbone(101, "basic")
    rep = load_imagenet_resnet(model, path, "torchvision")
    _assert_clean(rep, _n_params(tv.state_dict()) - 2)
    assert rep.layout == "torchvision/timm"
    torch.testing.assert_close(model.res4[22].conv3.norm.running_var, tv.layer3[22].bn3.running_var)
    torch.testing.assert_close(model.res3[0].shortcut.weight, tv.layer2[0].downsample[0].weight)
    torch.testing.assert_close(model.stem.conv1.norm.bias, tv.bn1.bias)


def test_timm_resnet101_loads_with_zero_missing(tmp_path):
    m = timm.create_model("resnet101", pretrained=False)
    path = _save(m.state_dict(), tmp_path / "timm_resnet101.pth")
    model = _backbone(101, "basic")
    rep = load_imagenet_resnet(model, path, "timm")
    _assert_clean(rep, _n_params(m.state_dict()) - 2)
    torch.testing.assert_close(model.res5[2].conv2.weight, m.layer4[2].conv2.weight)


def test_timm_resnet101d_loads_into_deep_stem_avg_down_backbone(tmp_path):
    m = timm.create_model("resnet101d", pretrained=False)
    path = _save(m.state_dict(), tmp_path / "timm_resnet101d.pth")
    model = _backbone(101, "deeplab", avg_down=True)
    rep = load_imagenet_resnet(model, path)  # auto
    assert rep.layout == "timm_d"
    _assert_clean(rep, _n_params(m.state_dict()) - 2)
    torch.testing.assert_close(model.stem.conv2.weight, m.conv1[3].weight)
    torch.testing.assert_close(model.stem.conv3.norm.running_mean, m.bn1.running_mean)
    torch.testing.assert_close(model.res4[0].shortcut.weight, m.layer3[0].downsample[1].weight)
    torch.testing.assert_close(model.res4[0].shortcut.norm.weight, m.layer3[0].downsample[2].weight)
    # the same file into the Table 1 variant (V1c: strided-conv shortcuts): refused by name,
    # although every shape matches
    with pytest.raises(
        ImageNetCheckpointError, match=r"timm_resnet101d.pth.*set MODEL.RESNETS.AVG_DOWN True"
    ):
        load_imagenet_resnet(_backbone(101, "deeplab"), path)
    # into a plain 7x7-stem backbone: the stem keys are reported
    with pytest.raises(
        ImageNetCheckpointError,
        match=r"(?s)set MODEL.RESNETS.STEM_TYPE deeplab.*"
        r"unexpected: .*conv1.3.weight \(as stem.conv2.weight\).*mismatched: .*stem.conv1.weight "
        r"\(file \(32, 3, 3, 3\) vs model \(64, 3, 7, 7\)\)",
    ):
        load_imagenet_resnet(_backbone(101, "basic", avg_down=True), path)


def mmcv_resnet_v1c_state(depth, fc=False):
    """``ResNetV1c(depth)``'s state dict names and shapes as mmseg/models/backbones/resnet.py
    builds them (style "pytorch", stem_channels 64, base_channels 64), random values."""
    g = torch.Generator().manual_seed(depth)
    sd = {}

    def conv(name, o, i, k):
        sd[name + ".weight"] = torch.randn(o, i, k, k, generator=g)

    def bn(name, c):
        sd[name + ".weight"] = torch.rand(c, generator=g) + 0.5
        sd[name + ".bias"] = torch.randn(c, generator=g)
        sd[name + ".running_mean"] = torch.randn(c, generator=g)
        sd[name + ".running_var"] = torch.rand(c, generator=g) + 0.5
        sd[name + ".num_batches_tracked"] = torch.tensor(0)

    conv("stem.0", 32, 3, 3), bn("stem.1", 32)  # stem.2: ReLU
    conv("stem.3", 32, 32, 3), bn("stem.4", 32)  # stem.5: ReLU
    conv("stem.6", 64, 32, 3), bn("stem.7", 64)  # stem.8: ReLU
    inplanes = 64
    for i, n in enumerate(BLOCKS[depth]):
        planes = 64 * 2**i
        for j in range(n):
            p = f"layer{i + 1}.{j}"
            conv(p + ".conv1", planes, inplanes, 1), bn(p + ".bn1", planes)
            conv(p + ".conv2", planes, planes, 3), bn(p + ".bn2", planes)
            conv(p + ".conv3", planes * 4, planes, 1), bn(p + ".bn3", planes * 4)
            if j == 0:
                (
                    conv(p + ".downsample.0", planes * 4, inplanes, 1),
                    bn(p + ".downsample.1", planes * 4),
                )
            inplanes = planes * 4
    if fc:
        sd["fc.weight"], sd["fc.bias"] = (
            torch.randn(1000, 2048, generator=g),
            torch.randn(1000, generator=g),
        )
    return sd


def test_mmcv_resnet101_v1c_loads_into_the_table1_backbone(tmp_path):
    sd = mmcv_resnet_v1c_state(101)
    # MMCV's save_checkpoint: {"meta": ..., "state_dict": ...}
    path = _save(
        {"meta": {"mmcv_version": "1.x", "CLASSES": None}, "state_dict": sd},
        tmp_path / "resnet101_v1c.pth",
    )
    # the Table 1 config itself (SyncBN -> BN for one CPU process), the file given by the new key
    cfg = build_config(
        PSP,
        [
            "MODEL.RESNETS.NORM",
            "BN",
            "MODEL.DECODE_HEAD.NORM",
            "BN",
            "MODEL.RESNETS.IMAGENET_CHECKPOINT",
            path,
        ],
    )
    assert cfg.MODEL.RESNETS.STEM_TYPE == "deeplab" and not cfg.MODEL.RESNETS.AVG_DOWN
    model = build_dilated_resnet_backbone(cfg, ShapeSpec(channels=3))  # loads strictly at build
    torch.testing.assert_close(model.stem.conv2.norm.running_var, sd["stem.4.running_var"])
    torch.testing.assert_close(model.res5[2].conv3.norm.bias, sd["layer4.2.bn3.bias"])
    torch.testing.assert_close(model.res4[0].shortcut.weight, sd["layer3.0.downsample.0.weight"])
    rep = load_imagenet_resnet(model, path, "mmcv_v1c")
    assert rep.layout == "mmcv_v1c"
    _assert_clean(rep, _n_params(sd), dropped=())
    own = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert set(rep.loaded) >= own and len(own) == _n_params(sd)
    # with the classifier a classification checkpoint carries, and mmseg's "backbone." prefix
    path2 = _save(
        {"backbone." + k: v for k, v in mmcv_resnet_v1c_state(101, fc=True).items()},
        tmp_path / "b.pth",
    )
    rep = load_imagenet_resnet(model, path2)
    assert rep.missing == [] and rep.dropped_classifier == ["fc.weight", "fc.bias"]


# ------------------------------------------------------------------------- numerical equivalence
@torch.no_grad()
@pytest.mark.parametrize(
    "depth,dilated", [(18, False), (50, False), (50, True)]
)  # torchvision: no dilated BasicBlock
def test_torchvision_weights_compute_torchvision_features(tmp_path, depth, dilated):
    torch.manual_seed(0)
    tv = getattr(torchvision.models, f"resnet{depth}")(
        weights=None, replace_stride_with_dilation=[False, True, True] if dilated else None
    )
    for mod in tv.modules():  # non-trivial BN statistics
        if isinstance(mod, torch.nn.BatchNorm2d):
            (
                mod.running_mean.normal_(0, 0.1),
                mod.running_var.uniform_(0.5, 1.5),
                mod.bias.data.normal_(0, 0.1),
            )
    tv.eval()
    path = _save(tv.state_dict(), tmp_path / "tv.pth")
    model = _backbone(depth, "basic", dilated=dilated, checkpoint=path).eval()
    x = torch.randn(2, 3, 64, 96)
    ref = _stages(
        x,
        torch.nn.Sequential(tv.conv1, tv.bn1, tv.relu, tv.maxpool),
        [tv.layer1, tv.layer2, tv.layer3, tv.layer4],
    )
    out = model(x)
    for name, r in zip(["res2", "res3", "res4", "res5"], ref):
        torch.testing.assert_close(out[name], r, rtol=1e-4, atol=1e-4)


@torch.no_grad()
@pytest.mark.parametrize("variant", ["resnet50d", "resnet50c"])
def test_timm_deep_stem_weights_compute_timm_features(tmp_path, variant):
    """resnet50d: deep stem + average-pool shortcut (the ResNet-D of resnet101d); resnet50c: deep
    stem + strided shortcut, renamed to MMCV's ResNetV1c names (stem.0/1/3/4/6/7) by the mapping
    written from mmseg's _make_stem_layer: this checks the v1c stem order numerically."""
    torch.manual_seed(0)
    m = timm.create_model(variant, pretrained=False)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            (
                mod.running_mean.normal_(0, 0.1),
                mod.running_var.uniform_(0.5, 1.5),
                mod.bias.data.normal_(0, 0.1),
            )
    m.eval()
    sd = m.state_dict()
    if variant == "resnet50c":
        ren = {
            "conv1.0.": "stem.0.",
            "conv1.1.": "stem.1.",
            "conv1.3.": "stem.3.",
            "conv1.4.": "stem.4.",
            "conv1.6.": "stem.6.",
            "bn1.": "stem.7.",
        }
        sd = {
            next((ren[p] + k[len(p) :] for p in ren if k.startswith(p)), k): v
            for k, v in sd.items()
        }
        assert {k for k in sd if not k.startswith("fc.")} == set(mmcv_resnet_v1c_state(50))
    path = _save(sd, tmp_path / f"{variant}.pth")
    layout = {"resnet50d": "timm_d", "resnet50c": "mmcv_v1c"}[variant]
    model = _backbone(
        50, "deeplab", avg_down=variant == "resnet50d", checkpoint=path, layout=layout
    ).eval()
    if variant == "resnet50d":
        assert (
            isinstance(model.res3[0].shortcut, AvgDownShortcut)
            and model.res2[0].shortcut.pool_stride == 1
        )
    x = torch.randn(2, 3, 64, 96)
    ref = _stages(
        x,
        torch.nn.Sequential(m.conv1, m.bn1, m.act1, m.maxpool),
        [m.layer1, m.layer2, m.layer3, m.layer4],
    )
    out = model(x)
    for name, r in zip(["res2", "res3", "res4", "res5"], ref):
        torch.testing.assert_close(out[name], r, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------- wrong files
def test_wrong_resnet_files_are_refused_with_the_key_report(tmp_path):
    r50 = _save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "resnet50.pth")
    model = _backbone(101, "basic")
    with pytest.raises(ImageNetCheckpointError) as e:
        load_imagenet_resnet(model, r50)
    msg = str(e.value)
    assert "resnet50.pth" in msg and "(torchvision/timm layout)" in msg
    # ResNet-101's res4.6 .. res4.22 (17 blocks x (3 convs + 3 BNs x 4)) are missing, nothing
    # unexpected
    assert re.search(r"\b255 missing, 0 unexpected, 0 wrongly shaped", msg)
    assert "res4.10.conv1.weight" in msg
    # wrong file, right stem: ResNet-18 basic blocks into ResNet-101 bottlenecks
    r18 = _save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(
        ImageNetCheckpointError,
        match=r"(?s)resnet18.pth.*wrongly shaped.*mismatched: res2.0.conv1.weight "
        r"\(file \(64, 64, 3, 3\) vs model \(64, 64, 1, 1\)\)",
    ):
        load_imagenet_resnet(model, r18)
    # nothing missing, but a tensor the backbone has no place for (e.g. an SE block): refused, by
    # the file's name
    sd18 = torchvision.models.resnet18(weights=None).state_dict()
    extra = _save(
        {**sd18, "layer2.1.se.fc1.weight": torch.zeros(8, 128, 1, 1)}, tmp_path / "r18_se.pth"
    )
    with pytest.raises(
        ImageNetCheckpointError,
        match=r"(?s)r18_se.pth.*0 missing, 1 unexpected.*"
        r"unexpected: layer2.1.se.fc1.weight\n  mismatched: -",
    ):
        load_imagenet_resnet(_backbone(18), extra)
    # an explicit layout that is not the file's
    with pytest.raises(
        ImageNetCheckpointError,
        match=r"IMAGENET_LAYOUT is 'mmcv_v1c' but the file has the " r"torchvision/timm layout",
    ):
        load_imagenet_resnet(model, r50, "mmcv_v1c")
    # not a ResNet at all
    hr = _save(timm.create_model("hrnet_w18_small_v2").state_dict(), tmp_path / "hrnet.pth")
    with pytest.raises(
        ImageNetCheckpointError,
        match=r"(?s)hrnet.pth.*unexpected: bn2.bias.*classifier.weight, conv2.weight",
    ):
        load_imagenet_resnet(model, hr)
    bad = _save({"a": torch.zeros(1)}, tmp_path / "nothing.pth")
    with pytest.raises(
        ImageNetCheckpointError, match=r"nothing.pth is not a torchvision / timm / MMCV ResNet"
    ):
        load_imagenet_resnet(model, bad)
    # through the config key: the build fails with the same report
    with pytest.raises(ImageNetCheckpointError, match=r"resnet50.pth"):
        _backbone(101, "basic", checkpoint=r50)
    # MODEL.WEIGHTS_ALLOW_PARTIAL loads the matching part, with a warning
    with pytest.warns(UserWarning, match=r"partial load of .*resnet50.pth"):
        part = _backbone(101, "basic", checkpoint=r50, WEIGHTS_ALLOW_PARTIAL=True)
    assert torch.equal(part.res4[5].conv2.weight, load_weights_file(r50)["layer3.5.conv2.weight"])


class _Payload:  # a pickled object: the safe loader must refuse the file
    pass


def test_resnet_files_go_through_the_safe_loader(tmp_path):
    sd = torchvision.models.resnet18(weights=None).state_dict()
    path = _save({"state_dict": sd, "extra": _Payload()}, tmp_path / "pickled.pth")
    with pytest.raises(UntrustedWeightsError, match=r"pickled.pth: refused to load"):
        load_imagenet_resnet(_backbone(18), path)


# -------------------------------------------------------------------------------------- HRNet
# experiments/cls_hrnet_w48_sgd_lr5e-2_wd1e-4_bs32_x100.yaml: (modules, block, blocks, channels)
W48_STAGES = [
    (1, "BOTTLENECK", [4], [64]),
    (1, "BASIC", [4, 4], [48, 96]),
    (4, "BASIC", [4, 4, 4], [48, 96, 192]),
    (3, "BASIC", [4, 4, 4, 4], [48, 96, 192, 384]),
]


def official_hrnet_state(stages=W48_STAGES):
    """Names and shapes of cls_hrnet.HighResolutionNet's state dict (random values), written
    from HRNet/HRNet-Image-Classification lib/models/cls_hrnet.py."""
    shapes = {}

    def conv(name, o, i, k, bias=False):
        shapes[name + ".weight"] = (o, i, k, k)
        if bias:
            shapes[name + ".bias"] = (o,)

    def bn(name, c):
        for b in BN_BUFFERS:
            shapes[f"{name}.{b}"] = () if b == "num_batches_tracked" else (c,)

    def bottleneck(p, inplanes, planes, downsample):
        conv(p + ".conv1", planes, inplanes, 1), bn(p + ".bn1", planes)
        conv(p + ".conv2", planes, planes, 3), bn(p + ".bn2", planes)
        conv(p + ".conv3", planes * 4, planes, 1), bn(p + ".bn3", planes * 4)
        if downsample:
            conv(p + ".downsample.0", planes * 4, inplanes, 1), bn(p + ".downsample.1", planes * 4)

    def basic(p, c):
        conv(p + ".conv1", c, c, 3), bn(p + ".bn1", c)
        conv(p + ".conv2", c, c, 3), bn(p + ".bn2", c)

    conv("conv1", 64, 3, 3), bn("bn1", 64), conv("conv2", 64, 64, 3), bn("bn2", 64)
    _, _, (n1,), (c1,) = stages[0]
    for j in range(n1):  # _make_layer(Bottleneck, 64, 64, 4)
        bottleneck(f"layer1.{j}", 64 if j == 0 else c1 * 4, c1, j == 0)
    pre = [c1 * 4]
    for s, (modules, _, blocks, chans) in enumerate(stages[1:], start=2):
        # _make_transition_layer(pre, chans)
        for i, c in enumerate(chans):
            if i < len(pre):
                if c != pre[i]:
                    (
                        conv(f"transition{s - 1}.{i}.0", c, pre[i], 3),
                        bn(f"transition{s - 1}.{i}.1", c),
                    )
            else:
                for j in range(i + 1 - len(pre)):
                    out = c if j == i - len(pre) else pre[-1]
                    (
                        conv(f"transition{s - 1}.{i}.{j}.0", out, pre[-1], 3),
                        bn(f"transition{s - 1}.{i}.{j}.1", out),
                    )
        for mod in range(
            modules
        ):  # HighResolutionModule (BASIC blocks keep the width: no downsample)
            p = f"stage{s}.{mod}"
            for b, (n, c) in enumerate(zip(blocks, chans)):
                for k in range(n):
                    basic(f"{p}.branches.{b}.{k}", c)
            for i in range(len(chans)):  # _make_fuse_layers (multi_scale_output=True)
                for j in range(len(chans)):
                    if j > i:
                        (
                            conv(f"{p}.fuse_layers.{i}.{j}.0", chans[i], chans[j], 1),
                            bn(f"{p}.fuse_layers.{i}.{j}.1", chans[i]),
                        )
                    elif j < i:
                        for k in range(i - j):
                            out = chans[i] if k == i - j - 1 else chans[j]
                            conv(f"{p}.fuse_layers.{i}.{j}.{k}.0", out, chans[j], 3)
                            bn(f"{p}.fuse_layers.{i}.{j}.{k}.1", out)
        pre = chans
    # classification head (_make_head): incre_modules, downsamp_modules, final_layer, classifier
    head = [32, 64, 128, 256]
    for i, c in enumerate(pre):
        bottleneck(f"incre_modules.{i}.0", c, head[i], True)
    for i in range(3):
        (
            conv(f"downsamp_modules.{i}.0", head[i + 1] * 4, head[i] * 4, 3, bias=True),
            bn(f"downsamp_modules.{i}.1", head[i + 1] * 4),
        )
    conv("final_layer.0", 2048, 1024, 1, bias=True), bn("final_layer.1", 2048)
    shapes["classifier.weight"], shapes["classifier.bias"] = (1000, 2048), (1000,)
    g = torch.Generator().manual_seed(48)
    return {
        k: (torch.tensor(0) if k.endswith("num_batches_tracked") else torch.randn(s, generator=g))
        for k, s in shapes.items()
    }


HEAD = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")


@pytest.fixture(scope="module")
def w48_encoder():
    from seethroughnet.nn.hrnet import HRNetV2Encoder

    return HRNetV2Encoder("hrnet_w48")


def test_official_hrnet_w48_release_names_coincide_with_timm(tmp_path, w48_encoder):
    official = official_hrnet_state()
    with torch.device("meta"):  # names and shapes only
        timm_sd = timm.create_model("hrnet_w48", pretrained=False).state_dict()
    # the two libraries name and shape every tensor alike (the classification head included)
    assert {k: tuple(v.shape) for k, v in official.items()} == {
        k: tuple(v.shape) for k, v in timm_sd.items()
    }
    # a DataParallel-saved copy ("module." prefix) of the official file loads with zero missing keys
    path = _save(
        {"module." + k: v for k, v in official.items()},
        tmp_path / "hrnetv2_w48_imagenet_pretrained.pth",
    )
    rep = w48_encoder.load_checkpoint(path)
    assert rep.missing == [] and rep.unexpected == [] and rep.mismatched == []
    assert sorted(rep.dropped_classifier) == sorted(k for k in official if k.startswith(HEAD))
    body = w48_encoder.body.state_dict()
    assert len([k for k in rep.loaded if not k.endswith("num_batches_tracked")]) == _n_params(body)
    torch.testing.assert_close(
        body["stage4.2.fuse_layers.3.0.2.0.weight"], official["stage4.2.fuse_layers.3.0.2.0.weight"]
    )
    torch.testing.assert_close(
        body["transition3.3.0.1.running_var"], official["transition3.3.0.1.running_var"]
    )


def test_timm_hrnet_w48_loads_with_zero_missing(tmp_path, w48_encoder):
    m = timm.create_model("hrnet_w48", pretrained=False)
    path = _save(m.state_dict(), tmp_path / "timm_hrnet_w48.pth")
    rep = w48_encoder.load_checkpoint(path)
    assert rep.missing == [] and rep.unexpected == [] and rep.mismatched == []
    assert rep.dropped_classifier and all(k.startswith(HEAD) for k in rep.dropped_classifier)
    torch.testing.assert_close(
        w48_encoder.body.state_dict()["stage3.3.branches.2.3.conv2.weight"],
        m.stage3[3].branches[2][3].conv2.weight,
    )


def test_wrong_hrnet_files_are_refused_with_the_key_report(tmp_path, w48_encoder):
    r = _save(mmcv_resnet_v1c_state(50), tmp_path / "resnet50_v1c.pth")
    with pytest.raises(
        ValueError,
        match=r"(?s)resnet50_v1c.pth.*does not match timm 'hrnet_w48'.*"
        r"missing: bn1.bias, .*conv2.weight.*unexpected: layer2.0.bn1.bias",
    ):
        w48_encoder.load_checkpoint(r)
    w18 = official_hrnet_state(
        [
            (1, "BOTTLENECK", [4], [64]),
            (1, "BASIC", [4, 4], [18, 36]),
            (4, "BASIC", [4, 4, 4], [18, 36, 72]),
            (3, "BASIC", [4, 4, 4, 4], [18, 36, 72, 144]),
        ]
    )
    path = _save(w18, tmp_path / "hrnetv2_w18.pth")
    with pytest.raises(
        ValueError,
        match=r"(?s)hrnetv2_w18.pth.*0 missing, 0 unexpected, 1450 wrongly shaped.*"
        r"mismatched: stage2.0.branches.0.0.bn1.bias \(checkpoint \(18,\) vs model \(48,\)\)",
    ):
        w48_encoder.load_checkpoint(path)
