"""seethroughnet.predictor.Predictor: its classes and logits are evaluation's (the test loader's
mapper on a dataset dict, then the model call of ``inference_on_dataset``) for single-scale,
multi-scale + flip and sliding-window inference of the tiny SeeThroughNet, and for a tiny Table 1
(CPP plug-in) model; inputs as paths, RGB and BGR arrays; grayscale / 16-bit conversion; bad
input. Seconds on a CPU."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seethroughnet.predictor import (
    InputConversionWarning,
    InputError,
    Predictor,
    as_rgb,
    list_images,
    read_image_file,
)

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "tests/configs/seethroughnet_tiny.yaml")
PSP = str(REPO / "projects/SeeThroughNet/configs/CPP-Plugin/pspnet_R101_cityscapes.yaml")
CPP_TINY = str(REPO / "tests/configs/cpp_plugin_tiny_overrides.yaml")
H, W = 48, 80

# evaluation's test-time resize (shortest edge 64: a 48x80 image goes in as 64x107) and a BGR
# input format, so that both the resize and the channel order matter
RESIZE_BGR = ["INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "1000", "INPUT.FORMAT", "BGR"]
MODES = {
    "single_scale": [],
    "multi_scale_flip": ["TEST.SEE_THROUGH.SCALES", "[0.5, 1.0]", "TEST.SEE_THROUGH.FLIP", "True"],
    "sliding_window": [
        "TEST.SEE_THROUGH.MODE", "slide",
        "TEST.SEE_THROUGH.CROP_SIZE", "[32, 64]",
        "TEST.SEE_THROUGH.STRIDE", "[24, 40]",
    ],
}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("pred")
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    img[10:30, 20:60] = (200, 30, 30)
    Image.fromarray(img).save(d / "i.png")
    return d / "i.png"


def _evaluation_logits(cfg, model, path):
    """The test loader's mapper (``Trainer.build_test_loader``) on a dataset dict, then the model
    call of ``inference_on_dataset``."""
    from seethroughnet.data.dataset_mappers import SemanticSegmentationMapper

    mapper = SemanticSegmentationMapper(cfg, is_train=False, dataset_name=cfg.DATASETS.TEST[0])
    batch = mapper({"file_name": str(path), "height": H, "width": W, "image_id": "x"})
    assert tuple(batch["image"].shape[1:]) != (H, W)  # the test-time resize happened
    with torch.no_grad():
        return model([batch])[0]["sem_seg"]


def _check_equal_to_evaluation(predictor, path):
    ref = _evaluation_logits(predictor.cfg, predictor.model, path)
    assert tuple(ref.shape) == (19, H, W)
    got = predictor(str(path), logits=True, probabilities=True)
    torch.testing.assert_close(got.logits, ref, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(got.classes, ref.argmax(0).numpy())
    torch.testing.assert_close(
        torch.from_numpy(got.probabilities), ref.softmax(0), atol=1e-6, rtol=0
    )
    assert got.classes.dtype == np.int64 and got.source == str(path)
    # the same image as RGB and BGR arrays
    rgb = np.asarray(Image.open(path).convert("RGB"))
    for arr, fmt in ((rgb, "RGB"), (np.ascontiguousarray(rgb[:, :, ::-1]), "BGR")):
        np.testing.assert_array_equal(predictor(arr, format=fmt).classes, got.classes)
    return ref


@pytest.fixture(scope="module")
def seethroughnet_predictors():
    from seethroughnet.experiments.models import load_config

    out = {}
    for name, opts in MODES.items():
        cfg = load_config(TINY, RESIZE_BGR + opts)
        torch.manual_seed(0)  # the same weights for every mode (inference options add none)
        out[name] = Predictor(cfg, weights="", device="cpu")
    return out


@pytest.mark.parametrize("mode", list(MODES))
def test_seethroughnet_predictor_equals_evaluation(seethroughnet_predictors, image_file, mode):
    p = seethroughnet_predictors[mode]
    assert p.input_format == "BGR" and p.device == torch.device("cpu")
    ref = _check_equal_to_evaluation(p, image_file)
    if mode != "single_scale":  # the config's inference mode is the one run
        single = _evaluation_logits(
            p.cfg, seethroughnet_predictors["single_scale"].model, image_file
        )
        assert (ref - single).abs().max() > 1e-3
    pred = p(str(image_file))
    assert pred.overlay().shape == (H, W, 3) and pred.overlay(names=False).shape == (H, W, 3)
    assert pred.overlay(scale=0.5, names=False).shape == (H // 2, W // 2, 3)
    lab = pred.label_map("cityscapes")
    from seethroughnet.experiments.export import trainid_to_labelid_lut

    np.testing.assert_array_equal(lab, trainid_to_labelid_lut()[pred.classes])


def test_default_array_format_is_the_configs(seethroughnet_predictors, image_file):
    """Arrays are read in INPUT.FORMAT by default, as detectron2's DefaultPredictor reads them."""
    p = seethroughnet_predictors["single_scale"]
    rgb = np.asarray(Image.open(image_file).convert("RGB"))
    ref = p(str(image_file)).classes
    np.testing.assert_array_equal(p(np.ascontiguousarray(rgb[:, :, ::-1])).classes, ref)
    rgb_p = Predictor.from_model(p.cfg, p.model, input_format="RGB")
    np.testing.assert_array_equal(rgb_p(rgb).classes, ref)


def test_cpp_plugin_predictor_equals_evaluation_sliding_window(image_file):
    """A Table 1 model (PSPNet + CPP auxiliary heads, tiny widths) with MMSegmentation's
    keep-ratio test resize and sliding-window inference."""
    from seethroughnet.config import build_config
    from seethroughnet.utils.safe_load import merge_config_file

    cfg = build_config(PSP)
    merge_config_file(cfg, CPP_TINY)
    cfg.merge_from_list(
        [
            "MODEL.REQUIRES_PRETRAINED", "False",
            "INPUT.RESIZE.TEST_SCALE", "(160, 96)",  # 48x80 -> 96x160
            "TEST.CPP_SEGMENTOR.MODE", "slide",
            "TEST.CPP_SEGMENTOR.CROP_SIZE", "(64, 64)",
            "TEST.CPP_SEGMENTOR.STRIDE", "(48, 48)",
        ]
    )  # fmt: skip
    torch.manual_seed(0)
    p = Predictor(cfg, weights="", device="cpu")
    assert type(p.model).__name__ == "CPPSegmentor"
    _check_equal_to_evaluation(p, image_file)


def test_grayscale_and_16_bit_inputs_are_converted_with_a_warning(
    seethroughnet_predictors, tmp_path
):
    p = seethroughnet_predictors["single_scale"]
    gray = np.random.default_rng(5).integers(0, 256, (H, W), dtype=np.uint8)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    ref = p(rgb, format="RGB").classes
    with pytest.warns(InputConversionWarning, match="grayscale"):
        np.testing.assert_array_equal(p(gray).classes, ref)
    Image.fromarray(gray).save(tmp_path / "g.png")
    with pytest.warns(InputConversionWarning, match="g.png: grayscale"):
        np.testing.assert_array_equal(read_image_file(tmp_path / "g.png"), rgb)
    g16 = gray.astype(np.uint16) * 257
    Image.fromarray(g16).save(tmp_path / "g16.png")
    with pytest.warns(InputConversionWarning) as record:
        np.testing.assert_array_equal(read_image_file(tmp_path / "g16.png"), rgb)
    messages = " | ".join(str(w.message) for w in record)
    assert "g16.png: 16-bit image scaled to 8 bits" in messages and "g16.png: grayscale" in messages
    with pytest.warns(InputConversionWarning, match="16-bit"):
        np.testing.assert_array_equal(as_rgb(rgb.astype(np.uint16) * 257), rgb)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        as_rgb(rgb)  # 8-bit colour: no warning


def test_bad_inputs_name_the_input(tmp_path):
    with pytest.raises(InputError, match=r"shape \(4, 5, 4\).*image\[\.\.\., :3\]"):
        as_rgb(np.zeros((4, 5, 4), np.uint8))
    with pytest.raises(InputError, match="float32.*astype"):
        as_rgb(np.zeros((4, 5, 3), np.float32))
    with pytest.raises(InputError, match="'YUV'"):
        as_rgb(np.zeros((4, 5, 3), np.uint8), "YUV")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="broken.png cannot be decoded"):
        read_image_file(tmp_path / "bad" / "broken.png")
    with pytest.raises(FileNotFoundError, match="nope.png does not exist"):
        read_image_file(tmp_path / "nope.png")
    with pytest.raises(InputError, match=r"pattern .*\*.jpg matches no file"):
        list_images(str(tmp_path / "*.jpg"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty holds no image file"):
        list_images([str(tmp_path / "empty")])
    with pytest.raises(InputError, match="nothing.png does not exist"):
        list_images(str(tmp_path / "nothing.png"))
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(tmp_path / "b.png")
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(tmp_path / "a.jpg")
    assert list_images([str(tmp_path)]) == [str(tmp_path / "a.jpg"), str(tmp_path / "b.png")]
    assert list_images(str(tmp_path / "*.png")) == [str(tmp_path / "b.png")]


def test_predict_many_folders_lists_and_arrays(seethroughnet_predictors, image_file, tmp_path):
    p = seethroughnet_predictors["single_scale"]
    img = np.asarray(Image.open(image_file).convert("RGB"))
    Image.fromarray(img[:, ::-1]).save(tmp_path / "flipped.png")
    Image.fromarray(img).save(tmp_path / "same.png")
    preds = list(p.predict_many(str(tmp_path)))
    assert [Path(x.source).name for x in preds] == ["flipped.png", "same.png"]
    np.testing.assert_array_equal(preds[1].classes, p(str(image_file)).classes)
    mixed = list(p.predict_many([str(tmp_path / "s*.png"), img[:, :, ::-1]]))
    assert mixed[1].source is None
    np.testing.assert_array_equal(mixed[0].classes, mixed[1].classes)


def test_package_exports_the_predictor():
    import seethroughnet

    assert seethroughnet.Predictor is Predictor
