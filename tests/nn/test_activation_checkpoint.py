"""Activation checkpointing (seethroughnet.nn.activation_checkpoint, ``ActivationCheckpointing``):
one training step with the encoder, decoder and OCR head checkpointed gives the plain model's loss
terms, parameter gradients and BatchNorm statistics (float64, tight tolerance); it runs under CPU
bfloat16 autocast; it is inactive in eval mode and under ``torch.no_grad()``; it adds no state.
CPU, hrnet_w18_small_v2 with narrow heads, 64x64 images."""

from __future__ import annotations

import copy
from unittest import mock

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from seethroughnet.nn import activation_checkpoint as AC
from seethroughnet.nn.options import (
    ActivationCheckpointing,
    DecoderOptions,
    EncoderOptions,
    OCROptions,
    TrainingScales,
)
from seethroughnet.nn.seethroughnet import SeeThroughNet

K = 4
ALL = ("encoder", "decoder", "ocr")


def tiny_model(dtype=torch.float64, parts=()) -> SeeThroughNet:
    torch.manual_seed(0)
    model = SeeThroughNet(
        num_classes=K,
        encoder=EncoderOptions("hrnet_w18_small_v2"),
        decoder=DecoderOptions(head_channels=8, attention_channels=8),
        ocr=OCROptions(mid_channels=16, key_channels=8),
        scales=TrainingScales(attention_channels=8),
        checkpointing=ActivationCheckpointing(parts),
    )
    return model.to(dtype).train()


def batch(dtype=torch.float64, n=2, h=64, w=64):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, h, w, generator=g).to(dtype)
    y = torch.randint(0, K, (n, h, w), generator=g)
    y[:, :4] = 255
    return x, y


def step(model, x, y, seed=3):
    torch.manual_seed(seed)  # the OCR head's Dropout2d
    losses = model.losses(model(x), y)
    sum(losses.values()).backward()
    return {k: v.detach() for k, v in losses.items()}


def bn_buffers(model):
    return {
        f"{name}.{b}": getattr(m, b).clone()
        for name, m in model.named_modules()
        if isinstance(m, _BatchNorm)
        for b in ("running_mean", "running_var", "num_batches_tracked")
    }


def test_options_validate_and_default_off():
    assert ActivationCheckpointing().parts == ()
    assert ActivationCheckpointing(["ocr", "encoder"]).parts == ("ocr", "encoder")
    with pytest.raises(ValueError, match=r"CHECKPOINT_ACTIVATIONS"):
        ActivationCheckpointing(("backbone",))
    with pytest.raises(ValueError, match="distinct"):
        ActivationCheckpointing(("ocr", "ocr"))


@pytest.mark.parametrize("parts", [ALL, ("decoder", "ocr")], ids="+".join)
def test_float64_losses_gradients_and_bn_statistics_equal_the_plain_model(parts):
    plain = tiny_model()
    ckpt = tiny_model(parts=parts)
    ckpt.load_state_dict(plain.state_dict())
    x, y = batch()
    with mock.patch.object(AC, "checkpoint", wraps=AC.checkpoint) as spy:
        got = step(ckpt, x, y)
    # stem + one segment per HRNet module (w18_small_v2: 1 + 1 + 3 + 2), per pass
    per_pass = ("encoder" in parts) * 7 + ("decoder" in parts) + ("ocr" in parts)
    assert spy.call_count == 2 * per_pass
    want = step(plain, x, y)
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-12, atol=1e-12, msg=k)
    grads = dict(ckpt.named_parameters())
    for name, p in plain.named_parameters():
        assert (p.grad is None) == (grads[name].grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(grads[name].grad, p.grad, rtol=1e-10, atol=1e-12, msg=name)
    want_bn, got_bn = bn_buffers(plain), bn_buffers(ckpt)
    assert int(want_bn["ocr.pixel_conv.1.num_batches_tracked"].item()) == 2  # two passes
    for name, value in want_bn.items():
        assert torch.equal(got_bn[name], value), name


def test_bfloat16_autocast_runs_and_is_close():
    plain = tiny_model(torch.float32)
    ckpt = tiny_model(torch.float32, parts=ALL)
    ckpt.load_state_dict(plain.state_dict())
    x, y = batch(torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = step(ckpt, x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = step(plain, x, y)
    for k in want:
        assert torch.isfinite(got[k]), k
        torch.testing.assert_close(got[k], want[k], rtol=2e-2, atol=2e-2, msg=k)
    grads = dict(ckpt.named_parameters())
    for name, p in plain.named_parameters():
        torch.testing.assert_close(grads[name].grad, p.grad, rtol=5e-2, atol=5e-3, msg=name)
    want_bn, got_bn = bn_buffers(plain), bn_buffers(ckpt)
    for name, value in want_bn.items():
        assert torch.equal(got_bn[name], value), name


def test_inactive_in_eval_and_without_grad():
    model = tiny_model(torch.float32, parts=ALL)
    x, _ = batch(torch.float32)
    with mock.patch.object(AC, "checkpoint", wraps=AC.checkpoint) as spy:
        model.eval()
        model(x)  # inference: eval mode (and no_grad)
        model.train()
        with torch.no_grad():
            model(x)
        assert spy.call_count == 0
        model(x)
        assert spy.call_count > 0


def test_adds_no_state():
    plain, ckpt = tiny_model(parts=()), tiny_model(parts=ALL)
    a, b = plain.state_dict(), ckpt.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    clone = copy.deepcopy(ckpt)  # the option travels as a plain attribute
    assert clone.encoder.checkpoint_activations and clone.checkpointing_options.parts == ALL
