"""Painting a composed scene into the RGB image, and :func:`render_sample`: one sample (image,
polygons JSON and the four label images) in memory."""

from __future__ import annotations

import cv2
import numpy as np
from cityscapesscripts.helpers.labels import name2label
from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
from cityscapesscripts.preparation.json2labelImg import createLabelImage

from .common import VOID_REGION_LABELS, base_label, check_params
from .painters import PAINTERS, PaintContext
from .scene import annotation_from_text, build_scene, poly_mask, polygons_json_text


def finish_image(ctx, canvas):
    """The camera on top of the painted canvas: exposure, white balance, gamma, vignetting,
    blur and sensor noise; returns the uint8 RGB image."""
    rng = ctx.rng
    img = canvas.astype(np.float32)
    gain = rng.uniform(0.78, 1.18)
    tint = rng.uniform(0.94, 1.06, 3).astype(np.float32)
    img = img * gain * tint
    gamma = rng.uniform(0.85, 1.15)
    img = 255.0 * np.power(np.clip(img / 255.0, 0, 1), gamma)
    H, W = ctx.H, ctx.W
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    r2 = ((xx - W / 2) / (W / 2)) ** 2 + ((yy - H / 2) / (H / 2)) ** 2
    img = img * (1 - rng.uniform(0.05, 0.2) * r2 / 2)[..., None]
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.45, 0.8) * max(W / 512.0, 0.5))
    img = img + rng.normal(0, rng.uniform(1.5, 4.0), img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def paint_scene(ctx, objs, idx_expected):
    """Paint ``objs`` in order (with vehicles' soft ground shadows) and finish the image; checks
    that the painted pixels are exactly the object index map the labels come from."""
    H, W = ctx.H, ctx.W
    canvas = np.zeros((H, W, 3), np.float32)
    painted = np.zeros((H, W), np.int32)
    for k, o in enumerate(objs):
        if o.kind == "none":
            continue
        if "ground_shadow" in o.p:  # darken the ground under and around a vehicle, softly
            g = np.clip(o.p["ground_shadow"], -1e5, 1e5)
            gx0 = int(max(np.floor(g[:, 0].min()) - 4, 0))
            gy0 = int(max(np.floor(g[:, 1].min()) - 4, 0))
            gx1 = int(min(np.ceil(g[:, 0].max()) + 5, W))
            gy1 = int(min(np.ceil(g[:, 1].max()) + 5, H))
            if gx1 > gx0 and gy1 > gy0:
                m = np.zeros((gy1 - gy0, gx1 - gx0), np.float32)
                cv2.fillPoly(m, [np.round((g - [gx0, gy0]) * 4).astype(np.int32)], 1.0, shift=2)
                m = cv2.GaussianBlur(m, (0, 0), 1.0)
                canvas[gy0:gy1, gx0:gx1] *= (1 - 0.45 * m)[..., None]
        mask, x0, y0 = poly_mask(o.ipoly, W, H)
        h, w = mask.shape
        sl = (slice(y0, y0 + h), slice(x0, x0 + w))
        yy, xx = np.mgrid[y0 : y0 + h, x0 : x0 + w].astype(np.float64)
        col = PAINTERS[o.kind](ctx, o, sl, yy, xx, canvas[sl].astype(np.float64))
        canvas[sl][mask] = np.asarray(col, np.float32)[mask]
        painted[sl][mask] = k + 1
    if not np.array_equal(painted, idx_expected):
        raise AssertionError("RGB painting and label rasterisation disagree")  # internal invariant
    return finish_image(ctx, canvas)


def render_sample(
    seed: int, split: str, index: int, height: int = 256, width: int = 512, test_gt: str = "dummy"
) -> dict:
    """Build one sample in memory.

    Returns a dict with ``image`` (H x W x 3 uint8 RGB), ``polygons`` (the JSON text),
    ``labelIds``/``labelTrainIds`` (uint8), ``color`` (H x W x 4 uint8 RGBA), ``instanceIds``
    (uint16), and ``counts`` ({label: number of polygons} for the thing and group labels in the
    ground truth).  Label images are rasterised from the JSON by cityscapesscripts.
    """
    check_params(seed, height, width, {split: index + 1}, test_gt)
    rng, cam, comp, objs, idx = build_scene(seed, split, index, height, width)
    ctx = PaintContext(rng, cam, comp)
    image = paint_scene(ctx, objs, idx)

    gt_objs = objs
    if split == "test" and test_gt == "dummy":
        gt_objs = [o for o in objs if o.label in VOID_REGION_LABELS]
    text = polygons_json_text(
        height, width, [{"label": o.label, "polygon": o.ipoly.tolist()} for o in gt_objs]
    )
    ann = annotation_from_text(text)
    label_ids = np.asarray(createLabelImage(ann, "ids"), np.uint8)
    train_ids = np.asarray(createLabelImage(ann, "trainIds"), np.uint8)
    color = np.asarray(createLabelImage(ann, "color"), np.uint8)
    inst = np.asarray(createInstanceImage(ann, "ids"))
    if inst.min() < 0 or inst.max() > 65535:
        raise AssertionError("instance id out of uint16 range")
    if gt_objs is objs:  # the painted image and the label image come from the same rasterisation
        lut = np.array([0] + [max(name2label[base_label(o.label)].id, 0) for o in objs], np.int64)
        if not np.array_equal(lut[idx], label_ids):
            raise AssertionError("labelIds differ from the painted scene")
    counts = {}
    for o in gt_objs:
        if name2label[base_label(o.label)].hasInstances:
            counts[o.label] = counts.get(o.label, 0) + 1
    return {
        "image": image,
        "polygons": text,
        "labelIds": label_ids,
        "labelTrainIds": train_ids,
        "color": color,
        "instanceIds": inst.astype(np.uint16),
        "counts": counts,
    }
