"""MMSegmentation's OCRNet-HR48 (``ocrnet_hr48_4xb2-80k_cityscapes-512x1024.py``, a
``CascadeEncoderDecoder``: HRNet-W48, the soft-region ``FCNHead`` and the ``OCRHead``) converted by
the key map ``KEY_MAPS["mmseg"]["ocr"]`` (seethroughnet.conversion.mmseg_ocrnet) into the project's
Table 1 OCRNet (``configs/CPP-Plugin/ocrnet_HRW48_cityscapes.yaml``) gives MMSegmentation's logits:
random weights and random BatchNorm statistics, the class counts of Cityscapes (19), VOC (21) and
Pascal Context (60), two input sizes; the project's ``CPPSegmentor`` inference (pre-argmax
``sem_seg`` logits at input resolution) against MMSegmentation's ``encode_decode``, max abs
difference < 1e-4. The four CPP auxiliary heads (``aux_heads.*``) have no MMSegmentation counterpart
and keep their initialisation; they do not enter inference."""

import os

import pytest
import torch
from detectron2.modeling import build_model

import seethroughnet.modeling.segmentors  # noqa: F401  (registers CPPSegmentor)
from seethroughnet.config import build_config
from seethroughnet.conversion.key_maps import KEY_MAPS
from seethroughnet.conversion.mmseg_ocrnet import mmseg_ocrnet_key_map

from mmseg_reference import build_mmseg_model, randomize_batchnorms_

CONFIG = os.path.join(
    os.path.dirname(__file__),
    "..",
    "..",
    "projects",
    "SeeThroughNet",
    "configs",
    "CPP-Plugin",
    "ocrnet_HRW48_cityscapes.yaml",
)
# one process on CPU: BN instead of SyncBN (same tensors), as tests/modeling/test_table1_models.py
BN_OPTS = ["MODEL.DECODE_HEAD.NORM", "BN", "MODEL.HRNET.NORM", "BN"]
SIZES = ((64, 64), (96, 128))  # multiples of 32 (HRNet)


def converted_pair(num_classes: int):
    """(MMSegmentation's model, the project's model holding its converted tensors)."""
    torch.manual_seed(num_classes)
    reference = build_mmseg_model("ocr", num_classes)
    randomize_batchnorms_(reference, seed=num_classes + 1)
    source = reference.state_dict()
    names = KEY_MAPS["mmseg"]["ocr"](source)
    unmapped = sorted(set(source) - set(names))
    assert not unmapped, f"keys of MMSegmentation's OCRNet without a project name: {unmapped[:5]}"
    cfg = build_config(CONFIG, BN_OPTS + ["MODEL.SEM_SEG_HEAD.NUM_CLASSES", str(num_classes)])
    ours = build_model(cfg).eval()
    state = {names[k]: v for k, v in source.items()}
    assert len(state) == len(source), "two MMSegmentation keys mapped to one project key"
    own = ours.state_dict()
    aux = {k: v for k, v in own.items() if k.startswith("aux_heads.")}
    assert set(state) == set(own) - set(aux)  # backbone and decode head, every tensor
    ours.load_state_dict({**state, **aux}, strict=True)
    return reference, ours


@pytest.mark.parametrize("num_classes", [19, 21, 60])
def test_converted_ocrnet_gives_mmseg_logits(num_classes):
    reference, ours = converted_pair(num_classes)
    mean = ours.pixel_mean.view(3, 1, 1).cpu()
    std = ours.pixel_std.view(3, 1, 1).cpu()
    g = torch.Generator().manual_seed(100 + num_classes)
    for h, w in SIZES:
        image = 255 * torch.rand(3, h, w, generator=g)
        with torch.no_grad():
            # MMSegmentation's data preprocessor normalises with the same ImageNet statistics
            expected = reference.encode_decode(
                ((image - mean) / std)[None], [dict(img_shape=(h, w))]
            )
            got = ours([{"image": image, "height": h, "width": w}])[0]["sem_seg"]
        assert got.shape == expected.shape[1:] == (num_classes, h, w)
        diff = (got - expected[0]).abs().max().item()
        assert diff < 1e-4, f"K={num_classes}, {h}x{w}: max abs logit difference {diff}"
        assert expected.abs().max() > 1.0  # the logits are not trivially small


def test_key_map_is_registered_and_names_both_heads():
    assert KEY_MAPS["mmseg"]["ocr"] is mmseg_ocrnet_key_map
    names = mmseg_ocrnet_key_map(
        [
            "backbone.stage4.2.fuse_layers.3.2.0.1.running_var",
            "decode_head.0.convs.0.bn.weight",  # the soft-region FCNHead: a cascade stage
            "decode_head.0.conv_seg.bias",
            "decode_head.1.object_context_block.bottleneck.conv.weight",
            "decode_head.1.conv_seg.weight",
            "auxiliary_head.conv_seg.weight",  # not in OCRNet: left for the converter to report
            "decode_head.1.object_context_block.key_project.0.act.weight",
        ]
    )
    assert names == {
        "backbone.stage4.2.fuse_layers.3.2.0.1.running_var": (
            "backbone.encoder.body.stage4.2.fuse_layers.3.2.0.1.running_var"
        ),
        "decode_head.0.convs.0.bn.weight": "decode_head.soft_region.0.1.weight",
        "decode_head.0.conv_seg.bias": "decode_head.soft_region.1.bias",
        "decode_head.1.object_context_block.bottleneck.conv.weight": (
            "decode_head.ocr.fuse.0.0.weight"
        ),
        "decode_head.1.conv_seg.weight": "decode_head.ocr.classifier.weight",
    }


def test_ocrnet_checkpoint_file_converts_and_loads_like_eval_only(tmp_path):
    """The whole path for OCRNet: an MMSegmentation 1.x checkpoint file, convert_mmseg_checkpoint
    (``tools/convert_weights.py mmseg``), then ``train_net.py --eval-only MODEL.WEIGHTS``'s loading
    (``Trainer.build_model`` + the strict checkpointer): MMSegmentation's logits. OCRNet has no
    auxiliary head in MMSegmentation, so nothing is dropped; the CPP heads are new."""
    from seethroughnet.conversion.mmseg import convert_mmseg_checkpoint
    from seethroughnet.engine import Trainer

    torch.manual_seed(7)
    reference = build_mmseg_model("ocr", 19)
    randomize_batchnorms_(reference, seed=8)
    source, converted = tmp_path / "ocrnet_hr48.pth", tmp_path / "converted.pth"
    meta = {"mmengine_version": "0.10.7", "dataset_meta": {"classes": tuple(range(19))}}
    torch.save({"meta": meta, "state_dict": reference.state_dict()}, source)
    opts = BN_OPTS + ["MODEL.SEM_SEG_HEAD.NUM_CLASSES", "19"]
    report = convert_mmseg_checkpoint(source, CONFIG, converted, opts)
    assert report.model == "ocr" and report.dropped == []
    assert len(report.loaded) == len(reference.state_dict())
    assert report.new and all(k.startswith("aux_heads.") for k in report.new)
    cfg = build_config(CONFIG, opts + ["MODEL.WEIGHTS", str(converted), "MODEL.DEVICE", "cpu"])
    ours = Trainer.build_model(cfg)
    Trainer.build_checkpointer(cfg, ours).resume_or_load(cfg.MODEL.WEIGHTS, resume=False)
    ours.eval()
    image = 255 * torch.rand(3, 64, 96, generator=torch.Generator().manual_seed(3))
    mean, std = ours.pixel_mean.view(3, 1, 1), ours.pixel_std.view(3, 1, 1)
    with torch.no_grad():
        expected = reference.encode_decode(((image - mean) / std)[None], [dict(img_shape=(64, 96))])
        got = ours([{"image": image, "height": 64, "width": 96}])[0]["sem_seg"]
    assert (got - expected[0]).abs().max().item() < 1e-4
