"""Activation checkpointing of the Table 1 models (``MODEL.CPP_SEGMENTOR.CHECKPOINT_ACTIVATIONS``,
not in the paper): one training step of ``CPPSegmentor`` with the backbone (dilated ResNet: stem +
one segment per residual block; HRNetV2: one per HRNet module) and the decode head checkpointed
gives the plain model's loss terms, parameter gradients and BatchNorm statistics (float64), for a
head with dropout (DeepLabV3+ on ResNet-18-D8) and OCRNet on HRNetV2; the key is checked; eval runs
the plain code. CPU, tiny sizes (tests/configs/cpp_plugin_tiny_overrides.yaml)."""

from __future__ import annotations

import os
from unittest import mock

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

pytest.importorskip("detectron2")

from detectron2.modeling import build_model  # noqa: E402

import seethroughnet.modeling.segmentors  # noqa: E402,F401  (registers CPPSegmentor)
from seethroughnet.config import build_config  # noqa: E402
from seethroughnet.nn import activation_checkpoint as AC  # noqa: E402
from seethroughnet.utils.safe_load import merge_config_file  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE = os.path.join(REPO, "projects/SeeThroughNet/configs/CPP-Plugin/Base-CPP-Plugin.yaml")
TINY_OVERRIDES = os.path.join(REPO, "tests/configs/cpp_plugin_tiny_overrides.yaml")
K = 5
KEY = "MODEL.CPP_SEGMENTOR.CHECKPOINT_ACTIVATIONS"
HRNET = [
    "MODEL.BACKBONE.NAME", "build_hrnetv2_backbone",
    "MODEL.DECODE_HEAD.IN_FEATURES", "['res2', 'res3', 'res4', 'res5']",
]  # fmt: skip


def _cfg(head, parts, *opts):
    cfg = build_config(BASE)
    merge_config_file(cfg, TINY_OVERRIDES)
    cfg.merge_from_list(
        ["MODEL.SEM_SEG_HEAD.NUM_CLASSES", str(K), "MODEL.DECODE_HEAD.NAME", head, *opts]
    )
    cfg.merge_from_list([KEY, str(list(parts))])
    return cfg


def _model(head, parts, *opts):
    torch.manual_seed(0)
    return build_model(_cfg(head, parts, *opts)).double().train()


def _batch(n=2, h=64, w=64):
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        sem = torch.randint(0, K, (h, w), generator=g)
        sem[:4] = 255
        image = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
        out.append({"image": image, "sem_seg": sem, "height": h, "width": w})
    return out


def _step(model, batch):
    torch.manual_seed(3)  # the decode head's dropout
    losses = model(batch)  # images: uint8 -> float32 - float64 mean = float64
    sum(losses.values()).backward()
    return {k: v.detach() for k, v in losses.items()}


def _bn(model):
    return {
        f"{name}.{b}": getattr(m, b).clone()
        for name, m in model.named_modules()
        if isinstance(m, _BatchNorm)
        for b in ("running_mean", "running_var", "num_batches_tracked")
    }


CASES = {
    # ResNet-18-D8 (tiny overrides): stem + 2 + 2 + 2 + 2 blocks = 9 segments, + the decode head
    "deeplabv3plus-resnet": ("deeplabv3plus", (), 9),
    # HRNetV2 w18_small_v2: stem + stage 1, then 1 + 3 + 2 HRNet modules = 7 segments, + the head
    "ocr-hrnetv2": ("ocr", tuple(HRNET), 7),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_float64_step_equals_the_plain_model(case):
    head, opts, backbone_segments = CASES[case]
    plain = _model(head, (), *opts)
    ckpt = _model(head, ("backbone", "decode_head"), *opts)
    ckpt.load_state_dict(plain.state_dict())
    batch = _batch()
    with mock.patch.object(AC, "checkpoint", wraps=AC.checkpoint) as spy:
        got = _step(ckpt, batch)
    assert spy.call_count == backbone_segments + 1
    want = _step(plain, batch)
    assert got.keys() == want.keys() and "loss_aux_res2" in want
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-12, atol=1e-12, msg=k)
    grads = dict(ckpt.named_parameters())
    checked = 0
    for name, p in plain.named_parameters():
        assert (p.grad is None) == (grads[name].grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(grads[name].grad, p.grad, rtol=1e-10, atol=1e-12, msg=name)
            checked += 1
    assert checked > 20
    want_bn, got_bn = _bn(plain), _bn(ckpt)
    assert want_bn and all(int(v.item()) == 1 for k, v in want_bn.items() if "num_batches" in k)
    for name, value in want_bn.items():
        assert torch.equal(got_bn[name], value), name


def test_eval_runs_the_plain_code():
    model = _model("deeplabv3plus", ("backbone", "decode_head")).eval()
    with mock.patch.object(AC, "checkpoint", wraps=AC.checkpoint) as spy, torch.no_grad():
        model([{k: v for k, v in b.items() if k != "sem_seg"} for b in _batch()])
    assert spy.call_count == 0


@pytest.mark.parametrize("parts", [["encoder"], ["backbone", "backbone"]])
def test_unknown_or_repeated_part_is_refused_naming_the_key(parts):
    with pytest.raises(ValueError, match=KEY.replace(".", r"\.")):
        build_model(_cfg("psp", parts))
