"""Grad-CAM for segmentation classes and the figure tools (issue 7): seconds each on a CPU."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from seethroughnet.visualization import commands
from seethroughnet.visualization.gradcam import (
    default_layer,
    grad_cam,
    resolve_class,
    resolve_layer,
    segmentation_forward,
)

REPO = Path(__file__).resolve().parents[2]
DEMO = str(
    REPO / "projects/SeeThroughNet/configs/Cityscapes-Synthetic/seethroughnet_W18small_demo.yaml"
)
H, W = 64, 128


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: intra-op threads only add contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------------------------
# a tiny model with a planted signal
class Planted(nn.Module):
    """Class 1's logit is the brightness (after a 3x3 conv + ReLU); class 0 has a constant 0.5."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 2, 3, padding=1, bias=False)
        self.act = nn.ReLU()
        self.classifier = nn.Conv2d(2, 2, 1)
        with torch.no_grad():
            self.features.weight.zero_()
            self.features.weight[0, :, 1, 1] = 1.0 / 3  # channel 0: mean brightness
            self.features.weight[1, :, 1, 1] = -1.0  # channel 1: never active on a [0, 1] image
            self.classifier.weight.zero_()
            self.classifier.bias.copy_(torch.tensor([0.5, 0.0]))
            self.classifier.weight[1, 0] = 1.0

    def forward(self, x):
        return self.classifier(self.act(self.features(x)))


def _planted_image(corner="tl"):
    img = torch.zeros(1, 3, 32, 48)
    ys, xs = (slice(2, 10), slice(3, 11)) if corner == "tl" else (slice(22, 30), slice(37, 45))
    img[..., ys, xs] = 1.0
    return img, ys, xs


@pytest.mark.parametrize("corner", ["tl", "br"])
def test_planted_signal_peaks_on_the_square(corner):
    model = Planted().eval()
    img, ys, xs = _planted_image(corner)
    res = grad_cam(model, lambda: model(img), "act", class_index=1)
    cam = res.cam
    assert cam.shape == (32, 48) and cam.dtype == np.float32
    assert cam.min() >= 0 and cam.max() <= 1 and cam.max() == pytest.approx(1.0)
    assert res.region_kind == "predicted" and res.region[ys, xs].all() and res.region.sum() == 64
    r, c = np.unravel_index(np.argmax(cam), cam.shape)
    assert ys.start <= r < ys.stop and xs.start <= c < xs.stop
    assert (
        cam[ys, xs].mean() > 0.9
        and np.delete(
            cam.ravel(), np.ravel_multi_index(np.mgrid[ys, xs].reshape(2, -1), cam.shape)
        ).max()
        < 0.5
    )


def test_box_region_and_no_prediction_fallback():
    model = Planted().eval()
    img, ys, xs = _planted_image("tl")
    res = grad_cam(model, lambda: model(img), "act", 1, box=(0, 0, 24, 16))
    assert res.region_kind == "box" and res.region.sum() == 24 * 16
    assert np.unravel_index(np.argmax(res.cam), res.cam.shape)[0] < 16
    blank = torch.zeros(1, 3, 32, 48)
    res = grad_cam(model, lambda: model(blank), "act", 1)  # nothing is predicted as class 1
    assert res.region_kind == "all" and res.cam.shape == (32, 48)
    assert res.cam.min() >= 0 and res.cam.max() <= 1
    with pytest.raises(ValueError, match="empty"):
        grad_cam(model, lambda: model(img), "act", 1, box=(10, 10, 10, 20))


def test_unknown_class_and_layer_errors_list_valid_names():
    names = ["road", "traffic light", "car"]
    assert resolve_class("Traffic_Light", names) == 1 and resolve_class("2", names) == 2
    with pytest.raises(ValueError, match="Valid class names: 'road', 'traffic light', 'car'"):
        resolve_class("cat", names)
    with pytest.raises(ValueError, match="out of range"):
        resolve_class(7, names)
    model = Planted()
    with pytest.raises(KeyError) as e:
        resolve_layer(model, "featurez")
    assert "features" in str(e.value) and "classifier" in str(e.value)


# ----------------------------------------------------------------------------------------------
# SeeThroughNet and a detectron2 SemanticSegmentor
@pytest.fixture(scope="module")
def demo_model():
    from seethroughnet.experiments.models import load_model

    torch.manual_seed(0)
    return load_model(DEMO)


@pytest.fixture(scope="module")
def files(tmp_path_factory, demo_model):
    d = tmp_path_factory.mktemp("vis")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    img[40:56, 80:112] = (20, 20, 160)
    Image.fromarray(img).save(d / "img.png")
    lab = np.zeros((H, W), np.uint8)
    lab[:20] = 10
    lab[40:56, 80:112] = 13
    lab[60:] = 255
    Image.fromarray(lab).save(d / "gt.png")
    cfg, model = demo_model
    torch.save({"model": model.state_dict()}, d / "demo.pth")
    return d


def _png_size(path):
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        arr = np.asarray(im.convert("RGB"))
    assert arr.std() > 0
    return im.size


def test_seethroughnet_adapter_random_init(demo_model):
    cfg, model = demo_model
    assert default_layer(model) == "net.encoder:res5"
    image = torch.randint(0, 256, (3, H, W), dtype=torch.uint8)
    fwd = segmentation_forward(model, image)
    res = grad_cam(model, fwd, default_layer(model), 13)
    assert res.cam.shape == (H, W) and res.prediction.shape == (H, W)
    assert 0 <= res.cam.min() and res.cam.max() <= 1 and np.isfinite(res.cam).all()
    assert res.layer == "net.encoder:res5" and res.activation_shape[1:] == (H // 32, W // 32)
    # a list-valued timm stage and a NAME:KEY pick; a non-multiple-of-32 size is padded
    odd = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8)
    res = grad_cam(model, segmentation_forward(model, odd), "net.encoder.body.stage4", 0)
    assert res.cam.shape == (50, 70)
    with pytest.raises(KeyError, match="res2"):
        grad_cam(model, fwd, "net.encoder:res9", 0)
    assert not any(p.grad is not None for p in model.parameters())


def test_detectron2_semantic_segmentor(tmp_path):
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    cfg = get_cfg()
    cfg.merge_from_file(str(REPO / "tests/configs/semantic_segmentor_tiny.yaml"))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert default_layer(model) == "backbone.res5"
    image = torch.randint(0, 256, (3, H, W), dtype=torch.uint8)
    res = grad_cam(model, segmentation_forward(model, image), default_layer(model), 3)
    assert res.cam.shape == (H, W) and 0 <= res.cam.min() and res.cam.max() <= 1
    res = grad_cam(
        model, segmentation_forward(model, image), "backbone.stem", 3
    )  # frozen (FREEZE_AT 2)
    assert res.cam.shape == (H, W) and res.activation_shape[1:] == (H // 4, W // 4)
    # the command line with a plain detectron2 config (no dataset: classes "class 0".."class 4")
    yaml = tmp_path / "semseg.yaml"
    yaml.write_text(cfg.dump())
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
        tmp_path / "i.png"
    )
    out = tmp_path / "cam.png"
    assert (
        commands.gradcam_main(
            [
                "--config-file",
                str(yaml),
                "--image",
                str(tmp_path / "i.png"),
                "--class",
                "class 3",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert _png_size(out) == (W, H)


# ----------------------------------------------------------------------------------------------
# the tools' input is evaluation's input (issue 26: a test-time resize, as VOC / Context's
# MIN_SIZE_TEST 512, was skipped by the tools)
def _resizing_cfg(cfg, fmt="BGR"):
    """The demo model's config with a VOC-style test resize (shortest edge 64 on a 48x80 image:
    the input is 64x107) and a BGR input format, so that both the resize and the channel order
    matter."""
    c = cfg.clone()
    c.defrost()
    c.INPUT.MIN_SIZE_TEST = 64
    c.INPUT.MAX_SIZE_TEST = 1000
    c.INPUT.FORMAT = fmt
    return c


def _evaluation_logits(cfg, model, path, h, w):
    """Evaluation's logits for one image file: the test loader's mapper
    (``Trainer.build_test_loader``: ``SemanticSegmentationMapper(cfg, is_train=False,
    dataset_name)``) on a dataset dict, then the model call of ``inference_on_dataset``."""
    from seethroughnet.data.dataset_mappers import SemanticSegmentationMapper

    mapper = SemanticSegmentationMapper(cfg, is_train=False, dataset_name=cfg.DATASETS.TEST[0])
    batch = mapper({"file_name": str(path), "height": h, "width": w, "image_id": "x"})
    assert tuple(batch["image"].shape) == (3, 64, 107)  # the resize happened
    with torch.no_grad():
        return model([batch])[0]["sem_seg"]


def test_tool_predictions_equal_evaluation_with_a_test_resize(demo_model, tmp_path):
    from seethroughnet.visualization.models import predict, predict_logits, read_image

    base_cfg, model = demo_model
    cfg = _resizing_cfg(base_cfg)
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
    img[10:30, 20:60] = (200, 30, 30)
    Image.fromarray(img).save(tmp_path / "i.png")
    ref = _evaluation_logits(cfg, model, tmp_path / "i.png", 48, 80)
    assert tuple(ref.shape) == (19, 48, 80)
    image = read_image(str(tmp_path / "i.png"))
    got = predict_logits(model, cfg, image)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(predict(model, cfg, image), ref.argmax(0).numpy())
    # what the tools computed before: the file-size image, no resize -- measurably different
    with torch.no_grad():
        before = model(
            [
                {
                    "image": torch.from_numpy(img[:, :, ::-1].transpose(2, 0, 1).copy()),
                    "height": 48,
                    "width": 80,
                }
            ]
        )[0]["sem_seg"]
    assert (before - ref).abs().max() > 1e-3


def test_gradcam_logits_are_evaluation_logits_with_a_test_resize(demo_model, tmp_path):
    """Grad-CAM's single-scale forward (the demo tests at scale 1.0 only) on the resized input,
    resized back to the image: evaluation's logits; the CAM is at the image size."""
    base_cfg, model = demo_model
    assert list(base_cfg.TEST.SEE_THROUGH.SCALES) == [1.0] and not base_cfg.TEST.SEE_THROUGH.FLIP
    cfg = _resizing_cfg(base_cfg, "RGB")
    img = np.random.default_rng(4).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "i.png")
    ref = _evaluation_logits(cfg, model, tmp_path / "i.png", 48, 80)
    from seethroughnet.visualization.models import model_input

    inp = model_input(cfg, img)
    fwd = segmentation_forward(model, inp["image"], output_size=(inp["height"], inp["width"]))
    with torch.no_grad():
        torch.testing.assert_close(fwd()[0], ref, atol=1e-5, rtol=0)
    res = commands.explain(model, cfg, img, "car")
    assert res.cam.shape == (48, 80)
    np.testing.assert_array_equal(res.prediction, ref.argmax(0).numpy())


# ----------------------------------------------------------------------------------------------
# command lines
def test_gradcam_cli(files, capsys):
    out = files / "out" / "gradcam.png"
    rc = commands.gradcam_main(
        [
            "--config-file",
            DEMO,
            "--weights",
            str(files / "demo.pth"),
            "--image",
            str(files / "img.png"),
            "--class",
            "car",
            "--box",
            "80",
            "40",
            "112",
            "56",
            "--output",
            str(out),
        ]
    )
    assert rc == 0 and _png_size(out) == (W, H)
    assert [p.name for p in out.parent.iterdir()] == ["gradcam.png"]  # no temp file left
    assert out.stat().st_mode & 0o044  # not mkstemp's 0600


def test_gradcam_cli_bad_input(files, capsys):
    base = [
        "--config-file",
        DEMO,
        "--image",
        str(files / "img.png"),
        "--output",
        str(files / "bad.png"),
    ]
    assert commands.gradcam_main(base + ["--class", "cat"]) == 2
    err = capsys.readouterr().err
    assert "unknown class 'cat'" in err and "'car'" in err and "'bicycle'" in err
    assert commands.gradcam_main(base + ["--class", "car", "--layer", "net.encoder.stage4"]) == 2
    err = capsys.readouterr().err
    assert (
        "no layer 'net.encoder.stage4'" in err
        and "net.encoder.body.stage4" in err
        and "net.decoder" in err
    )
    # a checkpoint of another config (no scale-attention head, other widths)
    other = files / "other.pth"
    state = {
        k: v
        for k, v in torch.load(files / "demo.pth")["model"].items()
        if not k.startswith("net.scale_attention")
    }
    state["net.extra.weight"] = torch.zeros(1)
    torch.save({"model": state}, other)
    assert commands.gradcam_main(base + ["--class", "car", "--weights", str(other)]) == 2
    err = capsys.readouterr().err
    assert (
        "checkpoint does not match the config" in err and "missing keys: net.scale_attention" in err
    )
    assert "unexpected keys: net.extra.weight" in err
    assert not (files / "bad.png").exists()


def test_compare_models_cli(files):
    out = files / "compare.png"
    rc = commands.compare_main(
        [
            "--baseline-config-file",
            DEMO,
            "--baseline-weights",
            str(files / "demo.pth"),
            "--cpp-config-file",
            DEMO,
            "--cpp-weights",
            str(files / "demo.pth"),
            "--image",
            str(files / "img.png"),
            "--class",
            "car",
            "--box",
            "72",
            "32",
            "120",
            "60",
            "--output",
            str(out),
        ]
    )
    assert rc == 0
    w, h = _png_size(out)
    assert w > 5 * 150 and h > 150


def test_overlay_cli(files, capsys):
    out = files / "overlay.png"
    rc = commands.overlay_main(
        [
            "--config-file",
            DEMO,
            "--weights",
            str(files / "demo.pth"),
            "--input",
            str(files / "img.png"),
            "--gt",
            str(files / "gt.png"),
            "--output",
            str(out),
        ]
    )
    assert rc == 0 and _png_size(out) == (2 * W + 8, H)
    folder = files / "overlays"
    rc = commands.overlay_main(
        [
            "--config-file",
            DEMO,
            "--weights",
            str(files / "demo.pth"),
            "--scale",
            "0.5",
            "--input",
            str(files / "img.png"),
            "--output",
            str(folder),
        ]
    )
    assert rc == 0 and _png_size(folder / "img_overlay.png") == (W // 2, H // 2)
    rc = commands.overlay_main(
        [
            "--config-file",
            DEMO,
            "--input",
            str(files / "img.png"),
            "--gt",
            str(files / "gt.png"),
            str(files / "gt.png"),
            "--output",
            str(out),
        ]
    )
    assert rc == 2 and "one label PNG per --input image" in capsys.readouterr().err


def test_compare_cli_names_the_model_whose_checkpoint_does_not_match(files, capsys):
    other = files / "cpp_other.pth"
    state = dict(torch.load(files / "demo.pth")["model"])
    state["net.ocr.classifier.weight"] = torch.zeros(3, 3, 1, 1)  # another number of classes
    torch.save({"model": state}, other)
    rc = commands.compare_main(
        [
            "--baseline-config-file",
            DEMO,
            "--baseline-weights",
            str(files / "demo.pth"),
            "--cpp-config-file",
            DEMO,
            "--cpp-weights",
            str(other),
            "--image",
            str(files / "img.png"),
            "--class",
            "car",
            "--output",
            str(files / "cmp_bad.png"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "CPP model" in err and "shape mismatches: net.ocr.classifier.weight" in err
    assert not (files / "cmp_bad.png").exists()


def _fake_metrics(path, ious, miou, iters=30):
    with open(path, "w") as f:
        for it in range(0, iters, 5):
            f.write(
                json.dumps(
                    {
                        "iteration": it,
                        "total_loss": 3 - 0.05 * it,
                        "loss_rmi": 1 - 0.01 * it,
                        "loss_cpp_s16_r1.0": 0.5,
                        "loss_ce_r1.0": 0.2,
                        "lr": 0.02 * (1 - it / iters),
                    }
                )
                + "\n"
            )
        ev = {"iteration": iters - 1, "sem_seg/mIoU": miou, "sem_seg/fwIoU": 50.0}
        ev.update({f"sem_seg/IoU-{c}": v for c, v in ious.items()})
        ev.update({f"cityscapes_sem_seg/IoU-{c}": 0.0 for c in ious})
        f.write(json.dumps(ev) + "\n")
        f.write('{"iteration": 30, "total_lo')  # a line cut by a crash


def test_iou_comparison_cli(tmp_path):
    from seethroughnet.visualization.figures import read_iou

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    _fake_metrics(a, {"road": 90.0, "car": 40.0, "pole": 10.0}, 46.7)
    _fake_metrics(b, {"road": 91.0, "car": 55.0, "pole": 20.0}, 55.3)
    assert read_iou(str(a)) == ({"road": 90.0, "car": 40.0, "pole": 10.0}, 46.7)
    assert list(commands._dataset_order({"car": 1.0, "pole": 2.0, "road": 3.0})) == [
        "road",
        "pole",
        "car",
    ]
    res = tmp_path / "sem_seg_results.json"  # a SemSegEvaluator result dict
    res.write_text(json.dumps({"sem_seg": {"mIoU": 50.0, "IoU-road": 92.0, "IoU-car": 8.0}}))
    assert read_iou(str(res)) == ({"road": 92.0, "car": 8.0}, 50.0)
    out = tmp_path / "iou.png"
    assert commands.iou_main([str(a), str(b), "--output", str(out)]) == 0
    assert _png_size(out)[0] > 300
    assert (
        commands.iou_main([str(a), str(res), "--labels", "run A", "run B", "--output", str(out)])
        == 0
    )
    empty = tmp_path / "empty.json"
    empty.write_text('{"iteration": 1, "total_loss": 1.0}\n')
    assert commands.iou_main([str(a), str(empty), "--output", str(tmp_path / "x.png")]) == 2


def test_training_curves_cli(tmp_path):
    m = tmp_path / "metrics.json"
    _fake_metrics(m, {"road": 90.0}, 46.7)
    assert commands.curves_main([str(m)]) == 0
    assert _png_size(tmp_path / "training_curves.png")[0] > 300
    out = tmp_path / "sep.png"
    assert commands.curves_main([str(m), "--separate", "--smooth", "3", "--output", str(out)]) == 0
    assert _png_size(out)[0] > 300
    assert commands.curves_main([str(tmp_path / "missing.json")]) == 2
