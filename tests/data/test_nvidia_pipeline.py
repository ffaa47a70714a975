"""Tao et al.'s [41] training pipeline in the project (``INPUT.PIPELINE "nvidia"``,
seethroughnet/data/transforms/nvidia_pipeline.py) and optimiser (the W48 configs), route A.

Each step against an independent computation written here from [41]'s behaviour
(NVIDIA/semantic-segmentation transforms/joint_transforms.py RandomSizeAndCrop / RandomCrop,
transforms/transforms.py ColorJitter / RandomGaussianBlur, loss/optimizer.py): PIL operations
and explicit draws in [41]'s order (``random.uniform`` scale, ``random.randint`` x then y,
``random.random`` flip, ``np.random.uniform`` jitter factors then ``np.random.shuffle``), so a
seeded run must give identical arrays."""

import os
import random

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

pytest.importorskip("detectron2")

from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import transforms as T  # noqa: E402

from seethroughnet.config import add_seethroughnet_config, build_config  # noqa: E402
from seethroughnet.data.dataset_mappers import SemanticSegmentationMapper  # noqa: E402
from seethroughnet.data.dataset_mappers.semantic_segmentation_mapper import (  # noqa: E402
    build_train_augmentations,
)
from seethroughnet.data.transforms import nvidia_pipeline as N  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
W48 = os.path.join(
    REPO, "projects/SeeThroughNet/configs/Cityscapes/seethroughnet_W48_cityscapes_fine.yaml"
)
MAPILLARY = os.path.join(
    REPO, "projects/SeeThroughNet/configs/Mapillary/seethroughnet_W48_mapillary_pretrain.yaml"
)


def sample(h=30, w=50, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    lab = rng.integers(0, 5, (h, w), dtype=np.uint8)
    return img, lab


def reference_size_and_crop(img, lab, crop_hw, scale_range, pre_size, centroid, ignore=255):
    """[41]'s RandomSizeAndCrop + RandomCrop(nopad=False) written from its behaviour on PIL
    images; draws from Python's ``random``."""
    pil_img, pil_lab = Image.fromarray(img), Image.fromarray(lab)
    s = random.uniform(*scale_range)
    if pre_size:
        w0, h0 = pil_img.size
        s *= pre_size / (w0 if w0 > h0 else h0)
    w, h = [int(v * s) for v in pil_img.size]
    if centroid is not None:
        centroid = [int(c * s) for c in centroid]
    pil_img = pil_img.resize((w, h), Image.BICUBIC)
    pil_lab = pil_lab.resize((w, h), Image.NEAREST)
    th, tw = crop_hw
    if (w, h) == (tw, th):
        return np.asarray(pil_img), np.asarray(pil_lab)
    ph = (th - h) // 2 + 1 if th > h else 0
    pw = (tw - w) // 2 + 1 if tw > w else 0
    if ph or pw:
        pil_img = ImageOps.expand(pil_img, border=(pw, ph, pw, ph), fill=(0, 0, 0))
        pil_lab = ImageOps.expand(pil_lab, border=(pw, ph, pw, ph), fill=ignore)
        w, h = pil_img.size
    if centroid is not None:
        x1 = min(w - tw, max(0, random.randint(centroid[0] - tw, centroid[0])))
        y1 = min(h - th, max(0, random.randint(centroid[1] - th, centroid[1])))
    else:
        x1 = 0 if w == tw else random.randint(0, w - tw)
        y1 = 0 if h == th else random.randint(0, h - th)
    box = (x1, y1, x1 + tw, y1 + th)
    return np.asarray(pil_img.crop(box)), np.asarray(pil_lab.crop(box))


def run_aug(aug, img, lab, centroid=None):
    aug_input = T.AugInput(img.copy(), sem_seg=lab.copy())
    aug_input.class_uniform_centroid = centroid
    aug(aug_input)
    return aug_input.image, aug_input.sem_seg


@pytest.mark.parametrize(
    "crop, scale_range, pre_size, centroid",
    [
        ((20, 30), (0.5, 2.0), 0, None),  # larger or smaller than the crop, by the draw
        ((20, 30), (1.5, 2.0), 0, (1, 40, 25)),  # centroid near the bottom-right
        ((20, 30), (1.2, 1.2), 0, (2, 3, 2)),  # centroid in the corner: clamped crop
        ((40, 80), (0.5, 1.0), 0, (0, 20, 10)),  # always smaller: padded on both sides
        ((40, 80), (0.5, 1.0), 0, None),
        ((20, 30), (0.5, 2.0), 64, (3, 10, 20)),  # pre_size: long edge 50 -> 64 first
        ((30, 50), (1.0, 1.0), 0, (0, 5, 5)),  # exactly the crop's size: no crop, no draw
    ],
)
def test_random_size_and_crop_equals_the_reference_on_the_same_draws(
    crop, scale_range, pre_size, centroid
):
    aug = N.RandomSizeAndCrop(crop, scale_range, pre_size, 0, 255)
    for seed in range(12):
        img, lab = sample(seed=seed)
        random.seed(seed)
        got = run_aug(aug, img, lab, centroid)
        after = random.random()
        random.seed(seed)
        want = reference_size_and_crop(
            img, lab, crop, scale_range, pre_size, None if centroid is None else centroid[1:]
        )
        assert random.random() == after  # the same number of draws
        assert got[0].shape == want[0].shape and np.array_equal(got[0], want[0])
        assert np.array_equal(got[1], want[1])


def test_the_crop_covers_the_centroid_and_padding_is_zero_and_ignore():
    img, lab = sample(h=30, w=50)
    lab[:] = 1
    # [41]'s crop starts at x0 in [cx - crop_w, cx] and spans [x0, x0 + crop_w): it holds column
    # cx, or cx - 1 when x0 = cx - crop_w (rows likewise); a 2x2 block at (cx - 1 .. cx, cy - 1 ..
    # cy) is therefore always in the crop, the centroid pixel itself not always
    lab[23:25, 43:45] = 4
    aug = N.RandomSizeAndCrop((10, 10), (1.0, 1.0), 0, 0, 255)
    with_centroid_pixel = 0
    for seed in range(60):
        random.seed(seed)
        origin = N.draw_crop_origin(50, 30, 10, 10, (44, 24))
        random.seed(seed)
        _, out = run_aug(aug, img, lab, (4, 44, 24))
        assert (out == 4).sum() >= 1
        assert 34 <= origin[0] <= 40 and 14 <= origin[1] <= 20  # clamped to the image: x0 <= 40
        with_centroid_pixel += origin[0] <= 44 < origin[0] + 10 and origin[1] <= 24 < origin[1] + 10
    assert 45 <= with_centroid_pixel < 60
    # smaller than the crop: (crop - side) // 2 + 1 on both ends, image 0, label ignore
    assert N.crop_padding(50, 30, 40, 80) == (16, 6)
    assert N.crop_padding(50, 30, 30, 50) == (0, 0)
    padded = N.pad_both_sides(lab, 16, 6, 255)
    assert padded.shape == (42, 82) and (padded[:6] == 255).all() and (padded[:, -16:] == 255).all()
    assert np.array_equal(padded[6:36, 16:66], lab)
    tfm = N.PadBothSidesTransform(3, 2, 0, 255)
    assert (tfm.apply_image(img)[:2] == 0).all() and (
        tfm.apply_segmentation(lab)[:, :3] == 255
    ).all()


def test_resize_is_bicubic_for_images_and_nearest_for_labels():
    img, lab = sample(h=17, w=23)
    want = np.asarray(Image.fromarray(img).resize((41, 29), Image.BICUBIC))
    assert np.array_equal(N.resize_image(img, 41, 29), want)
    assert not np.array_equal(
        want, np.asarray(Image.fromarray(img).resize((41, 29), Image.BILINEAR))
    )
    got = N.resize_label(lab, 41, 29)
    # nearest: every output value is an input value at the PIL nearest position
    ys = np.minimum(((np.arange(29) + 0.5) * 17 / 29).astype(int), 16)
    xs = np.minimum(((np.arange(41) + 0.5) * 23 / 41).astype(int), 22)
    assert np.array_equal(got, lab[ys][:, xs])


def reference_hue(pil, factor):
    h, s, v = pil.convert("HSV").split()
    np_h = np.array(h, dtype=np.uint8)
    np_h = (np_h.astype(np.int64) + int(factor * 255)) % 256  # a cyclic shift of the hue byte
    return Image.merge("HSV", (Image.fromarray(np_h.astype(np.uint8), "L"), s, v)).convert("RGB")


def reference_jitter(img, steps):
    pil = Image.fromarray(img)
    for name, f in steps:
        if name == "brightness":
            pil = ImageEnhance.Brightness(pil).enhance(f)
        elif name == "contrast":
            pil = ImageEnhance.Contrast(pil).enhance(f)
        elif name == "saturation":
            pil = ImageEnhance.Color(pil).enhance(f)
        else:
            pil = reference_hue(pil, f)
    return np.asarray(pil)


@pytest.mark.parametrize(
    "steps",
    [
        [("brightness", 1.2), ("contrast", 0.8), ("saturation", 1.1), ("hue", 0.2)],
        [("hue", -0.23), ("saturation", 0.76), ("brightness", 0.9), ("contrast", 1.25)],
        [("contrast", 1.0), ("hue", 0.0)],
    ],
)
def test_color_jitter_with_given_factors_equals_pil_operations(steps):
    img, _ = sample(h=20, w=20, seed=3)
    assert np.array_equal(N.color_jitter(img, steps), reference_jitter(img, steps))


def test_color_jitter_draws_the_reference_factors_and_order():
    """np.random.uniform per step in brightness, contrast, saturation, hue order (ranges
    [0.75, 1.25] and [-0.25, 0.25]), then np.random.shuffle of the four steps."""
    for seed in range(20):
        np.random.seed(seed)
        got = N.draw_color_jitter(0.25, 0.25, 0.25, 0.25)
        np.random.seed(seed)
        factors = [np.random.uniform(0.75, 1.25) for _ in range(3)] + [
            np.random.uniform(-0.25, 0.25)
        ]
        steps = list(zip(("brightness", "contrast", "saturation", "hue"), factors))
        np.random.shuffle(steps)
        assert got == [(n, float(f)) for n, f in steps]
    np.random.seed(0)
    assert [n for n, _ in N.draw_color_jitter(0.0, 0.3, 0.0, 0.0)] == ["contrast"]


def reference_gaussian(img, sigma):
    """scikit-image's gaussian(multichannel=True) on a uint8 image, written out: floats in [0, 1],
    a separable kernel exp(-x^2 / 2 sigma^2) of radius int(4 sigma + 0.5), normalised, edges
    replicated ("nearest"); times 255, truncated to uint8."""
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    f = img.astype(np.float64) / 255.0
    p = np.pad(f, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    rows = sum(k[i] * p[i : i + f.shape[0]] for i in range(2 * radius + 1))
    out = sum(k[j] * rows[:, j : j + f.shape[1]] for j in range(2 * radius + 1))
    return (out * 255).astype(np.uint8)


@pytest.mark.parametrize("sigma", [0.15, 0.7, 1.3])
def test_gaussian_blur_equals_the_written_out_filter(sigma):
    img, _ = sample(h=16, w=21, seed=5)
    got, want = N.gaussian_blur(img, sigma), reference_gaussian(img, sigma)
    # float summation order may move a value across an integer: at most 1 grey level, rarely
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert (got != want).mean() < 0.01
    random.seed(4)
    s = N.draw_blur_sigma()
    random.seed(4)
    assert s == 0.15 + random.random() * 1.15


def test_flip_draws_random_random():
    img, lab = sample()
    for seed in range(10):
        random.seed(seed)
        flipped = random.random() < 0.5
        random.seed(seed)
        out_img, out_lab = run_aug(N.RandomFlip(0.5), img, lab)
        assert np.array_equal(out_img, img[:, ::-1] if flipped else img)
        assert np.array_equal(out_lab, lab[:, ::-1] if flipped else lab)


# ---------------------------------------------------------------------------- configs, mapper
def test_w48_configs_use_the_reference_recipe():
    c = build_config(W48)
    assert c.INPUT.PIPELINE == "nvidia" and not c.INPUT.COLOR_AUG
    assert tuple(c.INPUT.NVIDIA.SCALE_RANGE) == (0.5, 2.0)
    assert tuple(c.INPUT.NVIDIA.COLOR_JITTER) == (0.25, 0.25, 0.25, 0.25)
    assert tuple(c.INPUT.CROP.SIZE) == (1024, 2048) and not c.INPUT.NVIDIA.GAUSSIAN_BLUR
    cu = c.DATALOADER.CLASS_UNIFORM
    assert cu.ENABLED and cu.PCT == 0.5 and cu.TILE == 1024
    s = c.SOLVER
    assert s.WEIGHT_DECAY == s.WEIGHT_DECAY_NORM == s.WEIGHT_DECAY_BIAS == 1e-4
    assert s.MOMENTUM == 0.9 and not s.NESTEROV and s.WARMUP_ITERS == 0
    assert s.POLY_LR_POWER == 2.0 and s.BASE_LR == 0.005
    m = build_config(MAPILLARY)
    assert m.INPUT.NVIDIA.PRE_SIZE == 2177 and m.INPUT.NVIDIA.GAUSSIAN_BLUR
    assert tuple(m.INPUT.CROP.SIZE) == (1024, 1024) and m.DATALOADER.CLASS_UNIFORM.ENABLED
    assert m.SOLVER.POLY_LR_POWER == 1.0
    names = [type(a).__name__ for a in build_train_augmentations(m)]
    assert names == ["RandomSizeAndCrop", "RandomFlip", "ColorJitter", "RandomGaussianBlur"]


def test_w48_optimizer_decays_every_parameter_norms_and_biases_included():
    """[41]'s loss/optimizer.py: SGD(net.parameters(), lr, weight_decay, momentum 0.9)."""
    from detectron2.solver import build_optimizer

    c = build_config(W48)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    opt = build_optimizer(c, model)
    decays = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert len(decays) == 4 and set(decays.values()) == {1e-4}
    assert {g["lr"] for g in opt.param_groups} == {0.005}
    assert {g["momentum"] for g in opt.param_groups} == {0.9}


def test_mapper_crops_to_the_crop_size_with_the_centroid(tmp_path):
    img, lab = sample(h=32, w=48)
    lab[:] = 0
    lab[28:30, 40:42] = 3
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(lab).save(tmp_path / "a_label.png")
    cfg = add_seethroughnet_config(get_cfg())
    cfg.INPUT.PIPELINE, cfg.INPUT.FORMAT = "nvidia", "RGB"
    cfg.INPUT.CROP.ENABLED, cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE = True, "absolute", (8, 8)
    cfg.INPUT.NVIDIA.SCALE_RANGE = (1.0, 1.0)
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 4
    mapper = SemanticSegmentationMapper(
        True,
        augmentations=build_train_augmentations(cfg),
        image_format="RGB",
        num_classes=4,
        ignore_value=255,
        dataset_ignore_label=255,
    )
    d = {
        "file_name": str(tmp_path / "a.png"),
        "sem_seg_file_name": str(tmp_path / "a_label.png"),
        "height": 32,
        "width": 48,
    }
    for seed in range(10):
        random.seed(seed)
        np.random.seed(seed)
        out = mapper({**d, "class_uniform_centroid": (3, 41, 29)})
        assert out["image"].shape == (3, 8, 8) and out["sem_seg"].shape == (8, 8)
        assert (out["sem_seg"] == 3).any()
        assert "class_uniform_centroid" not in out


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("INPUT.COLOR_AUG", True, "INPUT.COLOR_AUG"),
        ("INPUT.NVIDIA.COLOR_JITTER", (0.25, 0.25, 0.25, 0.6), "INPUT.NVIDIA.COLOR_JITTER"),
        ("INPUT.NVIDIA.SCALE_RANGE", (2.0, 0.5), "INPUT.NVIDIA.SCALE_RANGE"),
        ("INPUT.NVIDIA.PRE_SIZE", -1, "INPUT.NVIDIA.PRE_SIZE"),
        ("INPUT.PAD.MODE", "pixel", "INPUT.PAD.MODE"),
        ("INPUT.FLIP_PROB", 1.5, "INPUT.FLIP_PROB"),
    ],
)
def test_bad_nvidia_pipeline_values_name_the_key(key, value, match):
    cfg = build_config(W48)
    cfg.defrost()
    node = cfg
    *path, last = key.split(".")
    for p in path:
        node = node[p]
    node[last] = value
    with pytest.raises(ValueError, match=match.replace(".", r"\.")):
        build_train_augmentations(cfg)
