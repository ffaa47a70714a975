"""HRFPN (transfer/hrfpn.py) against the HRNet paper's / mmdetection's design, FCOS without
parameters that get no gradient, mmdetection's full-model gradient clipping, the encoder BN
re-estimation, SyncBN -> BN on CPU and the polygon mask-format check."""

import json
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("detectron2")
hrnet = pytest.importorskip("seethroughnet.nn.hrnet")

from detectron2.config import get_cfg  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402

from seethroughnet.config import add_seethroughnet_config  # noqa: E402
from seethroughnet.modeling.backbone.hrnet import HRNetV2Backbone  # noqa: E402
from transfer.config import add_transfer_config  # noqa: E402
from transfer.hrfpn import HRFPN  # noqa: E402
from transfer.modeling import build_transfer_backbone, recompute_encoder_bn_stats  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "transfer", "configs")
SMALL = "hrnet_w18_small_v2"


def _expected_hrfpn_params(branch_channels, out_channels=256, num_outs=5):
    """Per layer: a 1x1 conv (weight + bias) from the concatenated branches, then one 3x3 conv
    (weight + bias) per output level; no norm."""
    reduction = sum(branch_channels) * out_channels * 1 * 1 + out_channels
    per_level = out_channels * out_channels * 3 * 3 + out_channels
    return reduction + num_outs * per_level


@pytest.mark.parametrize("conv_stride", [1, 2])
def test_hrfpn_w48_parameter_count_and_levels(conv_stride):
    enc = hrnet.HRNetV2Encoder("hrnet_w48")
    assert [enc.channels[k] for k in ("res2", "res3", "res4", "res5")] == [48, 96, 192, 384]
    neck = HRFPN(HRNetV2Backbone(enc), out_channels=256, num_outs=5, conv_stride=conv_stride)
    n_neck = sum(p.numel() for n, p in neck.named_parameters() if not n.startswith("bottom_up."))
    assert (
        n_neck
        == _expected_hrfpn_params([48, 96, 192, 384])
        == 720 * 256 + 256 + 5 * (9 * 256 * 256 + 256)
    )
    assert neck.reduction_conv.weight.shape == (256, 720, 1, 1)
    shapes = neck.output_shape()
    first = 2 + (conv_stride == 2)
    assert {k: v.stride for k, v in shapes.items()} == {
        f"p{first + i}": 4 * conv_stride * 2**i for i in range(5)
    }
    assert all(v.channels == 256 for v in shapes.values())
    assert neck.size_divisibility == 64 * conv_stride


@pytest.mark.parametrize("conv_stride", [1, 2])
def test_hrfpn_forward_shapes_and_reference_computation(conv_stride):
    torch.manual_seed(0)
    enc = hrnet.HRNetV2Encoder(SMALL).eval()
    neck = HRFPN(HRNetV2Backbone(enc), out_channels=16, num_outs=5, conv_stride=conv_stride).eval()
    for p in neck.parameters():  # non-zero biases so that they are checked too
        if p.dim() == 1:
            nn.init.normal_(p)
    x = torch.randn(1, 3, 128, 256)
    with torch.no_grad():
        out = neck(x)
        # reference: the design written out with functional ops and the neck's weights
        feats = enc(x)
        branches = [feats["res2"]] + [
            F.interpolate(feats[k], scale_factor=2**i, mode="bilinear", align_corners=False)
            for i, k in enumerate(("res3", "res4", "res5"), start=1)
        ]
        cat = torch.cat(branches, dim=1)
        assert cat.shape[1] == sum(enc.channels.values())
        red = F.conv2d(cat, neck.reduction_conv.weight, neck.reduction_conv.bias)
        expected = {}
        for i in range(5):
            level = red if i == 0 else F.avg_pool2d(red, kernel_size=2**i, stride=2**i)
            conv = neck.output_convs[i]
            name = f"p{2 + i + (conv_stride == 2)}"
            expected[name] = F.conv2d(level, conv.weight, conv.bias, stride=conv_stride, padding=1)
    assert list(out) == list(expected)
    for k, v in expected.items():
        stride = neck.output_shape()[k].stride
        assert out[k].shape == (1, 16, 128 // stride, 256 // stride), k
        torch.testing.assert_close(out[k], v, rtol=1e-5, atol=1e-5)


def test_hrfpn_rejects_bad_options():
    enc = HRNetV2Backbone(hrnet.HRNetV2Encoder(SMALL))
    with pytest.raises(ValueError, match="MODEL.HRFPN.POOLING"):
        HRFPN(enc, pooling="SUM")
    with pytest.raises(ValueError, match="MODEL.HRFPN.CONV_STRIDE"):
        HRFPN(enc, conv_stride=3)
    with pytest.raises(ValueError, match=r"MODEL.HRFPN.IN_FEATURES \['res6'\]"):
        HRFPN(enc, in_features=("res2", "res6"))


def _fcos_cfg(**opts):
    cfg = add_transfer_config(add_seethroughnet_config(get_cfg()))
    cfg.merge_from_file(os.path.join(CONFIGS, "fcos_hrnetv2_w48.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.HRNET.VARIANT = SMALL
    cfg.MODEL.TRANSFER.ENCODER_INIT = "random"
    cfg.MODEL.FPN.OUT_CHANNELS = cfg.MODEL.HRFPN.OUT_CHANNELS = 64
    cfg.merge_from_list([x for kv in opts.items() for x in kv])
    return cfg


def _fcos_step(model):
    from detectron2.structures import Boxes, Instances
    from detectron2.utils.events import EventStorage

    batch = []
    for _ in range(2):
        inst = Instances((128, 128))
        inst.gt_boxes = Boxes(torch.tensor([[4.0, 8.0, 40.0, 56.0], [60.0, 10.0, 120.0, 120.0]]))
        inst.gt_classes = torch.tensor([0, 2])
        batch.append({"image": torch.rand(3, 128, 128) * 255, "instances": inst})
    model.train()
    with EventStorage(0):
        losses = model(batch)
    sum(losses.values()).backward()


def test_fcos_with_hrfpn_has_no_parameter_without_gradient():
    torch.manual_seed(0)
    cfg = _fcos_cfg(**{"MODEL.TRANSFER.FREEZE_UNUSED": False})  # nothing frozen by the build
    assert cfg.MODEL.BACKBONE.NAME == "build_hrnetv2_hrfpn_backbone"
    model = build_model(cfg)
    assert all(p.requires_grad for p in model.parameters())
    _fcos_step(model)
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert no_grad == []
    assert any(
        n.startswith("backbone.bottom_up.encoder.body.stage4") for n, _ in model.named_parameters()
    )


def test_fcos_with_detectron2_fpn_has_no_p2():
    torch.manual_seed(0)
    cfg = _fcos_cfg(**{"MODEL.BACKBONE.NAME": "build_hrnetv2_fpn_backbone"})
    model = build_model(cfg)
    assert list(model.backbone.output_shape()) == ["p3", "p4", "p5", "p6", "p7"]
    assert not any("fpn_lateral2" in n or "fpn_output2" in n for n, _ in model.named_parameters())


# ------------------------------------------------------------------------- full-model clipping
def test_full_model_gradient_clipping_matches_one_global_norm():
    from transfer.train_net import build_optimizer

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    cfg = add_transfer_config(add_seethroughnet_config(get_cfg()))
    cfg.merge_from_list(
        [
            "SOLVER.BASE_LR",
            "0.1",
            "SOLVER.MOMENTUM",
            "0.0",
            "SOLVER.WEIGHT_DECAY",
            "0.0",
            "SOLVER.CLIP_GRADIENTS.ENABLED",
            "True",
            "SOLVER.CLIP_GRADIENTS.CLIP_TYPE",
            "full_model",
            "SOLVER.CLIP_GRADIENTS.CLIP_VALUE",
            "2.0",
            "SOLVER.CLIP_GRADIENTS.NORM_TYPE",
            "2.0",
        ]
    )
    opt = build_optimizer(cfg, model)
    grads = {n: torch.randn_like(p) * 10 for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.grad = grads[n].clone()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    total = torch.sqrt(sum((g**2).sum() for g in grads.values()))
    assert total > 2.0
    scale = 2.0 / (total + 1e-6)
    opt.step()
    for n, p in model.named_parameters():
        torch.testing.assert_close(
            p.detach(), before[n] - 0.1 * grads[n] * scale, rtol=1e-5, atol=1e-6
        )
    # detectron2's "norm" clips each tensor separately: a different update
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "norm"
    opt2 = build_optimizer(cfg, model)
    for n, p in model.named_parameters():
        p.grad = grads[n].clone()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt2.step()
    w = "0.weight"
    own = grads[w] * min(1.0, 2.0 / float(grads[w].norm()))
    torch.testing.assert_close(
        dict(model.named_parameters())[w].detach(), start[w] - 0.1 * own, rtol=1e-5, atol=1e-6
    )


# --------------------------------------------------------------------------- BN re-estimation
def test_recompute_bn_stats_is_the_mean_over_batches():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    model = nn.Sequential(conv, nn.BatchNorm2d(4)).eval()
    model[1].running_mean.fill_(7.0)
    batches = [torch.randn(2, 3, 8, 8) * (i + 1) + i for i in range(3)]
    weights = {
        k: v.clone()
        for k, v in model.state_dict().items()
        if "running" not in k and "num_batches" not in k
    }
    n = recompute_encoder_bn_stats(model, iter(batches), num_iters=3)
    assert n == 3
    with torch.no_grad():
        outs = [conv(b) for b in batches]
    mean = torch.stack([o.mean(dim=(0, 2, 3)) for o in outs]).mean(0)
    var = torch.stack(
        [o.transpose(0, 1).reshape(4, -1).var(dim=1, unbiased=True) for o in outs]
    ).mean(0)
    torch.testing.assert_close(model[1].running_mean, mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model[1].running_var, var, rtol=1e-5, atol=1e-5)
    assert not model.training and not model[1].training and model[1].momentum == 0.1  # restored
    for k, v in weights.items():
        assert torch.equal(model.state_dict()[k], v), k
    with pytest.raises(ValueError, match="ENCODER_BN_RECOMPUTE_ITERS"):
        recompute_encoder_bn_stats(model, iter([]), num_iters=2)


def test_bn_reestimation_of_a_frozen_transfer_encoder():
    """The statistics change, the frozen encoder stays in eval mode afterwards."""
    torch.manual_seed(0)
    backbone = build_transfer_backbone(
        variant=SMALL, encoder_init="random", freeze_encoder=True, out_channels=16, neck="hrfpn"
    )
    enc = backbone.bottom_up.encoder
    bn = enc.body.bn1
    before = bn.running_mean.clone()
    recompute_encoder_bn_stats(enc, iter([torch.randn(1, 3, 64, 64) + 3.0]), num_iters=1)
    assert not torch.equal(bn.running_mean, before)
    assert not enc.training  # the frozen encoder stays in eval mode


# ----------------------------------------------------------------------------- SyncBN on CPU
def test_syncbn_is_converted_to_bn_with_the_same_state():
    from seethroughnet.utils.norm import convert_sync_batchnorm_to_bn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4)))
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.SyncBatchNorm):
                m.weight.normal_()
                m.running_mean.normal_()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model = convert_sync_batchnorm_to_bn(model)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 2
    assert model.state_dict().keys() == state.keys()
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    x = torch.randn(2, 3, 5, 5)
    ref = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4)))
    ref.load_state_dict(state)
    model.train(), ref.train()
    torch.testing.assert_close(model(x), ref(x))


def test_seethroughnet_trainer_converts_syncbn_on_cpu():
    from seethroughnet.config import build_config
    from seethroughnet.engine import Trainer

    demo = os.path.join(
        os.path.dirname(__file__),
        "..",
        "..",
        "projects",
        "SeeThroughNet",
        "configs",
        "Cityscapes-Synthetic",
        "seethroughnet_W18small_demo.yaml",
    )
    cfg = build_config(
        demo,
        [
            "MODEL.HRNET.NORM",
            "SyncBN",
            "MODEL.SEE_THROUGH.HEAD_NORM",
            "SyncBN",
            "MODEL.DEVICE",
            "cpu",
        ],
    )
    model = Trainer.build_model(cfg)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 50


# ------------------------------------------------------------------------- mask format check
def test_polygon_training_refuses_an_rle_json(tmp_path):
    from seethroughnet.utils.atomic import write_json_atomic
    from transfer.data import (
        DatasetMissingError,
        check_mask_format,
        json_segmentation_format,
        register_cityscapes_coco,
    )

    root = tmp_path / "cs"
    names = register_cityscapes_coco(str(root), splits=("train",))
    path = names["cityscapes_coco_train"]
    info = {
        "description": "x",
        "image_root": "leftImg8bit/train",
        "source": "instanceIds",
        "segmentation": "rle",
        "crowd": "keep",
        "stats": {"images": 0},
    }
    write_json_atomic(
        path, {"info": info, "licenses": [], "images": [], "annotations": [], "categories": []}
    )
    assert json_segmentation_format(path) == "rle"
    with pytest.raises(
        DatasetMissingError,
        match=r"instancesonly_gtFine_train\.json holds RLE masks.*--segmentation polygon",
    ):
        check_mask_format(["cityscapes_coco_train"], "polygon")
    check_mask_format(["cityscapes_coco_train"], "bitmask")  # RLE is what bitmask training wants
    info["segmentation"] = "polygon"
    write_json_atomic(path, {"info": info, "images": []})
    assert json_segmentation_format(path) == "polygon"
    check_mask_format(["cityscapes_coco_train"], "polygon")
    with open(path, "w") as f:
        json.dump({"images": []}, f)  # not from our converter: not checked
    assert json_segmentation_format(path) is None
