"""CPP as a plug-in (SeeThroughNet Table 1): auxiliary heads, the seven decode heads, the dilated
ResNet backbone and the ``CPPSegmentor`` meta-architecture, at tiny sizes."""

import glob
import os

import pytest
import torch

pytest.importorskip("detectron2")

from detectron2.modeling import build_model  # noqa: E402

import seethroughnet.modeling.segmentors  # noqa: E402,F401  (registers CPPSegmentor)
from seethroughnet.config import build_config  # noqa: E402
from seethroughnet.nn.auxiliary_heads import AuxiliaryHeads  # noqa: E402
from seethroughnet.nn.decode_heads import DECODE_HEADS, build_decode_head  # noqa: E402
from seethroughnet.nn.decode_heads.ccnet import CrissCrossAttention  # noqa: E402
from seethroughnet.nn.decode_heads.dmnet import dynamic_depthwise_conv  # noqa: E402
from seethroughnet.utils.safe_load import merge_config_file  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CFG_DIR = os.path.join(REPO, "projects/SeeThroughNet/configs/CPP-Plugin")
K = 5

TINY_OVERRIDES = os.path.join(REPO, "tests/configs/cpp_plugin_tiny_overrides.yaml")
# OCRNet on the HRNetV2 backbone (variant and norm come from the tiny overrides)
HRNET = [
    "MODEL.BACKBONE.NAME", "build_hrnetv2_backbone",
    "MODEL.DECODE_HEAD.IN_FEATURES", "['res2', 'res3', 'res4', 'res5']",
]  # fmt: skip


def _cfg(head, *opts):
    """Base-CPP-Plugin.yaml with the tiny overrides, ``head`` and the test's own ``opts``."""
    cfg = build_config(os.path.join(CFG_DIR, "Base-CPP-Plugin.yaml"))
    merge_config_file(cfg, TINY_OVERRIDES)
    cfg.merge_from_list(
        ["MODEL.SEM_SEG_HEAD.NUM_CLASSES", str(K), "MODEL.DECODE_HEAD.NAME", head, *opts]
    )
    return cfg


def _batch(n=2, h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        sem = torch.randint(0, K, (h, w), generator=g)
        sem[:4] = 255
        out.append(
            {
                "image": torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8),
                "sem_seg": sem,
                "height": h,
                "width": w,
            }
        )
    return out


@pytest.mark.parametrize("head", sorted(DECODE_HEADS))
@pytest.mark.parametrize("num_heads", [0, 4])
def test_every_head_trains_a_step_with_0_and_4_aux_heads(head, num_heads):
    opts = ["MODEL.CPP_AUX.ENABLED", str(num_heads > 0), "MODEL.CPP_AUX.NUM_HEADS", str(num_heads)]
    if head == "ocr":
        opts += HRNET
    torch.manual_seed(0)
    model = build_model(_cfg(head, *opts))
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = model(_batch())
    aux = {k for k in losses if k.startswith("loss_aux_")}
    assert aux == ({f"loss_aux_res{i}" for i in (2, 3, 4, 5)} if num_heads else set())
    assert "loss_sem_seg" in losses and (head != "ocr" or "loss_soft_region" in losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    opt.zero_grad()
    total.backward()
    head_grads = [p.grad for p in model.decode_head.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in head_grads)
    if num_heads:
        assert all(p.grad is not None for p in model.aux_heads.parameters())
    opt.step()
    model.eval()
    with torch.no_grad():
        out = model(_batch(1, 48, 80))
    assert out[0]["sem_seg"].shape == (K, 48, 80)


def test_aux_heads_do_not_run_in_eval_mode():
    model = build_model(_cfg("psp", "MODEL.CPP_AUX.LOSS", "cpp_kl"))
    calls = []
    for m in model.aux_heads.heads.values():
        m.register_forward_hook(lambda *a: calls.append(1))
    model.train()
    model(_batch())
    assert len(calls) == 4
    calls.clear()
    model.eval()
    with torch.no_grad():
        model(_batch(1))
    assert calls == []
    # and the inference output does not depend on them
    with torch.no_grad():
        a = model(_batch(1, seed=3))[0]["sem_seg"]
        for p in model.aux_heads.parameters():
            p.add_(1.0)
        b = model(_batch(1, seed=3))[0]["sem_seg"]
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "n,expected",
    [
        (0, []),
        (1, ["res4"]),
        (2, ["res4", "res5"]),
        (3, ["res3", "res4", "res5"]),
        (4, ["res2", "res3", "res4", "res5"]),
        (-1, ["res2", "res3", "res4", "res5"]),
    ],
)
def test_num_heads_adds_heads_in_add_order_res4_first_and_weights_follow_names(n, expected):
    """One head = res4 (MMSegmentation's auxiliary_head in_index=2), then res5, res3, res2."""
    from seethroughnet.modeling.segmentors.cpp_segmentor import aux_head_features

    opts = ["MODEL.CPP_AUX.NUM_HEADS", str(n), "MODEL.CPP_AUX.WEIGHTS", "[0.1, 0.2, 0.3, 0.4]"]
    cfg = build_config(os.path.join(CFG_DIR, "Base-CPP-Plugin.yaml"), opts)
    assert list(cfg.MODEL.CPP_AUX.ADD_ORDER) == ["res4", "res5", "res3", "res2"]
    assert aux_head_features(cfg) == expected
    if n in (1, 2):
        model = build_model(_cfg("psp", *opts))
        assert model.aux_heads.features == expected
        per_feature = {
            "res2": 0.1,
            "res3": 0.2,
            "res4": 0.3,
            "res5": 0.4,
        }  # WEIGHTS follow IN_FEATURES
        assert model.aux_heads.weights == {f: per_feature[f] for f in expected}


def test_add_order_is_a_config_key_and_bad_values_name_it():
    from seethroughnet.modeling.segmentors.cpp_segmentor import aux_head_features

    base = os.path.join(CFG_DIR, "Base-CPP-Plugin.yaml")
    cfg = build_config(
        base,
        [
            "MODEL.CPP_AUX.NUM_HEADS",
            "1",
            "MODEL.CPP_AUX.ADD_ORDER",
            "['res2', 'res3', 'res4', 'res5']",
        ],
    )
    assert aux_head_features(cfg) == ["res2"]
    cfg = build_config(
        base, ["MODEL.CPP_AUX.NUM_HEADS", "1", "MODEL.CPP_AUX.ADD_ORDER", "['res4', 'res5']"]
    )
    with pytest.raises(ValueError, match=r"MODEL.CPP_AUX.ADD_ORDER .* misses \['res2', 'res3'\]"):
        aux_head_features(cfg)
    cfg = build_config(base, ["MODEL.CPP_AUX.NUM_HEADS", "5"])
    with pytest.raises(
        ValueError, match=r"MODEL.CPP_AUX.NUM_HEADS 5 .* valid choices: -1 \(all\) or 0..4"
    ):
        aux_head_features(cfg)
    with pytest.raises(ValueError, match="MODEL.CPP_AUX.WEIGHTS has 3 values"):
        build_model(_cfg("psp", "MODEL.CPP_AUX.WEIGHTS", "[0.1, 0.2, 0.3]"))


@pytest.mark.parametrize("kind", ["cpp_kl", "upsample_ce", "nearest_ce"])
def test_auxiliary_heads_plain_torch(kind):
    feats = {"a": torch.randn(2, 4, 8, 8), "b": torch.randn(2, 6, 4, 4)}
    labels = torch.randint(0, 3, (2, 32, 32))
    heads = AuxiliaryHeads(
        {"a": 4, "b": 6}, 3, ["a", "b"], loss_kind=kind, weights=[1.0, 0.5], hidden_channels=4
    )
    out = heads(feats, labels)
    assert set(out) == {"loss_aux_a", "loss_aux_b"} and all(torch.isfinite(v) for v in out.values())
    heads.weights["b"] = 0.0
    assert float(heads(feats, labels)["loss_aux_b"]) == 0.0
    heads.eval()
    assert heads(feats, labels) == {}


def test_unknown_names_list_the_valid_choices():
    with pytest.raises(
        ValueError, match="valid choices: ann, ccnet, deeplabv3plus, dmnet, ocr, psp, upernet"
    ):
        build_decode_head("segformer", {"res5": 8}, 3)
    with pytest.raises(ValueError, match="valid choices: .*ann.*ccnet"):
        build_model(_cfg("segformer"))
    with pytest.raises(ValueError, match="valid choices: upsample_ce, nearest_ce, cpp_kl"):
        AuxiliaryHeads({"a": 4}, 3, ["a"], loss_kind="dice")
    with pytest.raises(ValueError, match="valid choices: upsample_ce, nearest_ce, cpp_kl"):
        build_model(_cfg("psp", "MODEL.CPP_AUX.LOSS", "dice"))
    with pytest.raises(ValueError, match="not among the backbone features"):
        AuxiliaryHeads({"a": 4}, 3, ["z"])
    with pytest.raises(ValueError, match="2 auxiliary loss weights for 1 heads"):
        AuxiliaryHeads({"a": 4}, 3, ["a"], weights=[1.0, 2.0])


def _naive_criss_cross(m, x):
    n, c, h, w = x.shape
    q, k, v = m.query(x), m.key(x), m.value(x)
    out = torch.zeros_like(x)
    for i in range(h):
        for j in range(w):
            pos = [(g, j) for g in range(h) if g != i] + [(i, g) for g in range(w)]
            e = torch.stack([(q[:, :, i, j] * k[:, :, a, b]).sum(1) for a, b in pos], 1)
            att = torch.softmax(e, 1)
            out[:, :, i, j] = sum(att[:, t, None] * v[:, :, a, b] for t, (a, b) in enumerate(pos))
    return m.gamma * out + x


def test_criss_cross_attention_matches_a_loop():
    torch.manual_seed(0)
    m = CrissCrossAttention(16)
    with torch.no_grad():
        m.gamma.fill_(0.7)
    x = torch.randn(2, 16, 3, 5)
    torch.testing.assert_close(m(x), _naive_criss_cross(m, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 7])
def test_dynamic_depthwise_conv_matches_a_loop_with_mmsegmentation_padding(k):
    """Output (i, j) = sum_ab f[a, b] x[i + a - k // 2, j + b - k // 2] (zeros outside): for even k
    the window reaches one more row/column up/left than down/right, as MMSegmentation's DCM pads
    (``pad = (k - 1) // 2``, then ``(pad + 1, pad, pad + 1, pad)`` for even k)."""
    x, f = (
        torch.randn(2, 3, 6, 7, dtype=torch.float64),
        torch.randn(2, 3, k, k, dtype=torch.float64),
    )
    y = dynamic_depthwise_conv(x, f)
    ref = torch.zeros_like(x)
    h, w = x.shape[-2:]
    for i in range(h):
        for j in range(w):
            for a in range(k):
                for b in range(k):
                    r, c = i + a - k // 2, j + b - k // 2
                    if 0 <= r < h and 0 <= c < w:
                        ref[:, :, i, j] += f[:, :, a, b] * x[:, :, r, c]
    torch.testing.assert_close(y, ref)


@pytest.mark.parametrize(
    "depth,dil,stride", [(18, (2, 4), 8), (18, (1, 2), 16), (18, (1, 1), 32), (50, (2, 4), 8)]
)
def test_dilated_resnet_output_stride(depth, dil, stride):
    from detectron2.modeling import build_backbone

    opts = [
        "MODEL.RESNETS.DEPTH",
        str(depth),
        "MODEL.RESNETS.RES4_DILATION",
        str(dil[0]),
        "MODEL.RESNETS.RES5_DILATION",
        str(dil[1]),
        "MODEL.RESNETS.RES5_MULTI_GRID",
        "[1, 1]" if depth == 18 else "[1, 1, 1]",
        "MODEL.RESNETS.NORM",
        "BN",
    ]
    if depth == 18:
        opts += ["MODEL.RESNETS.RES2_OUT_CHANNELS", "64"]
    cfg = build_config(os.path.join(CFG_DIR, "Base-CPP-Plugin.yaml"), opts)
    bb = build_backbone(cfg)
    shapes = bb.output_shape()
    assert shapes["res5"].stride == stride and shapes["res2"].stride == 4
    out = bb(torch.randn(1, 3, 64, 64))
    assert out["res5"].shape[-1] == 64 // stride
    assert out["res5"].shape[1] == (512 if depth == 18 else 2048)


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for p in glob.glob(os.path.join(CFG_DIR, "**", "*.yaml"), recursive=True)
        if os.sep + "grids" + os.sep not in p
    ),
)  # grids/ hold study grids
def test_every_cpp_plugin_config_loads(path):
    cfg = build_config(path)
    assert cfg.MODEL.META_ARCHITECTURE == "CPPSegmentor"
    assert cfg.MODEL.DECODE_HEAD.NAME in DECODE_HEADS


def test_head_shapes_with_resnet101_widths():
    """The heads accept MMSegmentation's ResNet-101 widths (c2..c5 = 256..2048) at OS8."""
    ch = {"res2": 256, "res3": 512, "res4": 1024, "res5": 2048}
    feats = {
        "res2": torch.randn(1, 256, 16, 16),
        "res3": torch.randn(1, 512, 8, 8),
        "res4": torch.randn(1, 1024, 8, 8),
        "res5": torch.randn(1, 2048, 8, 8),
    }
    for name in ("psp", "deeplabv3plus", "upernet"):
        h = build_decode_head(name, ch, 19, channels=32).eval()
        with torch.no_grad():
            out = h(feats)
        assert out.shape[:2] == (1, 19) and out.shape[-1] in (8, 16)


def test_undilated_upernet_trains_with_aux_heads_at_strides_4_8_16_32():
    """UPerNet as MMSegmentation runs it (no dilation): the top-down path resizes every level and
    the four auxiliary heads predict at strides 4, 8, 16, 32 (64x64 input: 16, 8, 4, 2)."""
    model = build_model(
        _cfg("upernet", "MODEL.RESNETS.RES4_DILATION", "1", "MODEL.RESNETS.RES5_DILATION", "1")
    )
    sizes = {}
    for f, m in model.aux_heads.heads.items():
        m.register_forward_hook(lambda mod, inp, out, f=f: sizes.__setitem__(f, out.shape[-1]))
    model.train()
    losses = model(_batch())
    assert sizes == {"res2": 16, "res3": 8, "res4": 4, "res5": 2}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.decode_head.lateral.parameters())
