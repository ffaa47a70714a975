"""The reference side of the tier builds: each of MMSegmentation's seven Table 1 models runs a
forward pass on CPU with the compiled-op stub, for the three class counts of Table 1's datasets."""

import pytest
import torch

from mmseg_reference import MMSEG_CONFIGS, build_mmseg_model


@pytest.mark.parametrize("head", sorted(MMSEG_CONFIGS))
def test_reference_model_runs_on_cpu(head):
    torch.manual_seed(0)
    model = build_mmseg_model(head, num_classes=60)
    with torch.no_grad():
        out = model.encode_decode(torch.randn(1, 3, 64, 64), [dict(img_shape=(64, 64))])
    assert out.shape == (1, 60, 64, 64)
    assert torch.isfinite(out).all()
