"""``MODEL.HRNET.FUSE_UPSAMPLE`` / ``FUSE_ALIGN_CORNERS`` reach every HRNetV2 encoder the project
builds from a config: the detectron2 backbone (Table 1 OCRNet), SeeThroughNet and the Table 5
transfer encoder; the SeeThroughNet and OCRNet configs select the bilinear fuse."""

import glob
import os

import pytest
from torch import nn

pytest.importorskip("detectron2")

from seethroughnet.config import build_config  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(REPO, "projects", "SeeThroughNet", "configs")
TINY = os.path.join(REPO, "tests", "configs", "seethroughnet_tiny.yaml")
SMALL_OPTS = ["MODEL.HRNET.VARIANT", "hrnet_w18_small_v2", "MODEL.HRNET.NORM", "BN"]


def _fuse_modes(encoder):
    return {(m.mode, m.align_corners) for m in encoder.modules() if isinstance(m, nn.Upsample)}


@pytest.mark.parametrize(
    "opts,expected",
    [
        ([], {("bilinear", False)}),
        (["MODEL.HRNET.FUSE_ALIGN_CORNERS", "True"], {("bilinear", True)}),
        (["MODEL.HRNET.FUSE_UPSAMPLE", "nearest"], {("nearest", None)}),
    ],
)
def test_fuse_keys_reach_every_encoder_builder(opts, expected):
    from seethroughnet.modeling.backbone.hrnet import build_hrnetv2_backbone
    from seethroughnet.modeling.meta_arch.seethroughnet import build_seethroughnet_from_cfg
    from transfer.modeling import build_transfer_encoder

    cfg = build_config(TINY, SMALL_OPTS + opts)
    assert _fuse_modes(build_hrnetv2_backbone(cfg).encoder) == expected
    assert _fuse_modes(build_seethroughnet_from_cfg(cfg).encoder) == expected
    encoder, _ = build_transfer_encoder(
        variant="hrnet_w18_small_v2",
        encoder_init="random",
        fuse_upsample=cfg.MODEL.HRNET.FUSE_UPSAMPLE,
        fuse_align_corners=cfg.MODEL.HRNET.FUSE_ALIGN_CORNERS,
    )
    assert _fuse_modes(encoder) == expected


def test_seethroughnet_and_ocrnet_configs_use_mmsegmentations_bilinear_fuse():
    files = [os.path.join(CONFIGS, "Cityscapes", "seethroughnet_W48_cityscapes_fine.yaml")]
    files += sorted(
        glob.glob(os.path.join(CONFIGS, "CPP-Plugin", "**", "ocrnet_*.yaml"), recursive=True)
    )
    assert len(files) >= 5
    for path in files:
        hrnet = build_config(path).MODEL.HRNET
        assert (hrnet.FUSE_UPSAMPLE, hrnet.FUSE_ALIGN_CORNERS) == ("bilinear", False), path
