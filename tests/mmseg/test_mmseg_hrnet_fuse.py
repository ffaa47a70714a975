"""``MODEL.HRNET.FUSE_UPSAMPLE: bilinear`` is MMSegmentation's HRNet (issue 23 item 2): with the
same random weights and BatchNorm statistics, the project's HRNetV2-W48 encoder (timm's network
with the bilinear fuse of MMSegmentation's ``HRModule``) gives the four branch outputs of
MMSegmentation's ``HRNet`` of ``ocrnet_hr48`` within 1e-5; timm's nearest fuse does not."""

import pytest
import torch

from seethroughnet.nn.hrnet import HRNetV2Encoder

from mmseg_reference import build_mmseg_model, randomize_batchnorms_

BRANCHES = ("res2", "res3", "res4", "res5")


@pytest.fixture(scope="module")
def hrnets_w48():
    """MMSegmentation's HRNet-W48 (random weights and BN statistics, eval mode) and the project's
    encoder with the bilinear and with the nearest fuse, all three with the same tensors."""
    torch.manual_seed(0)
    reference = build_mmseg_model("ocr", num_classes=19).backbone  # in eval mode
    randomize_batchnorms_(reference, seed=1)
    encoders = {}
    for mode in ("bilinear", "nearest"):
        enc = HRNetV2Encoder("hrnet_w48", fuse_upsample=mode).eval()
        # the same tensor names (conv1, bn1, layer1, transition*, stage*.branches / fuse_layers)
        enc.body.load_state_dict(reference.state_dict(), strict=True)
        encoders[mode] = enc
    return reference, encoders


@pytest.mark.parametrize("hw", [(64, 64), (64, 96)])
def test_bilinear_fuse_equals_mmseg_hrnet(hrnets_w48, hw):
    reference, encoders = hrnets_w48
    x = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = reference(x)
        ours = encoders["bilinear"](x)
        nearest = encoders["nearest"](x)
    assert len(ref) == len(BRANCHES)
    for name, r in zip(BRANCHES, ref):
        assert ours[name].shape == r.shape
        diff = (ours[name] - r).abs().max().item()
        assert diff < 1e-5, f"{name}: max abs difference {diff}"
    # timm's nearest fuse is another function of the same weights (so the check above can fail)
    assert max((nearest[n] - r).abs().max().item() for n, r in zip(BRANCHES, ref)) > 1e-2
