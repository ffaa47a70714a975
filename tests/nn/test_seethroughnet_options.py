"""seethroughnet.nn.options without a config: the groups normalise and validate their values, are
immutable, and the eval-mode forward follows ``InferenceOptions`` (same logits as an explicit
``inference`` call with those settings)."""

import dataclasses

import pytest
import torch

from seethroughnet.nn.options import (
    DecoderOptions,
    EncoderOptions,
    InferenceOptions,
    LossOptions,
    OCROptions,
    TrainingScales,
    config_keys,
)
from seethroughnet.nn.seethroughnet import SeeThroughNet


def test_groups_normalise_config_spellings():
    assert EncoderOptions(checkpoint="").checkpoint is None  # MODEL.HRNET.CHECKPOINT ""
    assert DecoderOptions(head_channels=0).head_channels is None  # DECODER_CHANNELS 0
    assert TrainingScales(resolutions=[1.0, 0.5]).resolutions == (0.5, 1.0)
    assert LossOptions(aux_weights=[1, 2, 3]).aux_weights == (1.0, 2.0, 3.0)
    whole = InferenceOptions(scales=[1, 2], crop_size=64, stride=[32, 16])
    assert whole.scales == (1.0, 2.0) and whole.window == (None, None)
    assert dataclasses.replace(whole, mode="slide").window == ((64, 64), (32, 16))


def test_groups_refuse_bad_values_naming_the_field_and_key():
    with pytest.raises(ValueError, match=r"cpp_on must be one of .* \(MODEL.SEE_THROUGH.CPP_ON\)"):
        LossOptions(cpp_on="both")
    with pytest.raises(ValueError, match="aux_weights needs 3 values"):
        LossOptions(aux_weights=(1.0,))
    with pytest.raises(ValueError, match="train resolutions must be"):
        TrainingScales(resolutions=(0.25, 1.0))
    with pytest.raises(ValueError, match="merge must be one of"):
        InferenceOptions(merge="max")


def test_groups_are_immutable_and_fields_without_a_key_are_plain_only():
    opts = OCROptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.dropout = 0.1
    assert "allow_partial" not in config_keys(EncoderOptions)
    assert config_keys(OCROptions) == {
        "mid_channels": "MODEL.SEE_THROUGH.OCR_MID_CHANNELS",
        "key_channels": "MODEL.SEE_THROUGH.OCR_KEY_CHANNELS",
        "dropout": "MODEL.SEE_THROUGH.OCR_DROPOUT",
    }


def test_eval_forward_follows_the_inference_options():
    torch.manual_seed(0)
    inference = InferenceOptions(
        scales=(0.5, 1.0), flip=True, mode="slide", crop_size=(64, 64), stride=(32, 48)
    )
    model = SeeThroughNet(
        5,
        EncoderOptions("hrnet_w18_small_v2"),
        decoder=DecoderOptions(attention_channels=16),
        ocr=OCROptions(mid_channels=32, key_channels=16),
        scales=TrainingScales(attention_channels=16),
        inference=inference,
    ).eval()
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        got = model(x)
        want = model.inference(x, (0.5, 1.0), True, "attention", (64, 64), (32, 48))
        plain = model.inference(x)
    assert torch.equal(got, want)
    assert not torch.allclose(got, plain)  # the options changed the result
