"""HRNetV2 encoder + FPN backbone for the Table 5 detectors (transfer/modeling.py): encoder
weights from SeeThroughNet / ImageNet checkpoints, the frozen encoder, one training step of
Mask R-CNN, Faster R-CNN and FCOS, and clear errors for unusable checkpoints."""

import dataclasses
import os

import pytest
import torch

pytest.importorskip("detectron2")
pytest.importorskip("timm")
hrnet = pytest.importorskip("seethroughnet.nn.hrnet")

from detectron2.config import get_cfg  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import BitMasks, Boxes, Instances  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

from seethroughnet.config import add_seethroughnet_config  # noqa: E402
from transfer.config import add_transfer_config  # noqa: E402
from transfer.encoder_init import (  # noqa: E402
    EncoderWeightsError,
    find_encoder_prefix,
    load_seethroughnet_encoder,
)  # noqa: E402
from transfer.modeling import TransferEncoder, build_transfer_backbone  # noqa: E402
from transfer.train_net import prepare_model  # noqa: E402

VARIANT = "hrnet_w18_small_v2"
CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "transfer", "configs")
DETECTORS = {
    "mask_rcnn": "mask_rcnn_hrnetv2_w48.yaml",
    "faster_rcnn": "faster_rcnn_hrnetv2_w48.yaml",
    "fcos": "fcos_hrnetv2_w48.yaml",
}


@pytest.fixture(scope="module")
def source_state():
    """A 'trained' encoder state: BatchNorm statistics calibrated on random images (so that the
    eval-mode encoder is numerically sane) and every tensor moved away from a fresh init."""
    torch.manual_seed(1)
    enc = hrnet.HRNetV2Encoder(VARIANT)
    for m in enc.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average
    enc.train()
    with torch.no_grad():
        for _ in range(2):
            enc(torch.randn(2, 3, 64, 128))
        for k, v in enc.state_dict().items():
            if v.is_floating_point() and not k.endswith(("running_mean", "running_var")):
                v.add_(1e-3 * torch.randn_like(v))
    return {k: v.clone() for k, v in enc.state_dict().items()}


def _save_stn_checkpoint(path, state, prefix="net.encoder.", extra=True):
    model = {prefix + k: v for k, v in state.items()}
    if extra:
        model["net.decoder.coarse.0.weight"] = torch.randn(19, 18, 1, 1)
        model["net.ocr.cls.weight"] = torch.randn(19, 512, 1, 1)
        model["pixel_mean"] = torch.zeros(3, 1, 1)
    torch.save({"model": model, "iteration": 99}, path)
    return str(path)


def _cfg(detector, **opts):
    cfg = add_transfer_config(add_seethroughnet_config(get_cfg()))
    cfg.merge_from_file(os.path.join(CONFIGS, DETECTORS[detector]))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.HRNET.VARIANT = VARIANT
    cfg.MODEL.TRANSFER.ENCODER_INIT = "random"
    cfg.MODEL.FPN.OUT_CHANNELS = 64  # > 32 GroupNorm groups of the FCOS head at 1x1 p7
    cfg.MODEL.HRFPN.OUT_CHANNELS = 64
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = 200
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 64
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 64
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 32
    for k, v in opts.items():
        node = cfg
        *path, last = k.split(".")
        for p in path:
            node = getattr(node, p)
        setattr(node, last, v)
    return cfg


def _batch(h=64, w=128, with_masks=True):
    g = torch.Generator().manual_seed(0)
    batch = []
    for _ in range(2):
        inst = Instances((h, w))
        inst.gt_boxes = Boxes(torch.tensor([[4.0, 8.0, 40.0, 56.0], [60.0, 10.0, 120.0, 50.0]]))
        inst.gt_classes = torch.tensor([0, 2])
        if with_masks:
            m = torch.zeros(2, h, w, dtype=torch.bool)
            m[0, 8:56, 4:40] = True
            m[1, 10:50, 60:120] = True
            inst.gt_masks = BitMasks(m)
        batch.append(
            {
                "image": torch.randint(0, 255, (3, h, w), generator=g).float(),
                "instances": inst,
                "height": h,
                "width": w,
            }
        )
    return batch


def _train_steps(model, steps=1, with_masks=True, lr=0.05):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9)
    model.train()
    losses = None
    for i in range(steps):
        with EventStorage(i):
            losses = model(_batch(with_masks=with_masks))
        total = sum(losses.values())
        assert torch.isfinite(total), losses
        opt.zero_grad()
        total.backward()
        opt.step()
    return losses


# ---------------------------------------------------------------------------------------------
def test_find_encoder_prefix_on_key_sets():
    enc_keys = [
        "body.conv1.weight",
        "body.bn1.weight",
        "body.bn1.num_batches_tracked",
        "body.stage2.0.x.weight",
    ]
    for prefix in ("backbone.encoder.", "net.encoder.", "", "model.sem_seg.backbone.encoder."):
        state = {prefix + k: 0 for k in enc_keys if "num_batches" not in k}  # counters are optional
        state["head.body.conv1.weight"] = 0  # a decoy ending with an encoder key
        assert find_encoder_prefix(state, enc_keys)[0] == prefix
    p, cands = find_encoder_prefix({"a.body.stage2.0.x.weight": 0}, enc_keys)
    assert p is None and cands == ["a."]


def test_seethroughnet_encoder_weights_equal_the_checkpoint(tmp_path, source_state):
    path = _save_stn_checkpoint(tmp_path / "stn_cpp.pth", source_state, prefix="backbone.encoder.")
    backbone = build_transfer_backbone(
        variant=VARIANT, encoder_init="seethroughnet", encoder_weights=path, out_channels=32
    )
    got = backbone.bottom_up.encoder.state_dict()
    assert set(got) == set(source_state)
    for k, v in source_state.items():
        assert torch.equal(got[k], v), k
    rep = backbone.init_report
    assert rep["init"] == "seethroughnet" and rep["prefix"] == "backbone.encoder."
    assert rep["loaded"] == len(source_state) and rep["encoder_keys_not_in_checkpoint"] == []
    assert rep["checkpoint_keys_not_loaded"] == 3
    assert rep["checkpoint_key_groups_not_loaded"] == {
        "net.decoder": 1,
        "net.ocr": 1,
        "pixel_mean": 1,
    }
    assert rep["fpn_outputs"] == ["p2", "p3", "p4", "p5", "p6"]


def test_imagenet_checkpoint_loads_through_the_encoder(tmp_path, source_state):
    body = {k[len("body.") :]: v for k, v in source_state.items()}
    body["classifier.weight"] = torch.randn(1000, 2048)
    body["classifier.bias"] = torch.randn(1000)
    path = tmp_path / "hrnet_imagenet.pth"
    torch.save(body, path)
    backbone = build_transfer_backbone(
        variant=VARIANT,
        encoder_init="imagenet",
        encoder_weights=str(path),
        out_channels=32,
        top_block="p6p7",
    )
    got = backbone.bottom_up.encoder.state_dict()
    assert all(
        torch.equal(got[k], v)
        for k, v in source_state.items()
        if not k.endswith("num_batches_tracked")
    )
    rep = backbone.init_report
    assert rep["init"] == "imagenet" and rep["checkpoint_key_groups_not_loaded"] == {
        "classifier": 2
    }
    n_counters = sum(k.endswith("num_batches_tracked") for k in body)
    assert rep["loaded"] == rep["encoder_tensors"] == len(body) - 2 - n_counters and rep[
        "fpn_outputs"
    ] == ["p2", "p3", "p4", "p5", "p6", "p7"]


def test_checkpoint_without_encoder_weights_is_an_error(tmp_path, source_state):
    enc = hrnet.HRNetV2Encoder(VARIANT)
    heads_only = tmp_path / "heads_only.pth"
    torch.save({"model": {"net.decoder.coarse.0.weight": torch.zeros(1)}}, heads_only)
    with pytest.raises(
        EncoderWeightsError,
        match=r"heads_only\.pth holds no HRNetV2 encoder weights \(looked for keys like "
        r"'<prefix>body\.conv1\.weight'",
    ):
        load_seethroughnet_encoder(enc, str(heads_only))
    partial = dict(source_state)
    partial.pop("body.bn1.weight")
    path = _save_stn_checkpoint(tmp_path / "partial.pth", partial)
    with pytest.raises(
        EncoderWeightsError,
        match=r"partial\.pth holds no HRNetV2.*closest prefix 'net\.encoder\.' 1 of",
    ):
        load_seethroughnet_encoder(enc, path)
    wrong = dict(source_state)
    wrong["body.conv1.weight"] = torch.zeros(5, 3, 3, 3)
    path = _save_stn_checkpoint(tmp_path / "wrong_width.pth", wrong)
    with pytest.raises(
        EncoderWeightsError,
        match=r"wrong_width\.pth: .*net\.encoder\.body\.conv1\.weight: checkpoint \(5, 3, 3, 3\)",
    ):
        load_seethroughnet_encoder(enc, path)
    with pytest.raises(EncoderWeightsError, match=r"does not exist"):
        load_seethroughnet_encoder(enc, str(tmp_path / "nope.pth"))
    assert issubclass(EncoderWeightsError, ValueError)


def test_init_options_are_checked():
    with pytest.raises(EncoderWeightsError, match="needs a local ImageNet checkpoint"):
        build_transfer_backbone(variant=VARIANT, encoder_init="imagenet", encoder_weights="")
    with pytest.raises(ValueError, match="'random' with ENCODER_WEIGHTS"):
        build_transfer_backbone(variant=VARIANT, encoder_init="random", encoder_weights="x.pth")
    with pytest.raises(ValueError, match="ENCODER_INIT must be one of"):
        build_transfer_backbone(variant=VARIANT, encoder_init="coco")


def test_frozen_encoder_is_bit_identical_after_training(tmp_path, source_state):
    path = _save_stn_checkpoint(tmp_path / "stn.pth", source_state)
    torch.manual_seed(0)
    cfg = _cfg(
        "faster_rcnn",
        **{
            "MODEL.TRANSFER.ENCODER_INIT": "seethroughnet",
            "MODEL.TRANSFER.ENCODER_WEIGHTS": path,
            "MODEL.TRANSFER.FREEZE_ENCODER": True,
        },
    )
    model = prepare_model(cfg, build_model(cfg))
    enc = model.backbone.bottom_up
    assert isinstance(enc, TransferEncoder) and enc.frozen
    assert not any(p.requires_grad for p in enc.encoder.parameters())
    before_enc = {k: v.clone() for k, v in enc.encoder.state_dict().items()}
    before_rest = {
        k: v.clone() for k, v in model.named_parameters() if not k.startswith("backbone.bottom_up.")
    }
    _train_steps(model, steps=2, with_masks=False)
    assert model.training and not enc.encoder.training  # train() keeps the encoder in eval mode
    after = enc.encoder.state_dict()
    for k, v in before_enc.items():  # weights and BatchNorm running statistics
        assert torch.equal(after[k], v), k
    for k, v in before_enc.items():
        assert torch.equal(v, source_state[k]), k
    rest = dict(model.named_parameters())
    changed = [k for k, v in before_rest.items() if not torch.equal(rest[k], v)]
    assert any(
        k.startswith(("backbone.reduction_conv", "backbone.output_convs")) for k in changed
    )  # HRFPN
    assert any(k.startswith("roi_heads.") for k in changed) and any(
        k.startswith("proposal_generator.") for k in changed
    )


def test_fine_tuned_encoder_changes_but_keeps_bn_statistics(tmp_path, source_state):
    path = _save_stn_checkpoint(tmp_path / "stn.pth", source_state)
    torch.manual_seed(0)
    cfg = _cfg(
        "faster_rcnn",
        **{"MODEL.TRANSFER.ENCODER_INIT": "seethroughnet", "MODEL.TRANSFER.ENCODER_WEIGHTS": path},
    )
    model = prepare_model(cfg, build_model(cfg))
    enc = model.backbone.bottom_up.encoder
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    _train_steps(model, steps=1, with_masks=False)
    after = enc.state_dict()
    assert not torch.equal(after["body.conv1.weight"], before["body.conv1.weight"])
    assert torch.equal(
        after["body.bn1.running_mean"], before["body.bn1.running_mean"]
    )  # ENCODER_NORM_EVAL


@pytest.mark.parametrize("detector", ["mask_rcnn", "faster_rcnn", "fcos"])
def test_each_detector_trains_one_step(detector):
    torch.manual_seed(0)
    cfg = _cfg(detector)
    model = prepare_model(cfg, build_model(cfg))
    with_masks = detector == "mask_rcnn"
    losses = _train_steps(model, steps=1, with_masks=with_masks)
    expected = {
        "mask_rcnn": {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"},
        "faster_rcnn": {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"},
        "fcos": {"loss_fcos_cls", "loss_fcos_loc", "loss_fcos_ctr"},
    }[detector]
    assert set(losses) == expected
    # every trainable parameter got a gradient: DistributedDataParallel needs no
    # find_unused_parameters
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []
    if detector == "fcos":
        assert any(isinstance(m, torch.nn.GroupNorm) for m in model.head.modules())
        assert {k: v.stride for k, v in model.backbone.output_shape().items()} == {
            "p3": 8,
            "p4": 16,
            "p5": 32,
            "p6": 64,
            "p7": 128,
        }
    model.eval()
    with torch.no_grad():
        out = model([{"image": torch.zeros(3, 64, 128), "height": 64, "width": 128}])
    assert "instances" in out[0]


def test_every_detector_is_evaluated_at_the_same_coco_thresholds():
    """Table 5 compares APs across detectors: all three models, as built from their shipped
    configs, keep detections scoring >= 0.05, suppress at IoU 0.5 and keep 100 per image (the
    standard COCO-evaluation settings of mmdetection's R-CNN and FCOS ``test_cfg`` and detectron2's
    ``ROI_HEADS`` defaults), not the FCOS LazyConfig's 0.2 / 0.6."""
    seen = {}
    for detector in DETECTORS:
        model = build_model(_cfg(detector))
        if detector == "fcos":
            m = model
            seen[detector] = (m.test_score_thresh, m.test_nms_thresh, m.max_detections_per_image)
        else:
            p = model.roi_heads.box_predictor
            seen[detector] = (p.test_score_thresh, p.test_nms_thresh, p.test_topk_per_image)
    assert seen == {d: (0.05, 0.5, 100) for d in DETECTORS}


def test_encoder_is_built_by_the_projects_one_encoder_builder(monkeypatch, tmp_path):
    """Every encoder init goes through ``EncoderOptions.build`` (seethroughnet/nn/options.py), with
    the detector config's encoder keys; only the ImageNet init hands it a checkpoint."""
    import timm

    from seethroughnet.nn.options import EncoderOptions
    from transfer.modeling import _encoder_kwargs, build_transfer_encoder

    built = []
    original = EncoderOptions.build
    monkeypatch.setattr(EncoderOptions, "build", lambda self: built.append(self) or original(self))
    cfg = _cfg("mask_rcnn")
    cfg.MODEL.HRNET.FUSE_UPSAMPLE = "nearest"
    cfg.MODEL.BACKBONE.FREEZE_AT = 2
    kw = _encoder_kwargs(cfg, None)
    enc_kw = {k: kw[k] for k in ("variant", "norm", "freeze_at", "trust_weights")}
    enc_kw.update(fuse_upsample=kw["fuse_upsample"], fuse_align_corners=kw["fuse_align_corners"])
    build_transfer_encoder(encoder_init="random", **enc_kw)
    path = tmp_path / "imagenet.pth"
    torch.save(timm.create_model(VARIANT, pretrained=False).state_dict(), path)
    build_transfer_encoder(encoder_init="imagenet", encoder_weights=str(path), **enc_kw)
    expected = EncoderOptions(
        variant=VARIANT, norm=cfg.MODEL.HRNET.NORM, freeze_at=2, fuse_upsample="nearest"
    )
    assert built == [expected, dataclasses.replace(expected, checkpoint=str(path))]
