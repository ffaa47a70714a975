"""The option groups of ``seethroughnet.nn.options`` and the config: every SeeThroughNet key is read
by exactly one field, the groups' defaults are Base-SeeThroughNet.yaml's, a bad value names its key,
and the paper config builds the paper's W48 model (its parameter count in
docs/seethroughnet_model.md)."""

import dataclasses
import os

import pytest

pytest.importorskip("detectron2")

from seethroughnet.config import build_config  # noqa: E402
from seethroughnet.nn import options as O  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(REPO, "tests", "configs", "seethroughnet_tiny.yaml")
W48 = os.path.join(
    REPO, "projects/SeeThroughNet/configs/Cityscapes/seethroughnet_W48_cityscapes_fine.yaml"
)
BASE = os.path.join(REPO, "projects/SeeThroughNet/configs/Base-SeeThroughNet.yaml")
GROUPS = (
    O.EncoderOptions,
    O.DecoderOptions,
    O.OCROptions,
    O.TrainingScales,
    O.LossOptions,
    O.InferenceOptions,
    O.ActivationCheckpointing,
)
# read by build_seethroughnet_from_cfg itself (shared by several groups' modules)
GLUE_KEYS = {"MODEL.SEE_THROUGH.HEAD_NORM", "MODEL.SEM_SEG_HEAD.NUM_CLASSES"}


def _leaf_keys(node, prefix):
    out = set()
    for k, v in node.items():
        if isinstance(v, dict):
            out |= _leaf_keys(v, f"{prefix}.{k}")
        else:
            out.add(f"{prefix}.{k}")
    return out


def test_every_seethroughnet_key_is_read_by_exactly_one_field():
    cfg = build_config()
    model_keys = (
        _leaf_keys(cfg.MODEL.SEE_THROUGH, "MODEL.SEE_THROUGH")
        | _leaf_keys(cfg.TEST.SEE_THROUGH, "TEST.SEE_THROUGH")
        | _leaf_keys(cfg.MODEL.HRNET, "MODEL.HRNET")
    )
    read = [key for g in GROUPS for key in O.config_keys(g).values()]
    assert len(read) == len(set(read)), "a key is read by two fields"
    assert set(read) & GLUE_KEYS == set()
    unread = model_keys - set(read) - GLUE_KEYS
    assert not unread, f"config keys no option field reads: {sorted(unread)}"
    for key in read:  # and every key a field names exists
        node = cfg
        for part in key.split("."):
            assert part in node, f"{key} is not a config key"
            node = node[part]


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.__name__)
def test_group_defaults_are_the_base_config(group):
    """The plain defaults are the model of Base-SeeThroughNet.yaml (which sets detectron2's
    MODEL.BACKBONE.FREEZE_AT, default 2, to the paper's 0)."""
    assert group.from_cfg(build_config(BASE)) == group()


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("TEST.SEE_THROUGH.MODE", "tile", r"mode must be one of .*\(TEST.SEE_THROUGH.MODE\)"),
        ("TEST.SEE_THROUGH.MERGE", "max", r"merge must be one of .*\(TEST.SEE_THROUGH.MERGE\)"),
        (
            "MODEL.SEE_THROUGH.AUX_LOSS_WEIGHTS",
            "[1.0, 1.0]",
            r"3 values .*\(MODEL.SEE_THROUGH.AUX_LOSS_WEIGHTS\)",
        ),
        (
            "MODEL.SEE_THROUGH.TRAIN_SCALES",
            "[1.0, 2.0]",
            r"\(0.5, 1.0\) or \(1.0,\), got \(1.0, 2.0\) \(MODEL.SEE_THROUGH.TRAIN_SCALES\)",
        ),
    ],
)
def test_a_bad_value_names_its_key(key, value, match):
    from seethroughnet.modeling.meta_arch.seethroughnet import build_seethroughnet_from_cfg

    with pytest.raises(ValueError, match=match):
        build_seethroughnet_from_cfg(build_config(TINY, [key, value]))


def test_slide_keys_reach_inference_and_the_backbone_builds_the_same_encoder():
    from seethroughnet.modeling.backbone.hrnet import build_hrnetv2_backbone
    from seethroughnet.modeling.meta_arch.seethroughnet import build_seethroughnet_from_cfg

    opts = ["TEST.SEE_THROUGH.MODE", "slide", "TEST.SEE_THROUGH.CROP_SIZE", "[64, 96]"]
    opts += ["TEST.SEE_THROUGH.STRIDE", "[32, 48]", "TEST.SEE_THROUGH.SCALES", "[0.5, 1.0]"]
    cfg = build_config(TINY, opts + ["MODEL.HRNET.NORM", "FrozenBN"])
    net = build_seethroughnet_from_cfg(cfg)
    assert net.inference_options.window == ((64, 96), (32, 48))
    assert net.inference_options.scales == (0.5, 1.0)
    backbone = build_hrnetv2_backbone(cfg).encoder
    shapes = {k: tuple(v.shape) for k, v in net.encoder.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in backbone.state_dict().items()} == shapes
    assert {type(m).__name__ for m in backbone.modules()} == {
        type(m).__name__ for m in net.encoder.modules()
    }
    assert "FrozenBatchNorm2d" in {type(m).__name__ for m in backbone.modules()}


def test_paper_config_builds_the_papers_w48_model():
    """W48, K = 19: the total of docs/seethroughnet_model.md "Parameter counts" (75,068,338); the
    option groups hold the paper's values (Eqs. 4, 5, 7) and the Cityscapes file's SyncBN."""
    from seethroughnet.modeling.meta_arch.seethroughnet import build_seethroughnet_from_cfg

    net = build_seethroughnet_from_cfg(build_config(W48, ["MODEL.REQUIRES_PRETRAINED", "False"]))
    assert sum(p.numel() for p in net.parameters()) == 75_068_338
    assert net.num_classes == 19
    assert net.encoder_options == O.EncoderOptions("hrnet_w48", norm="SyncBN")
    assert net.scale_options.resolutions == (0.5, 1.0)
    loss = net.loss_options
    assert (loss.rmi_lambda, loss.gamma, loss.aux_loss_kind, loss.cpp_on) == (
        0.5,
        0.05,
        "cpp_kl",
        "coarse",
    )
    assert net.decoder_options == O.DecoderOptions() and net.ocr_options == O.OCROptions()
    assert type(net.ocr.pixel_conv[1]).__name__ == "SyncBatchNorm"  # MODEL.SEE_THROUGH.HEAD_NORM
    assert dataclasses.replace(loss, gamma=0.1).gamma == 0.1  # groups are values
