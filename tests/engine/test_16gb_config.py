"""The 16 GB variant of the W48 Cityscapes config (AMP + activation checkpointing) differs from its
base only in those keys (and OUTPUT_DIR): same model, objective, crop, batch and schedule; it
builds the W48 model with the encoder, decoder and OCR head checkpointed."""

import os

import pytest

pytest.importorskip("detectron2")

from seethroughnet.config import build_config  # noqa: E402
from seethroughnet.modeling.meta_arch import seethroughnet as meta  # noqa: E402

CONFIGS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "projects/SeeThroughNet/configs/Cityscapes",
)
BASE = os.path.join(CONFIGS, "seethroughnet_W48_cityscapes_fine.yaml")
SMALL_GPU = os.path.join(CONFIGS, "seethroughnet_W48_cityscapes_fine_16GB.yaml")


def _flat(node, prefix=""):
    out = {}
    for k, v in node.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_differs_from_its_base_only_in_amp_and_checkpointing():
    base, small = _flat(build_config(BASE)), _flat(build_config(SMALL_GPU))
    assert base.keys() == small.keys()
    changed = {k for k in base if base[k] != small[k]}
    assert changed == {
        "MODEL.SEE_THROUGH.CHECKPOINT_ACTIVATIONS",
        "SOLVER.AMP.ENABLED",
        "OUTPUT_DIR",
    }
    assert small["SOLVER.AMP.ENABLED"] and not base["SOLVER.AMP.ENABLED"]
    assert tuple(small["INPUT.CROP.SIZE"]) == (1024, 2048) and small["SOLVER.IMS_PER_BATCH"] == 8


def test_builds_the_w48_model_with_checkpointing():
    cfg = build_config(SMALL_GPU, ["MODEL.HRNET.NORM", "BN", "MODEL.SEE_THROUGH.HEAD_NORM", "BN"])
    model = meta.build_seethroughnet_from_cfg(cfg)
    assert model.encoder.variant == "hrnet_w48"
    assert model.checkpointing_options.parts == ("encoder", "decoder", "ocr")
    assert model.encoder.checkpoint_activations
