"""CPPSegmentor's test modes (``TEST.CPP_SEGMENTOR``) and training padding (``INPUT.PAD.MODE
"normalized"``), route A with tiny models; the equality with MMSegmentation's ``slide_inference`` /
``SegDataPreProcessor`` is tests/mmseg/test_mmseg_pipeline.py.

* the default (whole image, padded to a multiple of 32, as before these keys) gives the logits of
  the explicit pad-run-crop computation;
* ``SIZE_DIVISIBILITY 1`` runs a dilated ResNet on the image's own (odd) size, HRNet still pads;
* sliding windows: any image size, and windows as large as the image give the whole-image result;
* the normalised training padding pads images with 0 and labels with the ignore value to the crop;
* bad values name their key.
"""

import os

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("detectron2")

from detectron2.modeling import build_model  # noqa: E402

import seethroughnet.modeling.segmentors  # noqa: E402,F401
from seethroughnet.config import build_config  # noqa: E402
from seethroughnet.utils.safe_load import merge_config_file  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CFG_DIR = os.path.join(REPO, "projects/SeeThroughNet/configs/CPP-Plugin")
TINY = os.path.join(REPO, "tests/configs/cpp_plugin_tiny_overrides.yaml")


def tiny(config, *opts):
    cfg = build_config(os.path.join(CFG_DIR, config))
    merge_config_file(cfg, TINY)
    cfg.merge_from_list(list(opts))
    torch.manual_seed(0)
    return build_model(cfg).eval(), cfg


def sample(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
    return {"image": img, "height": h, "width": w}


@pytest.fixture(scope="module")
def camvid_psp():
    return tiny("CamVid-CPU/pspnet_R18_camvid.yaml")


def test_default_whole_mode_pads_to_32_as_before(camvid_psp):
    net, cfg = camvid_psp
    assert cfg.TEST.CPP_SEGMENTOR.MODE == "whole" and net.test_size_divisibility == 32
    x = sample(45, 70)
    with torch.no_grad():
        got = net([x])[0]["sem_seg"]
        norm = (x["image"].float() - net.pixel_mean) / net.pixel_std
        padded = F.pad(norm, (0, 96 - 70, 0, 64 - 45))[None]
        logits = net.decode_head(net.backbone(padded))
        logits = F.interpolate(logits, size=(64, 96), mode="bilinear", align_corners=False)
    assert torch.equal(got, logits[0, :, :45, :70])


def test_size_divisibility_1_runs_resnet_on_the_image_size():
    net, _ = tiny("VOC/pspnet_R101_voc.yaml")
    assert net.test_size_divisibility == 1
    seen = []
    net.backbone.register_forward_pre_hook(lambda m, a: seen.append(tuple(a[0].shape[-2:])))
    with torch.no_grad():
        out = net([sample(45, 70)])[0]["sem_seg"]
    assert seen == [(45, 70)] and out.shape == (21, 45, 70)


def test_hrnet_windows_are_still_padded_to_32():
    net, _ = tiny(
        "Context/ocrnet_HRW48_context59.yaml",
        "TEST.CPP_SEGMENTOR.CROP_SIZE",
        "(40, 40)",
        "TEST.CPP_SEGMENTOR.STRIDE",
        "(30, 30)",
    )
    assert net.test_mode == "slide" and net.test_size_divisibility == 32
    seen = []
    net.backbone.register_forward_pre_hook(lambda m, a: seen.append(tuple(a[0].shape[-2:])))
    with torch.no_grad():
        out = net([sample(45, 70)])[0]["sem_seg"]
    assert out.shape == (59, 45, 70) and torch.isfinite(out).all()
    assert set(seen) == {(64, 64)} and len(seen) == 2 * 2  # 40x40 windows padded to 64x64


def test_slide_with_one_window_equals_whole():
    slide, _ = tiny("Context/pspnet_R101_context59.yaml")  # 480x480 windows: one for 45x70
    whole, _ = tiny("Context/pspnet_R101_context59.yaml", "TEST.CPP_SEGMENTOR.MODE", "whole")
    x = sample(45, 70, seed=1)
    with torch.no_grad():
        assert torch.equal(slide([x])[0]["sem_seg"], whole([x])[0]["sem_seg"])
        small, _ = tiny(
            "Context/pspnet_R101_context59.yaml",
            "TEST.CPP_SEGMENTOR.CROP_SIZE",
            "(24, 32)",
            "TEST.CPP_SEGMENTOR.STRIDE",
            "(16, 16)",
        )
        windows = small([x])[0]["sem_seg"]
    assert windows.shape == (59, 45, 70) and not torch.equal(windows, whole([x])[0]["sem_seg"])


def test_normalized_training_padding_reaches_the_crop_size():
    net, cfg = tiny("Context/pspnet_R101_context59.yaml", "INPUT.CROP.SIZE", "(64, 64)")
    net.train()
    seen = {}

    def keep(name, index):
        def hook(module, args):
            seen[name] = args[index]

        return hook

    net.backbone.register_forward_pre_hook(keep("images", 0))
    net.aux_heads.register_forward_pre_hook(keep("labels", 1))
    batch = []
    for h, w in ((40, 64), (64, 50)):
        x = sample(h, w)
        x["sem_seg"] = torch.zeros(h, w, dtype=torch.int64)
        x["sem_seg"][0, 0] = 58
        batch.append(x)
    losses = net(batch)
    assert all(torch.isfinite(v) for v in losses.values())
    images, labels = seen["images"], seen["labels"]
    assert images.shape == (2, 3, 64, 64) and labels.shape == (2, 64, 64)
    assert (images[0, :, 40:] == 0).all() and (labels[0, 40:] == 255).all()
    assert (images[1, :, :, 50:] == 0).all() and (labels[1, :, 50:] == 255).all()
    assert (labels[0, :40] != 255).all()


@pytest.mark.parametrize(
    "key,value",
    [
        ("TEST.CPP_SEGMENTOR.MODE", "sliding"),
        ("TEST.CPP_SEGMENTOR.CROP_SIZE", "(480,)"),
        ("TEST.CPP_SEGMENTOR.STRIDE", "(0, 320)"),
        ("TEST.CPP_SEGMENTOR.SIZE_DIVISIBILITY", "0"),
    ],
)
def test_a_bad_test_value_names_its_key(key, value):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        tiny("Context/pspnet_R101_context59.yaml", key, value)
