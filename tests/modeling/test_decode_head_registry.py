"""One registry of decode heads: ``@register_decode_head`` names a head and its option keys, and
the detectron2 glue builds it from ``MODEL.DECODE_HEAD``."""

import pytest
import torch
from detectron2.layers import ShapeSpec

from seethroughnet.config import build_config
from seethroughnet.modeling.segmentors import build_seg_head
from seethroughnet.nn.decode_heads import DECODE_HEADS, DecodeHead, register_decode_head


@pytest.fixture
def scratch_registry():
    before = dict(DECODE_HEADS)
    yield DECODE_HEADS
    DECODE_HEADS.clear()
    DECODE_HEADS.update(before)


def test_every_table1_head_is_registered_with_existing_keys():
    assert sorted(DECODE_HEADS) == [
        "ann",
        "ccnet",
        "deeplabv3plus",
        "dmnet",
        "ocr",
        "psp",
        "upernet",
    ]
    keys = build_config().MODEL.DECODE_HEAD
    for name, head in DECODE_HEADS.items():
        assert head.head_name == name
        for arg, key in head.config_keys.items():
            assert (
                key in keys
            ), f"{head.__name__}.{arg} reads MODEL.DECODE_HEAD.{key}, which is not a key"


def test_a_new_head_is_built_from_its_declared_key(scratch_registry):
    @register_decode_head("toy", depth="RECURRENCE")
    class ToyHead(DecodeHead):
        def __init__(
            self,
            in_channels,
            num_classes,
            channels=512,
            in_features=(),
            dropout=0.1,
            norm="BN",
            depth=1,
        ):
            super().__init__(in_channels, num_classes, channels, in_features, dropout, norm)
            self.depth = depth
            self.proj = torch.nn.Conv2d(self.in_channels[-1], channels, 1)

        def forward(self, features):
            return self.cls_seg(self.proj(self.inputs(features)[-1]))

    cfg = build_config(
        None,
        [
            "MODEL.DECODE_HEAD.NAME",
            "toy",
            "MODEL.DECODE_HEAD.RECURRENCE",
            "5",
            "MODEL.DECODE_HEAD.CHANNELS",
            "8",
            "MODEL.SEM_SEG_HEAD.NUM_CLASSES",
            "3",
        ],
    )
    head = build_seg_head(cfg, {"res5": ShapeSpec(channels=4, stride=32)})
    assert isinstance(head, ToyHead) and head.depth == 5 and head.channels == 8
    assert head({"res5": torch.randn(1, 4, 2, 2)}).shape == (1, 3, 2, 2)


def test_registration_mistakes_are_refused(scratch_registry):
    with pytest.raises(KeyError, match="'psp' is registered twice"):
        register_decode_head("psp")(type("Other", (DecodeHead,), {}))
    with pytest.raises(TypeError, match=r"no argument\(s\) \['widht'\]"):
        register_decode_head("typo", widht="CHANNELS")(type("Typo", (DecodeHead,), {}))
    cfg = build_config(None, ["MODEL.DECODE_HEAD.NAME", "segformer"])
    with pytest.raises(
        ValueError,
        match="MODEL.DECODE_HEAD.NAME: unknown decode head 'segformer'; valid choices: ann",
    ):
        build_seg_head(cfg, {"res5": ShapeSpec(channels=4, stride=32)})
