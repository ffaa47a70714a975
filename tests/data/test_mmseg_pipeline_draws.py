"""MMSegmentation's pipeline in the project (``INPUT.PIPELINE "mmseg"``,
seethroughnet/data/transforms/mmseg_pipeline.py), route A (no MMSegmentation installed; the step-by-
step equality with MMSegmentation's transforms is tests/mmseg/test_mmseg_pipeline.py):

* the random draws, by seeded statistics: the resize ratio is uniform on [0.5, 2.0) (not 13 fixed
  values), the flip rate is 1/2, each photometric step runs with probability 1/2 and draws its
  factor from its range (hue -18..17), the crop redraws dominated boxes;
* the mapper on a tiny dataset of image files: training samples are crop-sized (pixel padding)
  or at most crop-sized (normalised padding, done by the model), test images are resized with
  their ratio kept;
* a bad value of any new key is one clear message naming the key; the detectron2 pipeline of the
  other configs is unchanged.
"""

import os

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("detectron2")

from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import transforms as T  # noqa: E402

from seethroughnet.config import add_seethroughnet_config, build_config  # noqa: E402
from seethroughnet.data.dataset_mappers import SemanticSegmentationMapper  # noqa: E402
from seethroughnet.data.dataset_mappers.semantic_segmentation_mapper import (  # noqa: E402
    build_test_augmentations,
    build_train_augmentations,
)
from seethroughnet.data.transforms import mmseg_pipeline as M  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CFG_DIR = os.path.join(REPO, "projects/SeeThroughNet/configs/CPP-Plugin")


def mmseg_cfg(*opts):
    cfg = add_seethroughnet_config(get_cfg())
    cfg.merge_from_list(
        [
            "INPUT.PIPELINE",
            "mmseg",
            "INPUT.FORMAT",
            "RGB",
            "INPUT.CROP.ENABLED",
            "True",
            "INPUT.CROP.TYPE",
            "absolute",
            "INPUT.CROP.SIZE",
            "(32, 48)",
            "MODEL.SEM_SEG_HEAD.NUM_CLASSES",
            "4",
            "MODEL.SEM_SEG_HEAD.IGNORE_VALUE",
            "255",
            *opts,
        ]
    )
    return cfg


# --------------------------------------------------------------------------------- random draws
def test_resize_ratio_is_uniform_on_the_range():
    np.random.seed(0)
    n = 4000
    ratios = np.array(
        [M.random_rescale_scale((2048, 1024), (0.5, 2.0))[0] / 2048 for _ in range(n)]
    )
    assert ratios.min() >= 0.5 and ratios.max() < 2.0
    assert len(np.unique(ratios)) > 1000  # a continuous draw, not 13 fixed ratios
    # uniform on [0.5, 2.0): mean 1.25, quartiles 0.875 / 1.25 / 1.625, each decile ~n/10
    assert abs(ratios.mean() - 1.25) < 0.02
    assert np.allclose(np.percentile(ratios, [25, 50, 75]), [0.875, 1.25, 1.625], atol=0.04)
    counts = np.histogram(ratios, bins=10, range=(0.5, 2.0))[0]
    assert counts.min() > 0.85 * n / 10 and counts.max() < 1.15 * n / 10


def test_random_rescale_keeps_the_ratio_and_bounds_both_sides():
    """Context (520, 520): the longer side becomes 520 r; Cityscapes / VOC (2048, 512): the shorter
    side 512 r unless the longer one would pass 2048 r."""
    np.random.seed(1)
    img = np.zeros((375, 500, 3), np.uint8)
    for _ in range(50):
        t = M.RandomRescale((520, 520), (0.5, 2.0)).get_transform(img)
        assert 260 <= t.new_w <= 1040 and abs(t.new_h / t.new_w - 0.75) < 0.01
    assert M.keep_ratio_size(375, 500, (520, 520)) == (390, 520)
    assert M.keep_ratio_size(375, 500, (2048, 512)) == (512, 683)
    assert M.keep_ratio_size(100, 1000, (2048, 512)) == (205, 2048)  # the longer side binds
    assert M.keep_ratio_size(1024, 2048, (2048, 1024)) == (1024, 2048)


def test_flip_rate_is_one_half():
    np.random.seed(2)
    img = np.zeros((4, 6, 3), np.uint8)
    flips = [
        isinstance(M.RandomFlip(0.5).get_transform(img), T.HFlipTransform) for _ in range(4000)
    ]
    assert abs(np.mean(flips) - 0.5) < 0.03
    assert not any(isinstance(M.RandomFlip(0.0).get_transform(img), T.HFlipTransform) for _ in "ab")


def test_photometric_draws_each_step_with_probability_one_half_within_its_range():
    np.random.seed(3)
    aug = M.PhotoMetricDistortion(32, (0.5, 1.5), (0.5, 1.5), 18)
    img = np.zeros((2, 2, 3), np.uint8)
    ts = [aug.get_transform(img) for _ in range(4000)]
    for name in ("brightness", "contrast", "saturation", "hue"):
        drawn = [getattr(t, name) for t in ts if getattr(t, name) is not None]
        assert abs(len(drawn) / len(ts) - 0.5) < 0.03, name
    assert abs(np.mean([t.contrast_first for t in ts]) - 0.5) < 0.03
    b = [t.brightness for t in ts if t.brightness is not None]
    c = [t.contrast for t in ts if t.contrast is not None]
    s = [t.saturation for t in ts if t.saturation is not None]
    h = [t.hue for t in ts if t.hue is not None]
    assert -32 <= min(b) < -30 and 30 < max(b) <= 32 and abs(np.mean(b)) < 1.5
    assert 0.5 <= min(c) < 0.52 and 1.48 < max(c) <= 1.5
    assert 0.5 <= min(s) < 0.52 and 1.48 < max(s) <= 1.5
    # numpy's randint(-18, 18) excludes 18: MMSegmentation's hue shifts are -18..17
    assert sorted(set(h)) == list(range(-18, 18))


def test_photometric_steps_change_the_image_as_named():
    rng = np.random.RandomState(4)
    img = rng.randint(40, 200, (16, 16, 3)).astype(np.uint8)
    assert np.array_equal(M.photometric_distortion(img), img)
    brighter = M.photometric_distortion(img, brightness=20.0)
    assert np.array_equal(brighter.astype(int), img.astype(int) + 20)
    flat = M.photometric_distortion(img, contrast=0.5)
    assert np.array_equal(flat, (img.astype(np.float32) * 0.5).astype(np.uint8))
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    grey = cv2.cvtColor(M.photometric_distortion(img, saturation=0.5), cv2.COLOR_RGB2HSV)
    assert grey[..., 1].mean() < 0.6 * hsv[..., 1].mean()
    assert not np.array_equal(M.photometric_distortion(img, hue=10), img)
    # the contrast position matters once brightness clips
    a = M.photometric_distortion(img, brightness=30.0, contrast=1.5, contrast_first=True)
    b = M.photometric_distortion(img, brightness=30.0, contrast=1.5, contrast_first=False)
    assert a.shape == b.shape == img.shape and a.dtype == np.uint8


def test_crop_redraws_dominated_boxes_and_gives_up_after_ten():
    lab = np.zeros((40, 80), np.uint8)
    lab[:, 60:] = 1  # only boxes reaching x >= 60 hold two classes
    img = np.zeros((40, 80, 3), np.uint8)
    np.random.seed(5)

    def accepted_rate(cat_max_ratio):
        crop = M.CatMaxRatioCrop((20, 30), cat_max_ratio, 255)
        ok = 0
        for _ in range(400):
            t = crop.get_transform(img, lab)
            ok += M.crop_is_accepted(lab[t.y0 : t.y0 + 20, t.x0 : t.x0 + 30], 0.75, 255)
        return ok / 400

    # one box passes with p = 13/51 (x0 in 38..50 of 0..50: class 1 covers 0.27..0.67 of it);
    # up to 10 checked boxes and an 11th unchecked: 1 - (38/51)^11 ~ 0.96 pass
    assert 0.2 < accepted_rate(1.0) < 0.31  # cat_max_ratio 1: one box, no check
    assert 0.92 < accepted_rate(0.75) < 0.99
    crop = M.CatMaxRatioCrop((20, 30), 0.75, 255)
    only_one_class = np.zeros((40, 80), np.uint8)
    t = crop.get_transform(img, only_one_class)  # never acceptable: the 11th box is used
    assert (t.h, t.w) == (20, 30)
    assert not M.crop_is_accepted(np.full((5, 5), 255), 0.75, 255)  # ignore only
    assert M.crop_is_accepted(np.array([[0, 1], [255, 255]]), 0.75, 255)


def test_pad_to_size():
    img = np.full((3, 5, 3), 7, np.uint8)
    out = M.pad_to_size(img, (6, 4), 0)
    assert out.shape == (6, 5, 3) and (out[:3] == 7).all() and (out[3:] == 0).all()
    lab = np.zeros((3, 5), np.uint8)
    out = M.pad_to_size(lab, (4, 8), 255)
    assert out.shape == (4, 8) and (out[3:] == 255).all() and (out[:, 5:] == 255).all()


# ----------------------------------------------------------------------------------- the mapper
@pytest.fixture
def tiny_dataset(tmp_path):
    """Three image / label files (RGB PNG, uint8 label with ignore 255), of sizes around the
    (32, 48) crop of :func:`mmseg_cfg`."""
    rng = np.random.RandomState(6)
    records = []
    for i, (h, w) in enumerate([(40, 64), (24, 30), (60, 36)]):
        img = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
        lab = rng.randint(0, 4, (h, w)).astype(np.uint8)
        lab[0] = 255
        ip, lp = str(tmp_path / f"{i}.png"), str(tmp_path / f"{i}_label.png")
        cv2.imwrite(ip, img[:, :, ::-1])
        cv2.imwrite(lp, lab)
        records.append({"file_name": ip, "sem_seg_file_name": lp, "height": h, "width": w})
    return records


def test_mapper_pixel_padding_gives_crop_sized_samples(tiny_dataset):
    cfg = mmseg_cfg("INPUT.PAD.MODE", "pixel", "INPUT.RESIZE.TRAIN_SCALE", "(48, 32)")
    mapper = SemanticSegmentationMapper(cfg, is_train=True, dataset_name="mmseg_pipeline_draws")
    np.random.seed(7)
    padded = 0
    for _ in range(6):
        for record in tiny_dataset:
            d = mapper(record)
            assert d["image"].shape == (3, 32, 48) and d["image"].dtype == torch.uint8
            assert d["sem_seg"].shape == (32, 48) and d["sem_seg"].dtype == torch.int64
            # an image resized below the crop is padded at the bottom / right: pixels 0, label 255
            padded += bool((d["sem_seg"][-1] == 255).all() and (d["image"][:, -1] == 0).all())
            assert set(d["sem_seg"].unique().tolist()) <= {0, 1, 2, 3, 255}
    assert padded > 0  # ratios below 1 give images smaller than the crop: padded, label 255


def test_mapper_normalized_padding_leaves_it_to_the_model(tiny_dataset):
    cfg = mmseg_cfg("INPUT.PAD.MODE", "normalized", "INPUT.RESIZE.TRAIN_SCALE", "(48, 32)")
    mapper = SemanticSegmentationMapper(cfg, is_train=True, dataset_name="mmseg_pipeline_draws")
    np.random.seed(8)
    shapes = set()
    for _ in range(6):
        for record in tiny_dataset:
            d = mapper(record)
            assert d["image"].shape[1:] == d["sem_seg"].shape
            assert d["sem_seg"].shape[0] <= 32 and d["sem_seg"].shape[1] <= 48
            shapes.add(tuple(d["sem_seg"].shape))
    assert (32, 48) in shapes and len(shapes) > 1


def test_mapper_test_resize_keeps_the_ratio_and_the_label(tiny_dataset):
    cfg = mmseg_cfg("INPUT.RESIZE.TEST_SCALE", "(100, 100)")
    mapper = SemanticSegmentationMapper(cfg, is_train=False, dataset_name="mmseg_pipeline_draws")
    d = mapper(dict(tiny_dataset[0]))
    assert d["image"].shape == (3, 63, 100)  # 40x64 -> longer side 100
    # predictions are resized to the original size and compared with the label file there
    assert (d["height"], d["width"]) == (40, 64)


def test_detectron2_pipeline_is_unchanged():
    cfg = build_config(os.path.join(CFG_DIR, "CamVid-CPU/pspnet_R18_camvid.yaml"))
    assert cfg.INPUT.PIPELINE == "detectron2" and cfg.INPUT.PAD.MODE == "none"
    kinds = [type(a).__name__ for a in build_train_augmentations(cfg)]
    assert kinds == ["ResizeShortestEdge", "RandomCrop_CategoryAreaConstraint", "RandomFlip"]
    assert [type(a).__name__ for a in build_test_augmentations(cfg)] == ["ResizeShortestEdge"]


@pytest.mark.parametrize(
    "config,pad,test_mode",
    [
        ("pspnet_R101_cityscapes.yaml", "normalized", "whole"),
        ("VOC/pspnet_R101_voc.yaml", "pixel", "whole"),
        ("Context/pspnet_R101_context59.yaml", "normalized", "slide"),
    ],
)
def test_table1_configs_use_the_mmseg_pipeline(config, pad, test_mode):
    cfg = build_config(os.path.join(CFG_DIR, config))
    assert cfg.INPUT.PIPELINE == "mmseg" and cfg.INPUT.PAD.MODE == pad
    assert cfg.TEST.CPP_SEGMENTOR.MODE == test_mode
    kinds = [type(a).__name__ for a in build_train_augmentations(cfg)]
    assert kinds == ["RandomRescale", "CatMaxRatioCrop", "RandomFlip", "PhotoMetricDistortion"]
    assert [type(a).__name__ for a in build_test_augmentations(cfg)] == ["Rescale"]


# ------------------------------------------------------------------------------ bad config values
@pytest.mark.parametrize(
    "key,value",
    [
        ("INPUT.PIPELINE", "mmsegmentation"),
        ("INPUT.COLOR_AUG", "True"),
        ("INPUT.PAD.MODE", "zero"),
        ("INPUT.RESIZE.TRAIN_SCALE", "(2048,)"),
        ("INPUT.RESIZE.TEST_SCALE", "(0, 512)"),
        ("INPUT.RESIZE.RATIO_RANGE", "(2.0, 0.5)"),
        ("INPUT.FLIP_PROB", "1.5"),
        ("INPUT.CROP.TYPE", "relative"),
        ("INPUT.CROP.SIZE", "(512.5, 512)"),
        ("INPUT.CROP.SINGLE_CATEGORY_MAX_AREA", "0.0"),
        ("INPUT.PHOTOMETRIC.BRIGHTNESS_DELTA", "-1"),
        ("INPUT.PHOTOMETRIC.CONTRAST_RANGE", "(1.5, 0.5)"),
        ("INPUT.PHOTOMETRIC.SATURATION_RANGE", "(0.5,)"),
        ("INPUT.PHOTOMETRIC.HUE_DELTA", "200"),
    ],
)
def test_a_bad_value_names_its_key(key, value):
    cfg = mmseg_cfg(key, value)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        build_train_augmentations(cfg)


def test_photometric_needs_rgb_and_padding_needs_a_crop():
    with pytest.raises(ValueError, match=r"INPUT\.FORMAT"):
        build_train_augmentations(mmseg_cfg("INPUT.FORMAT", "BGR"))
    with pytest.raises(ValueError, match=r"INPUT\.PAD\.MODE .*INPUT\.CROP\.ENABLED"):
        build_train_augmentations(
            mmseg_cfg("INPUT.PAD.MODE", "pixel", "INPUT.CROP.ENABLED", "False")
        )
