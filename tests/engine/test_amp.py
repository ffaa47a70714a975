"""Mixed precision on CPU (bfloat16 autocast): SeeThroughNet and a CPP plug-in model train a step
with finite losses and gradients; the loss terms are computed in float32 (RMI's log-det in
float64) whatever the autocast dtype, and match the float32 losses of the same outputs."""

import os

import pytest
import torch

from seethroughnet.nn.options import DecoderOptions, EncoderOptions, OCROptions, TrainingScales
from seethroughnet.nn.seethroughnet import SeeThroughNet

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K = 5


def _batch(n=2, h=64, w=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, h, w, generator=g)
    y = torch.randint(0, K, (n, h, w), generator=g)
    y[:, :4] = 255
    return x, y


def test_seethroughnet_step_under_bfloat16_autocast():
    torch.manual_seed(0)
    model = SeeThroughNet(
        K,
        EncoderOptions("hrnet_w18_small_v2"),
        decoder=DecoderOptions(attention_channels=16),
        ocr=OCROptions(mid_channels=32, key_channels=16),
        scales=TrainingScales(attention_channels=16),
    )
    x, y = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        losses = model.losses(out, y)
    assert out["merged"].dtype == torch.bfloat16  # the network itself ran in bfloat16
    for k, v in losses.items():
        assert v.dtype == torch.float32 and torch.isfinite(v), k
    # the same outputs, losses computed outside autocast: equal (the losses ignore autocast)
    ref = model.losses(out, y)
    for k in losses:
        assert float(losses[k].detach()) == pytest.approx(
            float(ref[k].detach()), rel=1e-5, abs=1e-6
        ), k
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_cpp_plugin_step_under_bfloat16_autocast():
    pytest.importorskip("detectron2")
    from detectron2.modeling import build_model

    from seethroughnet.config import build_config
    from seethroughnet.utils.safe_load import merge_config_file

    cfg = build_config(
        os.path.join(REPO, "projects/SeeThroughNet/configs/CPP-Plugin/Base-CPP-Plugin.yaml")
    )
    merge_config_file(cfg, os.path.join(REPO, "tests/configs/cpp_plugin_tiny_overrides.yaml"))
    cfg.merge_from_list(
        ["MODEL.SEM_SEG_HEAD.NUM_CLASSES", str(K), "MODEL.DECODE_HEAD.NAME", "deeplabv3plus"]
    )
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    g = torch.Generator().manual_seed(1)
    batch = []
    for _ in range(2):
        sem = torch.randint(0, K, (64, 64), generator=g)
        sem[:4] = 255
        batch.append(
            {
                "image": torch.randint(0, 256, (3, 64, 64), generator=g, dtype=torch.uint8),
                "sem_seg": sem,
            }
        )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(batch)
    assert {f"loss_aux_res{i}" for i in (2, 3, 4, 5)} <= set(losses)
    for k, v in losses.items():
        assert v.dtype == torch.float32 and torch.isfinite(v), k
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
