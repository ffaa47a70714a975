"""One scene as Cityscapes polygons: compose it, clip and round the polygons, and remove the
thing instances that would end up (almost) hidden."""

from __future__ import annotations

import json

import cv2
import numpy as np
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.helpers.labels import name2label
from PIL import Image, ImageDraw

from .common import MIN_VISIBLE_PIXELS, base_label, check_params, image_rng
from .furniture import StreetFurnitureMixin
from .geometry import Camera, clip_round
from .layout import StreetLayout
from .things import ThingsMixin


class SceneComposer(StreetFurnitureMixin, ThingsMixin, StreetLayout):
    """The whole street scene of one image: :meth:`compose` returns its ordered polygon list."""


def poly_mask(ipoly, width, height):
    """Pixels PIL's ``ImageDraw.polygon`` fills for ``ipoly`` (the rasteriser cityscapesscripts
    uses), as a boolean crop and its offset."""
    x0, y0 = int(ipoly[:, 0].min()), int(ipoly[:, 1].min())
    x1, y1 = int(ipoly[:, 0].max()), int(ipoly[:, 1].max())
    im = Image.new("L", (width, height), 0)
    ImageDraw.Draw(im).polygon([(int(x), int(y)) for x, y in ipoly], fill=1)
    return np.asarray(im.crop((x0, y0, x1 + 1, y1 + 1)), dtype=bool), x0, y0


def object_index_map(objs, width, height):
    """0 = nothing, k+1 = object k; drawn like cityscapesscripts draws label images."""
    im = Image.new("I", (width, height), 0)
    draw = ImageDraw.Draw(im)
    for k, o in enumerate(objs):
        if name2label[base_label(o.label)].id < 0:
            continue
        draw.polygon([(int(x), int(y)) for x, y in o.ipoly], fill=k + 1)
    return np.asarray(im)


def visible_enough(mask):
    """Whether a thing's visible pixels are enough to keep it (see ``MIN_VISIBLE_PIXELS``)."""
    if int(mask.sum()) < MIN_VISIBLE_PIXELS:
        return False
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (
        stats[best, cv2.CC_STAT_AREA] >= MIN_VISIBLE_PIXELS
        and stats[best, cv2.CC_STAT_WIDTH] >= 3
        and stats[best, cv2.CC_STAT_HEIGHT] >= 3
    )


def drop_hidden_things(objs, width, height):
    """Remove thing instances (and their license plates) that are (nearly) fully occluded, so that
    every instance in the JSON is visible in the PNGs and found by every loader."""
    for _ in range(4):
        idx = object_index_map(objs, width, height)
        dropped = set()
        for k, o in enumerate(objs):
            if not name2label[base_label(o.label)].hasInstances:
                continue
            x0, y0 = o.ipoly.min(0)
            x1, y1 = o.ipoly.max(0)
            if not visible_enough(idx[y0 : y1 + 1, x0 : x1 + 1] == k + 1):
                dropped.add(id(o))
        objs = [
            o
            for o in objs
            if id(o) not in dropped and (o.parent is None or id(o.parent) not in dropped)
        ]
        if not dropped:
            return objs, idx
    # removing objects only uncovers pixels: unreachable
    raise AssertionError("occlusion pruning did not converge")


def polygons_json_text(height, width, objects):
    """A ``*_gtFine_polygons.json`` text in Cityscapes' layout (one object a line)."""
    lines = ",\n".join("        " + json.dumps(o, separators=(", ", ": ")) for o in objects)
    return '{\n    "imgHeight": %d,\n    "imgWidth": %d,\n    "objects": [\n%s\n    ]\n}\n' % (
        height,
        width,
        lines,
    )


def annotation_from_text(text):
    """The cityscapesscripts :class:`Annotation` of a polygons JSON text."""
    ann = Annotation()
    ann.fromJsonText(text)
    return ann


def build_scene(seed, split, index, height, width):
    """Compose the scene and finalise its polygon list (clipped, rounded, occluded things
    removed); returns ``(rng, camera, composer, objects, object index map)``."""
    rng = image_rng(seed, split, index)
    cam = Camera(rng, height, width)
    comp = SceneComposer(rng, cam, index)
    objs = []
    for o in comp.compose():
        o.ipoly = clip_round(o.poly, width, height)
        if o.ipoly is not None:
            objs.append(o)
    objs = [o for o in objs if o.parent is None or any(o.parent is q for q in objs)]
    objs, idx = drop_hidden_things(objs, width, height)
    return rng, cam, comp, objs, idx


def scene_instance_counts(
    seed: int, split: str, index: int, height: int = 256, width: int = 512
) -> dict:
    """``{label: count}`` of the thing and group polygons image ``index`` gets (full labels),
    without painting it: a cheap way to look at class frequencies over many images."""
    check_params(seed, height, width, {split: index + 1}, "full")
    objs = build_scene(seed, split, index, height, width)[3]
    counts = {}
    for o in objs:
        if name2label[base_label(o.label)].hasInstances:
            counts[o.label] = counts.get(o.label, 0) + 1
    return counts
