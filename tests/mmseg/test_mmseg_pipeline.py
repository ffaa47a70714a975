"""The Table 1 data pipeline step by step against MMSegmentation 1.2.2's own transforms
(``INPUT.PIPELINE "mmseg"``, seethroughnet/data/transforms/mmseg_pipeline.py):

* keep-ratio resize to a given scale (mmseg ``Resize(scale, keep_ratio=True)``: mmcv ``imrescale``,
  cv2 bilinear / nearest), image and label, several image sizes and scales; ``RandomResize``'s draw;
* the crop with ``cat_max_ratio`` on given candidate boxes (accept / retry / the 11th box) and the
  crop itself (mmseg ``RandomCrop``);
* ``PhotoMetricDistortion`` with given factors, each step and both contrast positions;
* padding: mmcv ``Pad(size=crop_size)`` and ``SegDataPreProcessor(size=crop_size)`` against the
  mapper's and CPPSegmentor's padding (image in normalised space, label 255);
* the whole training pipeline with the same numpy seed draws the same samples;
* the test side: MMSegmentation's ``slide_inference`` and ``postprocess_result`` (resize back to the
  original size) against CPPSegmentor's with the same network, and the test-time resize of the
  mapper against mmseg's test pipeline on an image file.

Every comparison is exact: the project calls OpenCV and numpy the way mmcv / mmseg do, on RGB
instead of BGR images (colour conversions RGB2HSV / HSV2RGB give the values of BGR2HSV / HSV2BGR on
the channel-reversed image).
"""

import os
import types

import cv2
import numpy as np
import pytest
import torch

from mmseg_reference import import_mmseg

import_mmseg()

import mmseg.datasets.transforms.transforms as mmseg_transforms  # noqa: E402
from detectron2.data import transforms as T  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from mmcv.transforms import Compose  # noqa: E402
from mmengine.config import ConfigDict  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.models.data_preprocessor import SegDataPreProcessor  # noqa: E402
from mmseg.models.segmentors import EncoderDecoder  # noqa: E402
from mmseg.registry import TRANSFORMS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

import seethroughnet.modeling.segmentors  # noqa: E402,F401
from seethroughnet.config import build_config  # noqa: E402
from seethroughnet.data.dataset_mappers import SemanticSegmentationMapper  # noqa: E402
from seethroughnet.data.transforms import mmseg_pipeline as M  # noqa: E402
from seethroughnet.nn.sliding_window import sliding_window_inference  # noqa: E402
from seethroughnet.utils.safe_load import merge_config_file  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CFG_DIR = os.path.join(REPO, "projects/SeeThroughNet/configs/CPP-Plugin")
TINY = os.path.join(REPO, "tests/configs/cpp_plugin_tiny_overrides.yaml")
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def mmseg(transform: dict):
    return TRANSFORMS.build(transform)


def random_image(rng, h, w):
    return rng.randint(0, 256, (h, w, 3)).astype(np.uint8)


def blocky_label(rng, h, w, classes=4, block=7):
    lab = rng.randint(0, classes, (h // block + 1, w // block + 1))
    return lab.repeat(block, 0).repeat(block, 1)[:h, :w].astype(np.uint8)


def bgr(rgb):
    return np.ascontiguousarray(rgb[:, :, ::-1])


def tiny_cpp_model(config="Context/pspnet_R101_context59.yaml", *opts):
    cfg = build_config(os.path.join(CFG_DIR, config))
    merge_config_file(cfg, TINY)
    cfg.merge_from_list(list(opts))
    torch.manual_seed(0)
    return build_model(cfg), cfg


# ----------------------------------------------------------------------------------------- resize
@pytest.mark.parametrize(
    "hw", [(1024, 2048), (375, 500), (500, 333), (481, 640), (97, 131), (520, 520)]
)
@pytest.mark.parametrize("scale", [(2048, 1024), (2048, 512), (520, 520), (1023, 383), (260, 780)])
def test_keep_ratio_resize_equals_mmseg_resize(hw, scale):
    rng = np.random.RandomState(hw[0] * 7 + scale[1])
    img, lab = random_image(rng, *hw), blocky_label(rng, *hw)
    ref = mmseg(dict(type="Resize", scale=scale, keep_ratio=True))(
        dict(img=bgr(img), gt_seg_map=lab.copy(), seg_fields=["gt_seg_map"])
    )
    aug = T.AugInput(img.copy(), sem_seg=lab.copy())
    M.Rescale(scale)(aug)
    assert aug.image.shape == ref["img"].shape
    assert np.array_equal(aug.image, ref["img"][:, :, ::-1])
    assert np.array_equal(aug.sem_seg, ref["gt_seg_map"])
    assert M.keep_ratio_size(*hw, scale) == ref["img"].shape[:2]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("scale", [(2048, 1024), (2048, 512), (520, 520)])
def test_random_resize_draws_and_resizes_as_mmcv(seed, scale):
    rng = np.random.RandomState(seed)
    img, lab = random_image(rng, 150, 211), blocky_label(rng, 150, 211)
    t = mmseg(dict(type="RandomResize", scale=scale, ratio_range=(0.5, 2.0), keep_ratio=True))
    np.random.seed(seed)
    ref = t(dict(img=bgr(img), gt_seg_map=lab.copy(), seg_fields=["gt_seg_map"]))
    np.random.seed(seed)
    aug = T.AugInput(img.copy(), sem_seg=lab.copy())
    M.RandomRescale(scale, (0.5, 2.0))(aug)
    assert np.array_equal(aug.image, ref["img"][:, :, ::-1])
    assert np.array_equal(aug.sem_seg, ref["gt_seg_map"])


# ------------------------------------------------------------------------------------------- crop
class ScriptedRandint:
    """Stands in for ``np.random.randint``: returns the scripted offsets in order, records calls."""

    def __init__(self, values):
        self.values, self.calls = list(values), []

    def __call__(self, low, high=None, size=None, dtype=int):
        self.calls.append((low, high))
        value = self.values.pop(0)
        assert low <= value < high, (value, low, high)
        return value


def crop_both(monkeypatch, img, lab, crop_size, ratio, offsets):
    """The crop of MMSegmentation's RandomCrop and of CatMaxRatioCrop when np.random.randint
    returns ``offsets`` (y, x, y, x, ...); also the number of offsets each consumed."""
    fake = ScriptedRandint(offsets)
    monkeypatch.setattr(np.random, "randint", fake)
    ref = mmseg(dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=ratio))(
        dict(img=bgr(img), gt_seg_map=lab.copy(), seg_fields=["gt_seg_map"])
    )
    ref_used = len(fake.calls)
    fake = ScriptedRandint(offsets)
    monkeypatch.setattr(np.random, "randint", fake)
    aug = T.AugInput(img.copy(), sem_seg=lab.copy())
    M.CatMaxRatioCrop(crop_size, ratio, 255)(aug)
    return ref, ref_used, aug, len(fake.calls)


def test_crop_accepts_mixed_box_and_retries_dominated_boxes(monkeypatch):
    # left half class 1 only; right half classes 2 and 3 mixed; a strip of ignore at the top
    h, w = 40, 80
    lab = np.ones((h, w), np.uint8)
    lab[:, 40:] = 2
    lab[::2, 40:] = 3
    lab[:3] = 255
    img = random_image(np.random.RandomState(0), h, w)
    dominated, mixed = (0, 0), (5, 45)  # (y, x) of a 20x30 box
    assert not M.crop_is_accepted(lab[0:20, 0:30], 0.75, 255)
    assert M.crop_is_accepted(lab[5:25, 45:75], 0.75, 255)
    for boxes, expected in (
        ([mixed], mixed),  # accepted at once
        ([dominated, mixed], mixed),  # one retry
        ([dominated] * 3 + [mixed], mixed),
    ):
        offsets = [v for box in boxes for v in box]
        ref, used, aug, mine = crop_both(monkeypatch, img, lab, (20, 30), 0.75, offsets)
        assert used == mine == len(offsets)
        y, x = expected
        assert np.array_equal(ref["gt_seg_map"], lab[y : y + 20, x : x + 30])
        assert np.array_equal(aug.sem_seg, ref["gt_seg_map"])
        assert np.array_equal(aug.image, ref["img"][:, :, ::-1])


def test_crop_uses_the_eleventh_box_unchecked_after_ten_rejections(monkeypatch):
    lab = np.ones((40, 80), np.uint8)
    lab[30:, 60:] = 2  # the only mixed region
    img = random_image(np.random.RandomState(1), 40, 80)
    offsets = [0, 0] * 10 + [3, 7] + [20, 50]  # ten rejected, an 11th (also dominated), spare
    ref, used, aug, mine = crop_both(monkeypatch, img, lab, (20, 30), 0.75, offsets)
    assert used == mine == 22
    assert np.array_equal(aug.sem_seg, lab[3:23, 7:37])
    assert np.array_equal(aug.sem_seg, ref["gt_seg_map"])
    assert np.array_equal(aug.image, ref["img"][:, :, ::-1])


@pytest.mark.parametrize("ratio", [0.75, 1.0])
def test_crop_of_an_image_smaller_than_the_crop_size(monkeypatch, ratio):
    rng = np.random.RandomState(2)
    img, lab = random_image(rng, 30, 50), blocky_label(rng, 30, 50)
    ref, used, aug, mine = crop_both(monkeypatch, img, lab, (40, 40), ratio, [0, 6] * 11)
    assert used == mine
    assert aug.image.shape == ref["img"].shape == (30, 40, 3)
    assert np.array_equal(aug.image, ref["img"][:, :, ::-1])
    assert np.array_equal(aug.sem_seg, ref["gt_seg_map"])


# ------------------------------------------------------------------------------------ photometric
class ScriptedRandom:
    """Stands in for mmseg's ``random`` (numpy.random): ``randint`` / ``uniform`` return the
    scripted values in order."""

    def __init__(self, values):
        self.values = list(values)

    def randint(self, *args):
        return self.values.pop(0)

    def uniform(self, *args):
        return self.values.pop(0)


PHOTOMETRIC_CASES = {
    # name: (mmseg's scripted draws, the project's factors)
    "none": ([0, 0, 0, 0, 0], {}),
    "brightness+": ([1, 23.7, 0, 0, 0, 0], dict(brightness=23.7)),
    "brightness-": ([1, -31.2, 0, 0, 0, 0], dict(brightness=-31.2)),
    "contrast last": ([0, 0, 0, 0, 1, 1.37], dict(contrast=1.37)),
    "contrast first": ([0, 1, 1, 0.61, 0, 0], dict(contrast=0.61, contrast_first=True)),
    "saturation": ([0, 0, 1, 1.44, 0, 0], dict(saturation=1.44)),
    "desaturation": ([0, 0, 1, 0.52, 0, 0], dict(saturation=0.52)),
    "hue+": ([0, 0, 0, 1, 17, 0], dict(hue=17)),
    "hue-": ([0, 0, 0, 1, -18, 0], dict(hue=-18)),
    "all, contrast last": (
        [1, -12.5, 0, 1, 0.8, 1, 5, 1, 1.2],
        dict(brightness=-12.5, saturation=0.8, hue=5, contrast=1.2),
    ),
    "all, contrast first": (
        [1, 9.25, 1, 1, 1.3, 1, 0.7, 1, -9],
        dict(brightness=9.25, contrast=1.3, contrast_first=True, saturation=0.7, hue=-9),
    ),
}


@pytest.mark.parametrize("case", sorted(PHOTOMETRIC_CASES))
def test_photometric_distortion_with_given_factors(case, monkeypatch):
    draws, factors = PHOTOMETRIC_CASES[case]
    img = random_image(np.random.RandomState(3), 37, 53)
    img[:4] = 0  # saturated and black pixels: the clipping
    img[4:8] = 255
    monkeypatch.setattr(mmseg_transforms, "random", ScriptedRandom(draws))
    ref = mmseg(dict(type="PhotoMetricDistortion"))(dict(img=bgr(img)))["img"]
    got = M.photometric_distortion(img.copy(), **factors)
    assert np.array_equal(got, ref[:, :, ::-1])
    if case != "none":
        assert not np.array_equal(got, img)


@pytest.mark.parametrize("seed", range(20))
def test_photometric_distortion_draws_as_mmseg(seed):
    img = random_image(np.random.RandomState(seed), 24, 40)
    np.random.seed(seed)
    ref = mmseg(dict(type="PhotoMetricDistortion"))(dict(img=bgr(img)))["img"]
    np.random.seed(seed)
    aug = T.AugInput(img.copy())
    M.PhotoMetricDistortion(32, (0.5, 1.5), (0.5, 1.5), 18)(aug)
    assert np.array_equal(aug.image, ref[:, :, ::-1])


# -------------------------------------------------------------------------------------- padding
@pytest.mark.parametrize("hw", [(300, 400), (480, 200), (100, 480), (480, 480)])
def test_pixel_padding_equals_mmcv_pad(hw):
    rng = np.random.RandomState(4)
    img, lab = random_image(rng, *hw), blocky_label(rng, *hw)
    ref = mmseg(dict(type="Pad", size=(480, 480)))(
        dict(img=bgr(img), gt_seg_map=lab.copy(), seg_fields=["gt_seg_map"])
    )
    assert np.array_equal(M.pad_to_size(img, (480, 480), 0), ref["img"][:, :, ::-1])
    assert np.array_equal(M.pad_to_size(lab, (480, 480), 255), ref["gt_seg_map"])


def reference_preprocessed_batch(images, labels, crop_size):
    """MMSegmentation's SegDataPreProcessor(size=crop_size) on BGR uint8 images and labels (the
    training forward: normalise, then pad image 0 / label 255 to crop_size)."""
    pre = SegDataPreProcessor(
        mean=MEAN, std=STD, bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=crop_size
    )
    samples = []
    for lab in labels:
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.from_numpy(lab.astype(np.int64))[None])
        samples.append(s)
    data = dict(
        inputs=[torch.from_numpy(bgr(i).transpose(2, 0, 1).copy()) for i in images],
        data_samples=samples,
    )
    out = pre(data, training=True)
    return out["inputs"], torch.stack([s.gt_sem_seg.data[0] for s in out["data_samples"]])


def model_inputs(net, batch):
    """The normalised padded images the backbone of ``net`` sees and the labels the heads get."""
    seen = {}

    def keep(name, index):
        def hook(module, args):
            seen.setdefault(name, args[index])  # returns None: the inputs stay as they are

        return hook

    net.backbone.register_forward_pre_hook(keep("images", 0))
    net.aux_heads.register_forward_pre_hook(keep("labels", 1))
    net.train()
    net(batch)
    return seen["images"], seen["labels"]


def test_normalized_padding_equals_seg_data_preprocessor():
    """Pascal Context: images smaller than the crop are padded by the model after normalisation
    (value 0) and their labels with 255, as SegDataPreProcessor(size=crop_size) (a 96x96 crop
    here instead of 480x480: CPU seconds)."""
    net, cfg = tiny_cpp_model("Context/pspnet_R101_context59.yaml", "INPUT.CROP.SIZE", "(96, 96)")
    assert cfg.INPUT.PAD.MODE == "normalized"
    rng = np.random.RandomState(5)
    shapes = [(60, 96), (96, 83)]
    images = [random_image(rng, *s) for s in shapes]
    labels = [blocky_label(rng, *s, classes=59) for s in shapes]
    for lab in labels:
        lab[:9] = 255
    ref_images, ref_labels = reference_preprocessed_batch(images, labels, (96, 96))
    batch = [
        {
            "image": torch.from_numpy(i.transpose(2, 0, 1).copy()),
            "sem_seg": torch.from_numpy(lb.astype(np.int64)),
        }
        for i, lb in zip(images, labels)
    ]
    got_images, got_labels = model_inputs(net, batch)
    assert got_images.shape == ref_images.shape == (2, 3, 96, 96)
    assert torch.equal(got_images, ref_images)
    assert torch.equal(got_labels, ref_labels.to(got_labels.dtype))


def test_pixel_padding_then_model_equals_voc_aug_pipeline(tmp_path):
    """VOC-aug: mmcv Pad(size=crop_size) pads the uint8 image with 0 before normalisation (so the
    network sees -mean/std there) and the label with 255; the mapper does the same."""
    net, cfg = tiny_cpp_model("VOC/pspnet_R101_voc.yaml", "INPUT.CROP.SIZE", "(128, 128)")
    assert cfg.INPUT.PAD.MODE == "pixel"
    rng = np.random.RandomState(6)
    refs, batch = [], []
    for shape in ((50, 75), (128, 85)):  # a batch of two: training BatchNorm needs it
        img, lab = random_image(rng, *shape), blocky_label(rng, *shape, classes=21)
        refs.append(
            mmseg(dict(type="Pad", size=(128, 128)))(
                dict(img=bgr(img), gt_seg_map=lab.copy(), seg_fields=["gt_seg_map"])
            )
        )
        padded = M.pad_to_size(img, (128, 128), cfg.INPUT.PAD.PIXEL_VALUE)
        padded_lab = M.pad_to_size(lab, (128, 128), 255)
        batch.append(
            {
                "image": torch.from_numpy(padded.transpose(2, 0, 1).copy()),
                "sem_seg": torch.from_numpy(padded_lab.astype(np.int64)),
            }
        )
    ref_images, ref_labels = reference_preprocessed_batch(
        [r["img"][:, :, ::-1] for r in refs], [r["gt_seg_map"] for r in refs], (128, 128)
    )
    got_images, got_labels = model_inputs(net, batch)
    assert torch.equal(got_images, ref_images)
    assert torch.equal(got_labels, ref_labels.to(got_labels.dtype))
    assert (got_images[0, :, 50:, 75:] < 0).all()  # black padding: -mean/std, not 0


# -------------------------------------------------------------------- the whole training pipeline
def test_seeded_training_pipeline_draws_the_same_samples_as_mmseg():
    """RandomResize -> RandomCrop(cat_max_ratio) -> RandomFlip -> PhotoMetricDistortion: with the
    same numpy seed the project's augmentations make the same random draws in the same order."""
    ref = Compose(
        [
            mmseg(t)
            for t in (
                dict(
                    type="RandomResize", scale=(520, 520), ratio_range=(0.5, 2.0), keep_ratio=True
                ),
                dict(type="RandomCrop", crop_size=(128, 160), cat_max_ratio=0.75),
                dict(type="RandomFlip", prob=0.5),
                dict(type="PhotoMetricDistortion"),
            )
        ]
    )
    ours = T.AugmentationList(
        [
            M.RandomRescale((520, 520), (0.5, 2.0)),
            M.CatMaxRatioCrop((128, 160), 0.75, 255),
            M.RandomFlip(0.5),
            M.PhotoMetricDistortion(32, (0.5, 1.5), (0.5, 1.5), 18),
        ]
    )
    rng = np.random.RandomState(7)
    flips = 0
    for seed in range(25):
        h, w = rng.randint(60, 260), rng.randint(60, 260)
        img, lab = random_image(rng, h, w), blocky_label(rng, h, w, classes=3, block=11)
        lab[:4] = 255
        np.random.seed(seed)
        r = ref(dict(img=bgr(img), gt_seg_map=lab.copy(), seg_fields=["gt_seg_map"]))
        np.random.seed(seed)
        aug = T.AugInput(img.copy(), sem_seg=lab.copy())
        ours(aug)
        assert np.array_equal(aug.image, r["img"][:, :, ::-1]), seed
        assert np.array_equal(aug.sem_seg, r["gt_seg_map"]), seed
        flips += bool(r["flip"])
    assert 0 < flips < 25  # both branches of the flip were compared


# --------------------------------------------------------------------------------- the test side
def reference_slide(encode_decode, images, crop_size, stride, num_classes):
    """MMSegmentation's EncoderDecoder.slide_inference with ``encode_decode`` as the network."""
    fake = types.SimpleNamespace(
        test_cfg=ConfigDict(mode="slide", crop_size=crop_size, stride=stride),
        out_channels=num_classes,
        encode_decode=lambda crop, metas: encode_decode(crop),
    )
    metas = [dict(img_shape=images.shape[-2:], ori_shape=images.shape[-2:])]
    return EncoderDecoder.slide_inference(fake, images, metas)


@pytest.mark.parametrize(
    "hw,crop,stride",
    [
        ((520, 693), (480, 480), (320, 320)),
        ((390, 520), (480, 480), (320, 320)),
        ((300, 200), (480, 480), (320, 320)),
        ((97, 131), (32, 48), (20, 17)),
        ((64, 64), (64, 64), (64, 64)),
    ],
)
def test_sliding_window_equals_mmseg_slide_inference(hw, crop, stride):
    g = torch.Generator().manual_seed(8)
    images = torch.randn(2, 3, *hw, generator=g)
    weight = torch.randn(5, 3, 3, 3, generator=g)

    def network(x):  # position-dependent, so that misplaced windows show
        y = torch.nn.functional.conv2d(x, weight, padding=1)
        return y + x.shape[-1] * 0.01 + x.mean()

    ref = reference_slide(network, images, crop, stride, 5)
    got = sliding_window_inference(images, network, crop, stride)
    assert torch.equal(got, ref)


def reference_postprocess(logits, ori_shape):
    fake = types.SimpleNamespace(align_corners=False)
    sample = SegDataSample(metainfo=dict(ori_shape=ori_shape, img_shape=logits.shape[-2:]))
    return EncoderDecoder.postprocess_result(fake, logits, [sample])[0].seg_logits.data


def _image_file(tmp_path, img):
    path = str(tmp_path / "image.png")
    assert cv2.imwrite(path, bgr(img))
    return path


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_test_time_resize_inference_and_resize_back_equal_mmseg(mode, tmp_path):
    """One test image through the mapper (keep-ratio resize to a test scale, as Context's 520x520)
    and CPPSegmentor (whole image or windows as Context's 480x480 every 320, scaled down for CPU
    seconds; then the logits resized to the original size) against mmseg's test pipeline
    (LoadImageFromFile, Resize) and its whole / slide inference + postprocess_result with the same
    network."""
    net, cfg = tiny_cpp_model(
        "Context/pspnet_R101_context59.yaml",
        "TEST.CPP_SEGMENTOR.MODE",
        mode,
        "TEST.CPP_SEGMENTOR.CROP_SIZE",
        "(48, 48)",
        "TEST.CPP_SEGMENTOR.STRIDE",
        "(32, 32)",
        "INPUT.RESIZE.TEST_SCALE",
        "(100, 100)",
    )
    net.eval()
    img = random_image(np.random.RandomState(9), 75, 106)
    path = _image_file(tmp_path, img)
    mapper = SemanticSegmentationMapper(cfg, is_train=False, dataset_name="mmseg_pipeline_test")
    d = mapper({"file_name": path, "height": 75, "width": 106})
    ref_pipe = Compose(
        [
            mmseg(dict(type="LoadImageFromFile")),
            mmseg(dict(type="Resize", scale=(100, 100), keep_ratio=True)),
        ]
    )
    r = ref_pipe(dict(img_path=path))
    assert np.array_equal(d["image"].numpy().transpose(1, 2, 0), r["img"][:, :, ::-1])
    with torch.no_grad():
        got = net([d])[0]["sem_seg"]
        pre = SegDataPreProcessor(mean=MEAN, std=STD, bgr_to_rgb=True)
        x = pre(dict(inputs=[torch.from_numpy(r["img"].transpose(2, 0, 1).copy())]))["inputs"]
        if mode == "slide":
            logits = reference_slide(net.encode_decode, x, (48, 48), (32, 32), 59)
        else:
            logits = net.encode_decode(x)
        ref = reference_postprocess(logits, r["ori_shape"])
    assert got.shape == ref.shape == (59, 75, 106)
    assert torch.equal(got, ref)


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_mapper_reads_and_resizes_a_test_image_as_mmseg(ext, tmp_path):
    """detectron2 reads images with Pillow, MMSegmentation with OpenCV: the decoded and resized
    test image is the same (VOC and Context images are JPEG files)."""
    cfg = build_config(os.path.join(CFG_DIR, "VOC/pspnet_R101_voc.yaml"))
    rng = np.random.RandomState(10)
    img = cv2.GaussianBlur(random_image(rng, 75, 100), (5, 5), 2)
    path = str(tmp_path / f"image.{ext}")
    assert cv2.imwrite(path, bgr(img))
    mapper = SemanticSegmentationMapper(cfg, is_train=False, dataset_name="mmseg_pipeline_test")
    d = mapper({"file_name": path, "height": 75, "width": 100})
    ref = Compose(
        [
            mmseg(dict(type="LoadImageFromFile")),
            mmseg(dict(type="Resize", scale=(2048, 512), keep_ratio=True)),
        ]
    )(dict(img_path=path))
    assert d["image"].shape == (3, 512, 683)
    assert np.array_equal(d["image"].numpy().transpose(1, 2, 0), ref["img"][:, :, ::-1])
