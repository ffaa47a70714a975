"""A procedural street-scene dataset in the exact Cityscapes on-disk format.

The embedded default dataset of this project: small, deterministic, CPU-friendly, and readable
by every tool that reads Cityscapes (cityscapesscripts, detectron2's ``cityscapes_*`` loaders)::

    <root>/leftImg8bit/{train,val,test}/<city>/<city>_<seq:06d>_<frame:06d>_leftImg8bit.png
    <root>/gtFine/{split}/<city>/<city>_<seq>_<frame>_gtFine_polygons.json
    <root>/gtFine/{split}/<city>/<city>_<seq>_<frame>_gtFine_{labelIds,instanceIds,labelTrainIds,color}.png
    <root>/synthetic_cityscapes.json          (manifest, written last)

How a sample is made
--------------------
1. A pinhole camera over a flat ground plane (random focal length, camera height, horizon row
   and vanishing point) looks down a street: road with lanes (optionally tram rails), sidewalks,
   lots of buildings / parks / walls / fences / intersections on both sides, an end-of-street
   backdrop, street lights, sign and traffic-light poles, trees, static clutter, and the eight
   Cityscapes thing classes (person, rider, car, truck, bus, train, motorcycle, bicycle) placed in
   3-D with collision checks, so that far ones are small and near ones occlude far ones.
   Instance rates mimic Cityscapes' imbalance (cars and persons common; truck, bus, train,
   motorcycle and rider rare).  Some void regions are added as in Cityscapes: the ego vehicle's
   bonnet, rectification border, out-of-roi, static clutter, license plates (label id -1),
   rail track and ``cargroup``/``persongroup`` crowd regions.
2. The scene is an ordered list of polygons (background first, nearest last) with integer
   coordinates clipped to the image: exactly a Cityscapes ``*_gtFine_polygons.json``.
   Thing instances that would end up (almost) fully occluded are removed from the list.
3. labelIds / labelTrainIds / color / instanceIds are rasterised *from that JSON* with
   cityscapesscripts' own ``createLabelImage`` / ``createInstanceImage``, so JSON and PNGs agree by
   construction (instance ids: ``labelId * 1000 + k`` for things, ``labelId`` for stuff and groups).
4. The RGB image is painted polygon by polygon in the same order with the same rasteriser, each
   class with its own texture statistics (facade windows in perspective, asphalt with lane
   markings, paving, foliage, see-through fences and bicycles, box-shaped vehicles with shaded
   faces, windows, wheels and lights, ...), then lit (sun direction, cast shadows, exposure,
   white balance, vignetting), slightly blurred and given sensor noise.

Every image is seeded from ``(seed, split, index)`` alone, so the same seed gives byte-identical
files and changing the number of images of a split never changes the other images.

Test split: like the real Cityscapes test split (whose public ``gtFine`` is a dummy), the test
split's images are full scenes but its ``gtFine`` holds only the void regions (ego vehicle,
rectification border, out of roi); everything else is ``unlabeled`` (id 0, trainId 255).
Pass ``test_gt="full"`` to get real labels for the test split too.

This module imports neither detectron2 nor torch.
"""
from __future__ import annotations

import io
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageDraw

from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.helpers.labels import id2label, labels as CS_LABELS, name2label
from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
from cityscapesscripts.preparation.json2labelImg import createLabelImage

__all__ = [
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "SPLITS",
    "DEFAULT_NUM_IMAGES",
    "CITIES",
    "THING_CLASSES",
    "SyntheticDatasetError",
    "generate_synthetic_cityscapes",
    "render_sample",
    "scene_instance_counts",
    "sample_name",
    "sample_paths",
    "read_manifest",
    "compute_statistics",
    "format_statistics",
    "write_preview",
]

logger = logging.getLogger(__name__)

GENERATOR_NAME = "seethroughnet.data.synthetic_cityscapes"
#: Bumped whenever the output for given parameters changes; part of the manifest's parameters.
GENERATOR_VERSION = 1
MANIFEST_NAME = "synthetic_cityscapes.json"
SPLITS = ("train", "val", "test")
DEFAULT_NUM_IMAGES = {"train": 48, "val": 12, "test": 12}
#: Made-up city names (no underscores: Cityscapes file names are split on ``_``).
CITIES = {
    "train": ("aldermoor", "brackwell", "corringham", "dunholt"),
    "val": ("elmsworth", "fennick"),
    "test": ("glasbury", "harrowdale"),
}
FRAME_NB = 19  # Cityscapes annotates the 20th frame of each 30-frame snippet
THING_CLASSES = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
#: A thing instance is kept only if its largest visible 8-connected part has at least this many
#: pixels and spans at least 3 x 3 pixels (so every loader sees it; see ``_visible_enough``).
MIN_VISIBLE_PIXELS = 12
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
_TEST_GT_CHOICES = ("dummy", "full")
_VOID_REGION_LABELS = ("ego vehicle", "rectification border", "out of roi")


class SyntheticDatasetError(RuntimeError):
    """The output folder cannot be used as asked (foreign content, other parameters, bad manifest)."""


# ---------------------------------------------------------------------------------------------
# Names and paths
# ---------------------------------------------------------------------------------------------
def sample_name(split: str, index: int) -> tuple[str, str]:
    """``(city, stem)`` of image ``index`` of ``split``; depends on nothing else."""
    cities = CITIES[split]
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_{FRAME_NB:06d}"


def sample_paths(root: str, split: str, index: int) -> dict[str, str]:
    """Paths of the six files of one sample, keyed by kind (``image``, ``polygons``, ``labelIds``,
    ``instanceIds``, ``labelTrainIds``, ``color``)."""
    city, stem = sample_name(split, index)
    img_dir = os.path.join(root, "leftImg8bit", split, city)
    gt_dir = os.path.join(root, "gtFine", split, city)
    paths = {"image": os.path.join(img_dir, f"{stem}_leftImg8bit.png"),
             "polygons": os.path.join(gt_dir, f"{stem}_gtFine_polygons.json")}
    for kind in ("labelIds", "instanceIds", "labelTrainIds", "color"):
        paths[kind] = os.path.join(gt_dir, f"{stem}_gtFine_{kind}.png")
    return paths


def _image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_CODE[split], index, GENERATOR_VERSION]))


def _base_label(name: str) -> str:
    if name not in name2label and name.endswith("group"):
        return name[: -len("group")]
    return name


# ---------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------
class _Camera:
    """Pinhole camera at height ``cam_h`` over the plane h=0, looking along +Z; world (X, h, Z)."""

    def __init__(self, rng, height, width):
        self.H, self.W = height, width
        self.f = width * rng.uniform(0.50, 0.60)
        self.cam_h = rng.uniform(1.15, 1.45)
        self.y_h = height * rng.uniform(0.38, 0.46)
        self.x_v = width * rng.uniform(0.43, 0.57)

    def project(self, X, h, Z):
        X, h, Z = np.broadcast_arrays(np.asarray(X, np.float64), np.asarray(h, np.float64),
                                      np.asarray(Z, np.float64))
        Z = np.maximum(Z, 1e-3)
        return np.stack([self.x_v + self.f * X / Z, self.y_h + self.f * (self.cam_h - h) / Z], axis=-1)

    def ground_depth(self, y):
        return self.f * self.cam_h / np.maximum(y - self.y_h, 0.25)

    def ground_quad(self, X0, X1, Z0, Z1):
        return self.project([X0, X1, X1, X0], 0.0, [Z0, Z0, Z1, Z1])

    def side_quad(self, X, Z0, Z1, h0, h1):
        return self.project(X, [h0, h0, h1, h1], [Z0, Z1, Z1, Z0])

    def front_quad(self, X0, X1, Z, h0, h1):
        return self.project([X0, X1, X1, X0], [h0, h0, h1, h1], Z)

    def billboard(self, uv, Xc, Zc, squeeze=1.0):
        uv = np.asarray(uv, np.float64)
        return self.project(Xc + uv[:, 0] * squeeze, uv[:, 1], Zc)


def _clip_polygon(pts, xmax, ymax):
    """Sutherland-Hodgman clip of a polygon (list of (x, y)) to [0, xmax] x [0, ymax]."""
    def clip(points, inside, cross):
        out = []
        if not points:
            return out
        prev = points[-1]
        for cur in points:
            if inside(cur):
                if not inside(prev):
                    out.append(cross(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cross(prev, cur))
            prev = cur
        return out

    def at_x(x0):
        return lambda p, q: (x0, p[1] + (q[1] - p[1]) * (x0 - p[0]) / (q[0] - p[0]))

    def at_y(y0):
        return lambda p, q: (p[0] + (q[0] - p[0]) * (y0 - p[1]) / (q[1] - p[1]), y0)

    pts = clip(pts, lambda p: p[0] >= 0, at_x(0.0))
    pts = clip(pts, lambda p: p[0] <= xmax, at_x(float(xmax)))
    pts = clip(pts, lambda p: p[1] >= 0, at_y(0.0))
    pts = clip(pts, lambda p: p[1] <= ymax, at_y(float(ymax)))
    return pts


def _clip_round(poly, width, height):
    """Clip to the image, round to integer pixel coordinates (as Cityscapes stores them), drop
    repeated and collinear vertices; ``None`` if fewer than 3 vertices remain."""
    pts = _clip_polygon([(float(x), float(y)) for x, y in np.asarray(poly, np.float64)], width - 1, height - 1)
    if len(pts) < 3:
        return None
    q = np.rint(np.asarray(pts)).astype(np.int64)
    keep = np.any(q != np.roll(q, 1, axis=0), axis=1)
    q = q[keep]
    changed = True
    while changed and len(q) >= 3:
        prev, nxt = np.roll(q, 1, axis=0), np.roll(q, -1, axis=0)
        a, b = q - prev, nxt - q
        cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
        dot = a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1]
        straight = (cross == 0) & (dot > 0)
        changed = bool(straight.any())
        if changed:  # remove one at a time: removing neighbours together can change the shape
            q = np.delete(q, int(np.argmax(straight)), axis=0)
    return q if len(q) >= 3 else None


# ---------------------------------------------------------------------------------------------
# Scene composition
# ---------------------------------------------------------------------------------------------
@dataclass(eq=False)
class _Obj:
    label: str
    poly: np.ndarray  # float image coordinates, (N, 2)
    kind: str  # painter
    p: dict = field(default_factory=dict)
    parent: "_Obj | None" = None  # license plates belong to their vehicle
    ipoly: np.ndarray | None = None  # final integer polygon


_PAL = {
    "car": [((225, 225, 222), 3), ((172, 174, 178), 3), ((110, 112, 116), 2), ((30, 30, 33), 3),
            ((35, 45, 85), 1), ((150, 28, 26), 1), ((45, 75, 140), 1), ((42, 66, 52), 0.5),
            ((190, 176, 142), 0.5), ((210, 170, 40), 0.2)],
    "building": [((200, 186, 160), 3), ((226, 216, 192), 2), ((182, 181, 176), 2), ((130, 130, 128), 2),
                 ((152, 82, 62), 1.5), ((118, 72, 56), 1), ((222, 222, 216), 1.5), ((220, 200, 140), 1),
                 ((168, 184, 196), 0.7), ((88, 88, 93), 1)],
    "sidewalk": [((166, 161, 156), 3), ((186, 176, 166), 2), ((150, 146, 152), 2), ((170, 132, 122), 1)],
    "wall": [((162, 156, 146), 2), ((192, 186, 170), 2), ((122, 121, 118), 2), ((148, 88, 70), 1)],
    "fence": [((72, 76, 76), 3), ((52, 82, 62), 1), ((132, 96, 62), 2), ((198, 198, 196), 1)],
    "pole": [((122, 124, 128), 3), ((62, 64, 68), 2), ((46, 72, 56), 1)],
    "veg": [((60, 96, 36), 3), ((82, 112, 46), 2), ((46, 72, 30), 2), ((96, 122, 62), 1)],
    "terrain": [((122, 136, 72), 3), ((142, 140, 92), 2), ((108, 120, 60), 2), ((150, 128, 92), 1)],
    "shirt": [((32, 32, 36), 3), ((205, 205, 205), 2), ((150, 32, 32), 1), ((42, 62, 122), 2),
              ((92, 92, 96), 2), ((182, 162, 122), 1), ((62, 92, 62), 1), ((222, 182, 62), 0.5)],
    "pants": [((32, 38, 62), 3), ((26, 26, 28), 3), ((82, 82, 86), 1), ((172, 152, 122), 1)],
    "skin": [((232, 192, 162), 3), ((202, 152, 112), 2), ((142, 96, 66), 1), ((92, 62, 42), 1)],
    "hair": [((32, 26, 22), 3), ((82, 56, 36), 2), ((182, 152, 92), 1), ((122, 122, 122), 1)],
    "bus": [((210, 180, 30), 1), ((180, 30, 30), 1), ((30, 80, 150), 1), ((225, 225, 225), 1),
            ((40, 120, 70), 0.7)],
    "train": [((220, 220, 215), 1), ((200, 40, 40), 1), ((240, 200, 40), 1), ((40, 90, 160), 0.7)],
    "truck": [((235, 235, 235), 3), ((200, 40, 35), 1), ((40, 70, 140), 1), ((60, 60, 62), 1),
              ((220, 190, 60), 0.5)],
    "bike": [((30, 30, 32), 3), ((170, 30, 30), 1), ((40, 70, 150), 1), ((200, 200, 200), 1),
             ((40, 110, 60), 0.5)],
}


class _Composer:
    def __init__(self, rng, cam, index):
        self.rng, self.cam, self.index = rng, cam, index
        self.bg, self.ground, self.facades, self.lots, self.standing, self.overlay = [], [], [], [], [], []
        self.footprints = []  # axis-aligned (X0, X1, Z0, Z1) of things and poles on the ground
        self.counter = 0

    # -- small helpers --------------------------------------------------------------------
    def U(self, a, b):
        return float(self.rng.uniform(a, b))

    def pick(self, key):
        items = _PAL[key]
        w = np.array([it[1] for it in items], np.float64)
        rgb = np.array(items[int(self.rng.choice(len(items), p=w / w.sum()))][0], np.float64)
        return np.clip(rgb * self.U(0.9, 1.1) + self.rng.normal(0, 5, 3), 5, 250)

    def free(self, box, margin=0.15):
        x0, x1, z0, z1 = box
        for a0, a1, b0, b1 in self.footprints:
            if x0 < a1 + margin and a0 < x1 + margin and z0 < b1 + margin and b0 < z1 + margin:
                return False
        return True

    def add_standing(self, z, objs, box=None):
        if box is not None:
            self.footprints.append(box)
        self.counter += 1
        self.standing.append((z, self.counter, objs))

    # -- the street -------------------------------------------------------------------------
    def compose(self):
        rng, cam, U = self.rng, self.cam, self.U
        self.L, self.R = U(3.2, 7.5), U(3.2, 7.5)
        self.edge = {-1: -self.L, 1: self.R}
        self.sw = {-1: U(1.6, 4.5), 1: U(1.6, 4.5)}
        self.z_end = U(55.0, 170.0) if rng.random() < 0.65 else 400.0
        self.z_obj = min(self.z_end - 6.0, 95.0)
        self.sunny = rng.random() < 0.6
        az = U(-1.0, 1.0)
        el = U(0.35, 0.9)
        self.sun = np.array([math.sin(az) * math.cos(el), math.sin(el), -abs(math.cos(az)) * math.cos(el) * U(0.2, 1)])
        self.sun /= np.linalg.norm(self.sun)
        self.ambient = 0.55 if self.sunny else 0.8
        self.shadow_lots = []  # (side, Z0, Z1, X_edge)

        n_lanes = max(1, int(round((self.L + self.R) / 3.2)))
        self.lane_w = (self.L + self.R) / n_lanes
        self.lane_centres = [-self.L + (i + 0.5) * self.lane_w for i in range(n_lanes)]
        self.lane_lines = [-self.L + i * self.lane_w for i in range(1, n_lanes)]
        self.parking = {s: rng.random() < 0.75 for s in (-1, 1)}

        # intersections: Z ranges where a cross street opens on one or both sides
        self.crossings = []
        if rng.random() < 0.45 and self.z_end > 45:
            z1 = U(12.0, min(60.0, self.z_end - 25.0))
            sides = (-1, 1) if rng.random() < 0.7 else ((-1,) if rng.random() < 0.5 else (1,))
            self.crossings.append((z1, z1 + U(9.0, 15.0), sides))
        forced = self._forced_rare()
        self.tram = rng.random() < 0.07 or forced == "train"
        self.track_x = min(self.lane_centres, key=lambda c: abs(c - 0.3)) if self.tram else None

        self._sky_and_backdrop()
        self._ground()
        for s in (-1, 1):
            self._side(s)
        self._street_furniture()
        self._things(forced)
        self._void_regions()

        out = list(self.bg) + list(self.ground)
        out += [o for _, _, o in sorted(self.facades, key=lambda t: (-t[0], t[1]))]
        for group in (self.lots, self.standing):
            for _, _, objs in sorted(group, key=lambda t: (-t[0], t[1])):
                out.extend(objs)
        out += self.overlay
        return out

    def _forced_rare(self):
        """Every other image holds one rare thing, cycling through them: every split of ten images
        or more has all eight thing classes, while they stay rare overall (<= 0.2 per image)."""
        if self.index % 2 != 1:
            return None
        return ("train", "bus", "truck", "motorcycle", "rider")[(self.index // 2) % 5]

    def _sky_and_backdrop(self):
        cam, U, rng = self.cam, self.U, self.rng
        W, H = cam.W, cam.H
        self.bg.append(_Obj("sky", np.array([[0, 0], [W - 1, 0], [W - 1, H - 1], [0, H - 1]], float), "sky",
                            {"sunny": self.sunny}))
        ze = self.z_end
        x_lo = (-20 - cam.x_v) * ze / cam.f - 10
        x_hi = (W + 20 - cam.x_v) * ze / cam.f + 10
        open_street = ze > 300
        # far skyline / treeline spanning the whole width at Z = z_end
        x = x_lo
        while x < x_hi:
            w = U(8, 30) if not open_street else U(15, 60)
            if rng.random() < (0.25 if not open_street else 0.45):
                n = max(4, int(w / 1.5))
                xs = np.linspace(x, x + w, n)
                hs = U(5, 14) * (1 + 0.25 * rng.standard_normal(n)).clip(0.5, 1.6)
                pts = [(x, 0.0)] + list(zip(xs, hs)) + [(x + w, 0.0)]
                self.bg.append(_Obj("vegetation", cam.project([p[0] for p in pts], [p[1] for p in pts], ze),
                                    "veg", {"col": self.pick("veg")}))
            else:
                hb = U(8, 30) if not open_street else U(5, 45)
                pts = [(x, 0.0), (x + w, 0.0), (x + w, hb)]
                if rng.random() < 0.3:  # gable roof
                    pts.append((x + w / 2, hb + U(2, 5)))
                elif rng.random() < 0.3:  # stepped top
                    pts += [(x + w * 0.6, hb), (x + w * 0.6, hb + U(2, 6)), (x + w * 0.2, hb + U(2, 6)),
                            (x + w * 0.2, hb)]
                pts.append((x, hb))
                self.bg.append(_Obj("building", cam.project([p[0] for p in pts], [p[1] for p in pts], ze),
                                    "facade", self._facade_style("front", ze, hb)))
            x += w

    def _facade_style(self, plane, coord, height, shade=None):
        U, rng = self.U, self.rng
        floor = U(2.8, 3.6)
        p = {"plane": plane, "coord": coord, "col": self.pick("building"), "H": height, "floor": floor,
             "spacing": U(2.2, 4.0), "u0": U(0, 4), "win_w": U(0.9, 1.6), "sill": U(0.7, 1.0),
             "win_h": floor * U(0.4, 0.55), "ground_floor": U(3.0, 4.5) if rng.random() < 0.7 else floor,
             "shop": rng.random() < 0.5, "glass": np.array([U(30, 70), U(40, 80), U(55, 100)]),
             "windows": rng.random() < 0.92}
        if shade is None:
            n = np.array([0.0, 0.0, -1.0]) if plane == "front" else np.array([-math.copysign(1.0, coord), 0.0, 0.0])
            shade = self._shade(n)
        p["shade"] = shade
        return p

    def _shade(self, normal):
        d = float(np.dot(normal, self.sun))
        return self.ambient + (1.0 - self.ambient) * 1.15 * max(d, 0.0) + (0.0 if self.sunny else 0.1)

    def _ground(self):
        cam, U, rng = self.cam, self.U, self.rng
        ze, W, H = self.z_end, cam.W, cam.H
        y_end = float(cam.project(0, 0, ze)[1])
        self.ground.append(_Obj("terrain", np.array([[0, y_end], [W - 1, y_end], [W - 1, H - 1], [0, H - 1]], float),
                                "terrain", {"col": self.pick("terrain")}))
        lines = []
        for x in self.lane_lines:
            solid = abs(x - min(self.lane_lines, key=abs)) < 1e-6 and rng.random() < 0.3
            lines.append((x, 0.0 if solid else U(5.0, 9.0), U(2.0, 3.5)))
        crosswalks = [(z1 - U(4.0, 5.0), z1 - U(0.8, 1.2)) for z1, _, _ in self.crossings]
        if rng.random() < 0.15:
            zc = U(8, 30)
            crosswalks.append((zc, zc + U(3, 4)))
        road = {"col": np.array([1.0, 1.0, 1.04]) * U(70, 112), "lines": lines, "crosswalks": crosswalks,
                "edge_lines": rng.random() < 0.5, "L": self.L, "R": self.R,
                "paint": np.array([215.0, 215.0, 205.0]) * U(0.75, 1.0)}
        self.ground.append(_Obj("road", cam.ground_quad(-self.L, self.R, 0.3, ze), "road", road))
        for s in (-1, 1):
            e = self.edge[s]
            outer = e + s * (self.sw[s] + 1.6)
            zs = [(0.3, ze)]
            for z1, z2, sides in self.crossings:
                if s in sides:
                    zs = [(a, min(b, z1)) for a, b in zs if a < z1] + [(max(a, z2), b) for a, b in zs if b > z2]
            col = self.pick("sidewalk")
            tile = U(0.3, 0.7)
            verge = U(0.8, min(2.0, self.sw[s] - 0.6)) if rng.random() < 0.3 and self.sw[s] > 2.2 else 0.0
            for a, b in zs:
                self.ground.append(_Obj("sidewalk", cam.ground_quad(min(e, outer), max(e, outer), a, b), "sidewalk",
                                        {"col": col, "tile": tile, "edge": e}))
                if verge:  # a grass strip along the kerb
                    x1 = e + s * (0.25 + verge)
                    self.ground.append(_Obj("terrain", cam.ground_quad(min(e + s * 0.25, x1), max(e + s * 0.25, x1), a, b),
                                            "terrain", {"col": self.pick("terrain")}))
        for z1, z2, sides in self.crossings:
            for s in sides:
                e = self.edge[s]
                x_far = e + s * 120.0
                self.ground.append(_Obj("road", cam.ground_quad(min(e, x_far), max(e, x_far), z1, z2), "road",
                                        dict(road, lines=[], crosswalks=[], edge_lines=False)))
        if self.tram:
            for z0, z1 in [(0.3, ze)]:
                self.ground.append(_Obj("rail track", cam.ground_quad(self.track_x - 1.1, self.track_x + 1.1, z0, z1),
                                        "rail", {"col": road["col"] * 0.9, "xc": self.track_x}))

    # -- both sides of the street ---------------------------------------------------------------
    def _side(self, s):
        cam, U, rng = self.cam, self.U, self.rng
        e = self.edge[s]
        sw_outer = e + s * self.sw[s]
        xb_base = sw_outer + s * 0.4
        z = 0.3
        lots = []
        cross = [(z1, z2) for z1, z2, sides in self.crossings if s in sides]
        while z < self.z_end - 0.5:
            nxt_cross = [c for c in cross if c[0] >= z - 1e-6]
            if nxt_cross and nxt_cross[0][0] - z < 1e-6:
                z1, z2 = nxt_cross[0]
                lots.append(("intersection", z1, z2))
                z = z2
                continue
            r = rng.random()
            typ, ln = (("building", U(7, 26)) if r < 0.68 else ("park", U(10, 30)) if r < 0.82
                       else ("gap", U(5, 14)) if r < 0.93 else ("wall", U(8, 20)))
            z2 = min(z + ln, self.z_end)
            if nxt_cross and z2 > nxt_cross[0][0]:
                z2 = nxt_cross[0][0]
            lots.append((typ, z, z2))
            z = z2
        heights = [U(7, 26) if t in ("building", "wall") else 0.0 for t, _, _ in lots]
        for i, (typ, z1, z2) in enumerate(lots):
            if z2 - z1 < 0.5:
                continue
            if typ == "building":
                xb = xb_base + s * U(0.0, 1.2)
                hb = heights[i]
                st = self._facade_style("side", xb, hb)
                self.facades.append((z1, len(self.facades), _Obj("building", cam.side_quad(xb, z1, z2, 0, hb), "facade", st)))
                nxt_h = heights[i + 1] if i + 1 < len(lots) else 0.0
                if nxt_h < hb - 0.5 and z2 < self.z_end - 1:  # exposed end wall facing the camera
                    st2 = dict(st, plane="front", coord=z2, shade=self._shade(np.array([0.0, 0.0, -1.0])), windows=rng.random() < 0.4)
                    self.facades.append((z2, len(self.facades),
                                         _Obj("building", cam.front_quad(min(xb, xb + s * 14), max(xb, xb + s * 14), z2, 0, hb),
                                              "facade", st2)))
                self.shadow_lots.append((s, z1, z2, xb - s * hb * abs(self.sun[0]) / max(self.sun[1], 0.2)))
            elif typ == "wall":
                hw = U(1.6, 3.2)
                label = "wall" if rng.random() < 0.75 else "fence"
                self._wall_or_fence(label, sw_outer + s * 0.1, z1, z2, hw, s)
                xb = xb_base + s * U(3.0, 9.0)
                hb = heights[i]
                self.facades.append((z1, len(self.facades), _Obj("building", cam.side_quad(xb, z1, z2, 0, hb), "facade",
                                                                 self._facade_style("side", xb, hb))))
            elif typ in ("park", "gap"):
                x_far = sw_outer + s * 60.0
                self.ground.append(_Obj("terrain", cam.ground_quad(min(sw_outer, x_far), max(sw_outer, x_far), z1, z2),
                                        "terrain", {"col": self.pick("terrain")}))
                if typ == "gap" and rng.random() < 0.65:
                    xb = sw_outer + s * U(8, 20)
                    hb = U(10, 30)
                    self.facades.append((z1 + 1000.0, len(self.facades),  # back row: drawn before the front row
                                         _Obj("building", cam.side_quad(xb, max(z1 - 6, 0.3), z2 + 6, 0, hb), "facade",
                                              self._facade_style("side", xb, hb))))
                if typ == "park":
                    n_trees = max(1, int((z2 - z1) / U(5, 10)))
                    for _ in range(n_trees):
                        self._tree(sw_outer + s * U(2.0, 14.0), U(z1, z2), group=self.lots)
                r = rng.random()
                if r < 0.35:
                    self._hedge(sw_outer + s * 0.3, z1, z2)
                elif r < 0.6:
                    self._wall_or_fence("fence", sw_outer + s * 0.1, z1, z2, U(1.0, 2.2), s)
                elif r < 0.72:
                    self._wall_or_fence("wall", sw_outer + s * 0.1, z1, z2, U(0.6, 1.4), s)
            elif typ == "intersection":
                hb = heights[i + 1] if i + 1 < len(lots) and heights[i + 1] > 0 else U(8, 25)
                xb = xb_base
                x_far = xb + s * 70.0
                st = self._facade_style("front", z2 + 1.0, hb)
                self.facades.append((z2 + 1.0, len(self.facades),
                                     _Obj("building", cam.front_quad(min(xb, x_far), max(xb, x_far), z2 + 1.0, 0, hb), "facade", st)))

    def _wall_or_fence(self, label, X, z1, z2, hw, s):
        cam = self.cam
        poly = cam.side_quad(X, z1, z2, 0.0, hw)
        if label == "wall":
            p = {"plane": "side", "coord": X, "col": self.pick("wall"), "shade": self._shade(np.array([-s, 0.0, 0.0])),
                 "block": self.U(0.25, 0.6)}
            kind = "wall"
        else:
            p = {"plane": "side", "coord": X, "col": self.pick("fence"), "H": hw, "style": int(self.rng.integers(3)),
                 "spacing": self.U(0.12, 0.3), "shade": self._shade(np.array([-s, 0.0, 0.0]))}
            kind = "fence"
        self.lots.append((z1, len(self.lots) + 10000, [_Obj(label, poly, kind, p)]))

    def _hedge(self, X, z1, z2):
        n = max(4, int((z2 - z1) / 0.8))
        zs = np.linspace(z1, z2, n)
        h0 = self.U(0.7, 1.6)
        hs = h0 * (1 + 0.12 * self.rng.standard_normal(n)).clip(0.6, 1.4)
        poly = np.concatenate([self.cam.project(X, 0.0, zs), self.cam.project(X, hs[::-1], zs[::-1])])
        self.lots.append((z1, len(self.lots) + 20000, [_Obj("vegetation", poly, "veg", {"col": self.pick("veg")})]))

    def _tree(self, X, Z, group):
        cam, U, rng = self.cam, self.U, self.rng
        trunk_h = U(2.2, 4.0)
        tw = U(0.2, 0.4)
        r = U(1.4, 3.2)
        col = self.pick("veg")
        trunk = _Obj("vegetation", cam.front_quad(X - tw / 2, X + tw / 2, Z, 0.0, trunk_h + r * 0.5), "veg",
                     {"col": np.array([78.0, 62.0, 46.0]) * U(0.8, 1.2), "trunk": True})
        n = 20
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        rad = r * (1 + 0.13 * rng.standard_normal(n)).clip(0.7, 1.3)
        hc = trunk_h + r * 0.85
        crown = _Obj("vegetation", cam.project(X + rad * np.cos(t) * U(0.9, 1.2), hc + rad * np.sin(t) * U(0.8, 1.1), Z),
                     "veg", {"col": col})
        if group is self.lots:
            self.lots.append((Z, len(self.lots) + 30000, [trunk, crown]))
        else:
            self.add_standing(Z, [trunk, crown], (X - tw, X + tw, Z - tw, Z + tw))

    # -- poles, signs, lights, trees, clutter ---------------------------------------------------
    def _street_furniture(self):
        cam, U, rng = self.cam, self.U, self.rng
        for s in (-1, 1):
            e = self.edge[s]
            if rng.random() < 0.55:  # a row of street trees
                z = U(3, 12)
                step = U(7, 14)
                while z < self.z_obj:
                    X = e + s * U(0.7, 1.1)
                    if self.free((X - 0.3, X + 0.3, z - 0.3, z + 0.3)):
                        self._tree(X, z, group=None)
                    z += step * U(0.85, 1.15)
            if rng.random() < 0.75:  # street lights
                z = U(4, 20)
                step = U(18, 35)
                while z < self.z_obj:
                    self._street_light(e + s * 0.5, z, s)
                    z += step
            for _ in range(int(rng.poisson(2.0))):
                self._sign_pole(e + s * U(0.3, 0.6), U(4, self.z_obj), s)
            for _ in range(int(rng.poisson(1.0))):
                self._static(e + s * U(0.6, self.sw[s] - 0.3), U(4, self.z_obj))
        tl_z = [z1 - U(1, 2) for z1, _, _ in self.crossings]
        if rng.random() < 0.3:
            tl_z.append(U(10, 45))
        for z in tl_z:
            for s in (-1, 1):
                if rng.random() < 0.8:
                    self._traffic_light_pole(self.edge[s] + s * 0.6, z, s, overhead=rng.random() < 0.4)

    def _pole_obj(self, X, Z, h1, width, h0=0.0):
        return _Obj("pole", self.cam.front_quad(X - width / 2, X + width / 2, Z, h0, h1), "pole",
                    {"col": self._pole_col, "xc": None})

    @property
    def _pole_col(self):
        if not hasattr(self, "_pole_colour"):
            self._pole_colour = self.pick("pole")
        return self._pole_colour

    def _street_light(self, X, Z, s):
        if not self.free((X - 0.2, X + 0.2, Z - 0.2, Z + 0.2)):
            return
        U = self.U
        hp = U(6.0, 9.0)
        arm = U(1.0, 2.2)
        objs = [self._pole_obj(X, Z, hp, U(0.15, 0.22))]
        xa = X - s * arm
        objs.append(_Obj("pole", self.cam.front_quad(min(X, xa), max(X, xa), Z, hp - 0.12, hp), "pole", {"col": self._pole_col}))
        objs.append(_Obj("pole", self.cam.front_quad(xa - 0.25, xa + 0.25, Z, hp - 0.3, hp - 0.05), "pole",
                         {"col": self._pole_col * 0.8}))
        self.add_standing(Z, objs, (X - 0.15, X + 0.15, Z - 0.15, Z + 0.15))

    def _sign_pole(self, X, Z, s):
        if not self.free((X - 0.4, X + 0.4, Z - 0.2, Z + 0.2)):
            return
        U, rng = self.U, self.rng
        hp = U(2.2, 3.0)
        objs = [self._pole_obj(X, Z, hp + 0.1, U(0.06, 0.1))]
        h = hp
        for _ in range(1 if rng.random() < 0.7 else 2):
            size = U(0.5, 0.85)
            objs.append(self._sign(X, Z, h, size))
            h -= size + 0.1
        self.add_standing(Z, objs, (X - 0.1, X + 0.1, Z - 0.1, Z + 0.1))

    def _sign(self, X, Z, h_top, size):
        rng = self.rng
        shape = rng.choice(["circle", "triangle", "rect", "diamond", "invtriangle"], p=[0.4, 0.2, 0.25, 0.1, 0.05])
        r = size / 2
        hc = h_top - r
        if shape == "circle":
            t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            uv = np.stack([r * np.cos(t), hc + r * np.sin(t)], 1)
        elif shape == "triangle":
            uv = np.array([[-r, hc - r * 0.8], [r, hc - r * 0.8], [0, hc + r]])
        elif shape == "invtriangle":
            uv = np.array([[-r, hc + r * 0.8], [0, hc - r], [r, hc + r * 0.8]])
        elif shape == "diamond":
            uv = np.array([[0, hc - r], [r, hc], [0, hc + r], [-r, hc]])
        else:
            w = r * self.U(0.8, 1.4)
            uv = np.array([[-w, hc - r], [w, hc - r], [w, hc + r], [-w, hc + r]])
        scheme = {"circle": [((200, 30, 30), (235, 235, 235)), ((30, 70, 170), (30, 70, 170))],
                  "triangle": [((200, 30, 30), (235, 235, 235))], "invtriangle": [((200, 30, 30), (235, 235, 235))],
                  "diamond": [((230, 190, 30), (240, 240, 240))],
                  "rect": [((30, 70, 170), (30, 70, 170)), ((235, 235, 235), (235, 235, 235)), ((30, 120, 60), (30, 120, 60))]}[shape]
        outer, inner = scheme[int(rng.integers(len(scheme)))]
        return _Obj("traffic sign", self.cam.billboard(uv, X, Z), "sign",
                    {"outer": np.array(outer, float), "inner": np.array(inner, float), "symbol": rng.random() < 0.7})

    def _traffic_light(self, X, Z, h_bottom):
        w, hh = self.U(0.3, 0.4), self.U(0.85, 1.05)
        poly = self.cam.front_quad(X - w / 2, X + w / 2, Z, h_bottom, h_bottom + hh)
        lamps = [self.cam.project(X, h_bottom + hh * f, Z) for f in (0.8, 0.5, 0.2)]
        r = float(w * 0.32 * self.cam.f / Z)
        return _Obj("traffic light", poly, "tlight",
                    {"body": np.array([36.0, 36.0, 40.0]) if self.rng.random() < 0.8 else np.array([150.0, 130.0, 40.0]),
                     "lamps": lamps, "r": r, "lit": int(self.rng.integers(3))})

    def _traffic_light_pole(self, X, Z, s, overhead):
        if not self.free((X - 0.3, X + 0.3, Z - 0.3, Z + 0.3)):
            return
        U = self.U
        if overhead:
            hp = U(5.8, 6.8)
            arm = U(3.0, 6.0)
            xa = X - s * arm
            objs = [self._pole_obj(X, Z, hp, U(0.2, 0.28)),
                    _Obj("pole", self.cam.front_quad(min(X, xa), max(X, xa), Z, hp - 0.5, hp - 0.3), "pole", {"col": self._pole_col})]
            for k in range(1 if arm < 4.5 else 2):
                objs.append(self._traffic_light(X - s * arm * (0.9 - 0.45 * k), Z, hp - 1.6))
        else:
            hp = U(2.6, 3.4)
            objs = [self._pole_obj(X, Z, hp, U(0.1, 0.15)), self._traffic_light(X, Z, hp)]
        self.add_standing(Z, objs, (X - 0.2, X + 0.2, Z - 0.2, Z + 0.2))

    def _static(self, X, Z):
        U, rng = self.U, self.rng
        kind = rng.choice(["bin", "bollard", "bench", "box"])
        w, h = {"bin": (U(0.5, 0.7), U(0.9, 1.1)), "bollard": (0.15, U(0.8, 1.0)),
                "bench": (U(1.4, 1.8), U(0.8, 0.9)), "box": (U(0.6, 1.0), U(1.0, 1.5))}[kind]
        box = (X - w / 2, X + w / 2, Z - 0.3, Z + 0.3)
        if not self.free(box):
            return
        col = {"bin": (60, 90, 60), "bollard": (70, 70, 72), "bench": (120, 85, 55), "box": (150, 150, 145)}[kind]
        label = "static" if rng.random() < 0.85 else "dynamic"
        self.add_standing(Z, [_Obj(label, self.cam.front_quad(X - w / 2, X + w / 2, Z, 0, h), "flat",
                                   {"col": np.array(col, float) * U(0.8, 1.2)})], box)

    # -- things ----------------------------------------------------------------------------------
    def _things(self, forced):
        rng, U = self.rng, self.U
        # parked cars along the kerbs (rows: lots of mutual occlusion)
        for s in (-1, 1):
            if not self.parking[s]:
                continue
            z = U(3, 15)
            while z < self.z_obj:
                if rng.random() < 0.2:
                    z += U(5, 20)
                    continue
                cls = "car" if rng.random() > 0.015 else "truck"
                spec = self._vehicle_spec(cls)
                zc = z + spec["L"] / 2
                if not any(z1 - 3 < zc < z2 + 3 for z1, z2, _ in self.crossings):
                    X = self.edge[s] - s * (spec["W"] / 2 + U(0.15, 0.5))
                    self._vehicle(cls, spec, X, zc, 0.0 if rng.random() < 0.7 else math.pi)
                z += spec["L"] + U(0.5, 4.0)
        # moving vehicles in the lanes
        for _ in range(int(rng.poisson(2.2))):
            self._lane_vehicle("car")
        for cls, lam in (("truck", 0.1), ("bus", 0.1)):
            for _ in range(int(rng.poisson(lam))):
                self._lane_vehicle(cls)
        if self.tram or forced in ("truck", "bus"):
            cls = "train" if self.tram else forced
            for _ in range(12):
                if self._lane_vehicle(cls, z_max=45.0 if forced == cls else None):
                    break
        for z1, z2, _ in self.crossings:  # traffic on the cross street
            for _ in range(int(rng.poisson(1.0))):
                cls = "car" if rng.random() < 0.9 else "truck"
                spec = self._vehicle_spec(cls)
                zc = (z1 + z2) / 2 + U(-2, 2)
                X = U(-self.L - 25, self.R + 25)
                self._vehicle(cls, spec, X, zc, math.pi / 2 if rng.random() < 0.5 else -math.pi / 2)
        # pedestrians, alone and in small groups
        busy = U(0.3, 2.0)  # some streets are crowded, some empty
        for _ in range(int(rng.poisson(5.5 * busy))):
            s = 1 if rng.random() < 0.5 else -1
            X = self.edge[s] + s * U(0.4, self.sw[s] - 0.2)
            Z = 3.5 + (self.z_obj - 3.5) * self.rng.random() ** 1.5
            for k in range(1 if rng.random() < 0.65 else int(rng.integers(2, 5))):
                self._person(X + U(-0.8, 0.8) * (k > 0), Z + U(-1.0, 1.0) * (k > 0))
        for _ in range(int(rng.poisson(0.6 * busy))):  # crossing the road
            self._person(U(-self.L, self.R), 5 + (self.z_obj - 5) * self.rng.random() ** 1.5)
        # bicycles parked, riders, motorcycles
        for _ in range(int(rng.poisson(1.3))):
            s = 1 if rng.random() < 0.5 else -1
            X = self.edge[s] + s * U(0.4, self.sw[s] - 0.3)
            Z = 4 + (self.z_obj - 4) * self.rng.random() ** 2
            for k in range(1 if rng.random() < 0.6 else int(rng.integers(2, 4))):
                self._two_wheeler("bicycle", X + s * 0.15 * k, Z + 0.7 * k, rider=False)
        for _ in range(int(rng.poisson(0.4))):
            self._two_wheeler("bicycle" if rng.random() < 0.75 else "motorcycle", None, None, rider=True)
        for _ in range(int(rng.poisson(0.1))):
            self._parked_motorcycle()
        for _ in range(12 if forced in ("rider", "motorcycle") else 0):  # placement can fail: retry
            if self._two_wheeler("bicycle" if forced == "rider" else "motorcycle", None, None, rider=True, z_max=30.0):
                break
        # far crowds
        if rng.random() < 0.12 and self.z_obj > 50:
            self._group("car", U(50, self.z_obj))
        if rng.random() < 0.08 and self.z_obj > 45:
            self._group("person", U(40, self.z_obj))

    def _vehicle_spec(self, cls):
        U, rng = self.U, self.rng
        if cls == "car":
            L, Wd = U(3.7, 4.9), U(1.65, 1.9)
            hb, hc = U(0.85, 1.0), U(1.35, 1.55) if rng.random() < 0.8 else U(1.6, 1.8)
            cl = L * U(0.48, 0.6)
            boxes = [("body", -L / 2, L / 2, Wd / 2, 0.12, hb), ("cabin", -cl / 2 - 0.1 * L, cl / 2 - 0.1 * L, Wd * 0.43, hb, hc)]
            wheels = [(-L / 2 + 0.75, 0.31), (L / 2 - 0.8, 0.31)]
            col = self.pick("car")
        elif cls == "truck":
            cab, cargo = U(1.8, 2.3), U(4.5, 8.0)
            L, Wd = cab + cargo + 0.3, U(2.3, 2.5)
            hcab, hcargo = U(2.4, 2.9), U(3.0, 3.8)
            boxes = [("cargo", -L / 2, -L / 2 + cargo, Wd / 2, 0.7, hcargo),
                     ("cab", L / 2 - cab, L / 2, Wd / 2 * 0.97, 0.35, hcab)]
            wheels = [(-L / 2 + 1.2, 0.5), (L / 2 - 1.2, 0.5)]
            col = self.pick("truck")
            cargo_col = np.array([215.0, 215.0, 212.0]) * self.U(0.9, 1.05) if rng.random() < 0.5 else col
        elif cls == "bus":
            L, Wd = (U(10.5, 12.5) if rng.random() < 0.85 else U(17, 18.5)), 2.55
            boxes = [("bus", -L / 2, L / 2, Wd / 2, 0.3, U(2.9, 3.2))]
            wheels = [(-L / 2 + 2.5, 0.5), (L / 2 - 2.7, 0.5)]
            col = self.pick("bus")
        elif cls == "train":
            L, Wd = U(20, 34), U(2.3, 2.65)
            boxes = [("train", -L / 2, L / 2, Wd / 2, 0.35, U(3.3, 3.7))]
            wheels = []
            col = self.pick("train")
        else:
            raise ValueError(cls)
        return {"cls": cls, "L": L, "W": Wd, "boxes": boxes, "wheels": wheels, "col": col,
                "cargo_col": cargo_col if cls == "truck" else col}

    def _lane_vehicle(self, cls, z_max=None):
        rng = self.rng
        spec = self._vehicle_spec(cls)
        if cls == "train":
            if self.track_x is None:
                self.tram = True
                self.track_x = min(self.lane_centres, key=lambda c: abs(c - 0.3))
                self.ground.append(_Obj("rail track", self.cam.ground_quad(self.track_x - 1.1, self.track_x + 1.1, 0.3, self.z_end),
                                        "rail", {"col": np.array([80.0, 80.0, 84.0]), "xc": self.track_x}))
            X = self.track_x
        else:
            X = self.lane_centres[int(rng.integers(len(self.lane_centres)))] + self.U(-0.3, 0.3)
        z0 = 6 + spec["L"] / 2
        z1 = max(min(self.z_obj, z_max or self.z_obj), 12 + spec["L"] / 2)
        zc = z0 + (z1 - z0) * float(rng.random()) ** 1.3
        oncoming = X < -self.lane_w / 2 and rng.random() < 0.85
        return self._vehicle(cls, spec, X, zc, math.pi if oncoming else 0.0)

    def _vehicle(self, cls, spec, Xc, Zc, yaw):
        cam = self.cam
        c, s_ = math.cos(yaw), math.sin(yaw)

        def world(l, w, h):
            l, w = np.asarray(l, float), np.asarray(w, float)
            return Xc + w * c + l * s_, h, Zc + l * c - w * s_

        L2, W2 = spec["L"] / 2, spec["W"] / 2
        corners = np.array([world(l, w, 0)[::2] for l in (-L2, L2) for w in (-W2, W2)])
        box = (corners[:, 0].min(), corners[:, 0].max(), corners[:, 1].min(), corners[:, 1].max())
        if box[2] < 2.0 or not self.free(box, margin=0.3):
            return False
        pts, faces = [], []
        cam_pos = np.array([0.0, cam.cam_h, 0.0])
        for role, l0, l1, w, h0, h1 in spec["boxes"]:
            for l in (l0, l1):
                for ww in (-w, w):
                    for h in (h0, h1):
                        X, H_, Z = world(l, ww, h)
                        pts.append((X, H_, Z))
            # faces: (name, 4 corners (bottom a, bottom b, top b, top a) or top face, outward normal)
            defs = [("front", [(l1, -w), (l1, w)], (1, 0)), ("rear", [(l0, w), (l0, -w)], (-1, 0)),
                    ("left", [(l0, -w), (l1, -w)], (0, -1)), ("right", [(l1, w), (l0, w)], (0, 1))]
            for name, ((la, wa), (lb, wb)), (nl, nw) in defs:
                n = np.array([nw * c + nl * s_, 0.0, nl * c - nw * s_])
                centre = np.array(world((la + lb) / 2, (wa + wb) / 2, (h0 + h1) / 2))
                if np.dot(n, cam_pos - centre) <= 0:
                    continue
                quad = np.array([world(la, wa, h0), world(lb, wb, h0), world(lb, wb, h1), world(la, wa, h1)])
                faces.append({"role": role, "name": name, "quad": quad, "shade": self._shade(n),
                              "dist": float(np.linalg.norm(centre - cam_pos))})
            if h1 < cam.cam_h:
                quad = np.array([world(l0, -w, h1), world(l1, -w, h1), world(l1, w, h1), world(l0, w, h1)])
                faces.append({"role": role, "name": "top", "quad": quad, "shade": self._shade(np.array([0.0, 1.0, 0.0])) * 1.05,
                              "dist": float(np.linalg.norm(np.array(world((l0 + l1) / 2, 0, h1)) - cam_pos))})
        wheels = []
        for lw, r in spec["wheels"]:
            for side_name, ww in (("left", -W2), ("right", W2)):
                t = np.linspace(0, 2 * np.pi, 14, endpoint=False)
                X, H_, Z = world(lw + r * np.cos(t), np.full_like(t, ww), r + r * np.sin(t))
                pts.append(tuple(np.array(world(lw, ww, 0.0), float)))
                wheels.append((side_name, cam.project(X, H_, Z), cam.project(*world(lw + 0.55 * r * np.cos(t), np.full_like(t, ww), r + 0.55 * r * np.sin(t)))))
        pts = np.array(pts, float)
        img_pts = cam.project(pts[:, 0], pts[:, 1], pts[:, 2]).astype(np.float32)
        hull = cv2.convexHull(img_pts).reshape(-1, 2).astype(np.float64)
        faces.sort(key=lambda f: -f["dist"])
        for f in faces:
            f["img"] = cam.project(f["quad"][:, 0], f["quad"][:, 1], f["quad"][:, 2])
        visible_sides = {f["name"] for f in faces if f["role"] in ("body", "cab", "bus", "train", "cargo")}
        p = {"cls": cls, "col": spec["col"], "cargo_col": spec["cargo_col"], "faces": faces, "wheels": [w for w in wheels if w[0] in visible_sides],
             "ground_shadow": cam.ground_quad(box[0] - 0.2, box[1] + 0.2, box[2] - 0.3, box[3] + 0.2)}
        obj = _Obj(cls, hull, "vehicle", p)
        objs = [obj]
        # license plate on the visible end face of cars (label id -1: not drawn into the label images)
        if cls in ("car", "truck"):
            for f in faces:
                if f["name"] in ("front", "rear") and f["role"] in ("body", "cab"):
                    plate = _face_sub(f["quad"], 0.37, 0.63, 0.25, 0.45)
                    ip = cam.project(plate[:, 0], plate[:, 1], plate[:, 2])
                    if np.ptp(ip[:, 0]) >= 3:
                        objs.append(_Obj("license plate", ip, "none", {}, parent=obj))
        self.add_standing(box[2], objs, box)
        return True

    def _person_outline(self, hp, stance, arms, narrow=1.0):
        r = 0.115 * hp / 1.75
        sw = 0.21 * hp / 1.75 * narrow
        hw = sw * 0.72
        t = np.linspace(np.pi / 2, -np.pi / 3, 6)
        head_r = [(r * math.cos(a), hp - r + r * math.sin(a)) for a in t]
        right = [(r * 0.45, hp - 2 * r), (sw, 0.82 * hp), (sw + 0.05 + arms, 0.47 * hp), (sw - 0.03 + arms, 0.45 * hp),
                 (sw - 0.04, 0.72 * hp), (hw, 0.5 * hp), (stance / 2 + 0.08, 0.0), (stance / 2 - 0.05, 0.0), (0.0, 0.46 * hp)]
        left = [(-x, y) for x, y in reversed(right)]
        left = [(-stance / 2 + 0.05, 0.0), (-stance / 2 - 0.08, 0.0)] + left[3:]
        head_l = [(-x, y) for x, y in reversed(head_r)]
        return np.array(head_r + right + left + head_l[:-1], float)

    def _person(self, X, Z):
        U, rng = self.U, self.rng
        if Z < 2.5:
            return False
        hp = U(1.5, 1.95)
        box = (X - 0.25, X + 0.25, Z - 0.25, Z + 0.25)
        if not self.free(box, margin=0.05):
            return False
        side = rng.random() < 0.5
        outline = self._person_outline(hp, U(0.2, 0.6) if side else U(0.14, 0.3), U(-0.02, 0.08),
                                       narrow=U(0.6, 0.75) if side else 1.0)
        if rng.random() < 0.5:
            outline[:, 0] *= -1
            outline = outline[::-1]
        p = self._person_colours(hp, X, Z)
        obj = _Obj("person", self.cam.billboard(outline, X, Z), "person", p)
        self.add_standing(Z, [obj], box)
        return True

    def _person_colours(self, hp, X, Z, lift=0.0):
        return {"hp": hp, "lift": lift, "X": X, "Z": Z, "shirt": self.pick("shirt"), "pants": self.pick("pants"),
                "skin": self.pick("skin"), "hair": self.pick("hair"), "shade": self._shade(np.array([0.0, 0.0, -1.0]))}

    def _parked_motorcycle(self, z_max=None):
        s = 1 if self.rng.random() < 0.5 else -1
        return self._two_wheeler("motorcycle", self.edge[s] + s * self.U(0.5, 1.0) * (1 if self.rng.random() < 0.5 else -1),
                                 self.U(5, min(self.z_obj, z_max or self.z_obj)), rider=False)

    def _two_wheeler(self, cls, X, Z, rider, z_max=None):
        U, rng, cam = self.U, self.rng, self.cam
        side_view = (not rider) or rng.random() < 0.3
        z_max = min(self.z_obj, z_max or self.z_obj)
        if rider:
            if side_view:  # crossing the street
                X, Z = U(-self.L, self.R), U(5, z_max)
            else:
                s = 1 if rng.random() < 0.6 else -1
                X, Z = self.edge[s] - s * U(0.6, 1.6), U(4, z_max)
        if Z < 3.0:
            return False
        length = 1.75 if cls == "bicycle" else 2.1
        squeeze = U(0.35, 1.0) if side_view else 1.0
        half = (length / 2 * squeeze + 0.1) if side_view else 0.45
        box = (X - half, X + half, Z - 0.4, Z + 0.4)
        if not self.free(box, margin=0.05):
            return False
        mirror = -1.0 if rng.random() < 0.5 else 1.0
        col = self.pick("bike") if cls == "bicycle" else np.array(self.pick("car"), float)
        if cls == "bicycle":
            outline, geo = _bicycle_outline(side_view)
        else:
            outline, geo = _motorcycle_outline(side_view)
        outline = outline * [mirror, 1.0]
        vehicle = _Obj(cls, cam.billboard(outline, X, Z, squeeze), "bicycle" if cls == "bicycle" else "motorcycle",
                       {"col": col, "side": side_view,
                        "geo": {k: (cam.billboard(np.asarray(v, float).reshape(-1, 2) * [mirror, 1.0], X, Z, squeeze))
                                for k, v in geo.items()},
                        "scale": cam.f / Z, "shade": self._shade(np.array([0.0, 0.0, -1.0]))})
        objs = [vehicle]
        if rider:
            seat = 0.95 if cls == "bicycle" else 0.85
            if side_view:
                ro = _rider_side_outline(seat) * [mirror, 1.0]
                hp = seat + 0.72
            else:
                hp = U(1.35, 1.5)
                ro = self._person_outline(hp, 0.22, 0.06)
                ro[:, 1] += 0.3
                hp += 0.3
            p = self._person_colours(hp, X, Z)
            p["helmet"] = cls == "motorcycle" or rng.random() < 0.4
            p["helmet_col"] = self.pick("car")
            objs.append(_Obj("rider", cam.billboard(ro, X, Z, squeeze if side_view else 1.0), "person", p))
        self.add_standing(Z, objs, box)
        return True

    def _group(self, cls, Z):
        """A far crowd annotated as one ``<class>group`` polygon (Cityscapes' crowd regions)."""
        U, rng = self.U, self.rng
        s = 1 if rng.random() < 0.5 else -1
        pts, parts = [], []
        if cls == "car":
            X = self.edge[s] - s * 1.1
            z = Z
            for _ in range(int(rng.integers(3, 6))):
                spec = self._vehicle_spec("car")
                L2, W2, hc = spec["L"] / 2, spec["W"] / 2, spec["boxes"][1][5]
                for l in (-L2, L2):
                    for w in (-W2, W2):
                        for h in (0.0, spec["boxes"][0][5]):
                            pts.append((X + w, h, z + l))
                    for w in (-W2 * 0.86, W2 * 0.86):
                        pts.append((X + w, hc, z + l * 0.5))
                parts.append(spec["col"])
                z += spec["L"] + U(0.3, 1.5)
            box = (X - 1.2, X + 1.2, Z - 2.5, z)
            kind = "crowd_car"
        else:
            X = self.edge[s] + s * self.sw[s] / 2
            for _ in range(int(rng.integers(4, 9))):
                x, z, h = X + U(-1.2, 1.2), Z + U(-2, 2), U(1.5, 1.9)
                pts += [(x - 0.25, 0.0, z), (x + 0.25, 0.0, z), (x - 0.25, h * 0.8, z), (x + 0.25, h * 0.8, z), (x, h, z)]
                parts.append(self.pick("shirt"))
            box = (X - 1.5, X + 1.5, Z - 2.3, Z + 2.3)
            kind = "crowd_person"
        if not self.free(box, margin=0.2):
            return False
        pts = np.array(pts, float)
        ip = self.cam.project(pts[:, 0], pts[:, 1], pts[:, 2]).astype(np.float32)
        hull = cv2.convexHull(ip).reshape(-1, 2).astype(np.float64)
        self.add_standing(box[2], [_Obj(cls + "group", hull, kind, {"cols": parts, "pts": ip})], box)
        return True

    def _void_regions(self):
        cam, U, rng = self.cam, self.U, self.rng
        W, H = cam.W, cam.H
        if rng.random() < 0.85:  # the ego vehicle's bonnet
            he = H * U(0.07, 0.13)
            xs = np.linspace(0, W - 1, 17)
            ys = H - 1 - he * (1 - 0.45 * ((xs - W / 2) / (W / 2)) ** 2)
            poly = np.concatenate([np.stack([xs, ys], 1), [[W - 1, H - 1], [0, H - 1]]])
            self.overlay.append(_Obj("ego vehicle", poly, "ego", {"col": np.array([40.0, 42.0, 48.0]) * U(0.7, 1.5),
                                                                   "top": float(ys.min())}))
            if rng.random() < 0.4:
                k = max(2.0, H * 0.012)
                self.overlay.append(_Obj("out of roi", np.array([[0, H - 1 - k], [W - 1, H - 1 - k], [W - 1, H - 1], [0, H - 1]]),
                                         "black", {}))
        if rng.random() < 0.35:
            k = max(2.0, W * U(0.004, 0.012))
            for x0, x1 in ((0.0, k), (W - 1.0, W - 1.0 - k)):
                self.overlay.append(_Obj("rectification border",
                                         np.array([[x0, 0], [x1, 0], [x1 + (x0 - x1) * 0.5, H - 1], [x0, H - 1]]), "black", {}))


def _face_sub(quad, a0, a1, b0, b1):
    """Sub-rectangle of a vertical face quad (bottom a, bottom b, top b, top a) in face coordinates."""
    pa, pb, pbt, pat = (np.asarray(q, float) for q in quad)

    def at(a, b):
        bottom = pa + (pb - pa) * a
        top = pat + (pbt - pat) * a
        return bottom + (top - bottom) * b

    return np.array([at(a0, b0), at(a1, b0), at(a1, b1), at(a0, b1)])


def _bicycle_outline(side_view):
    if not side_view:
        return (np.array([[-0.07, 0.0], [0.07, 0.0], [0.07, 0.6], [0.3, 0.98], [0.3, 1.08], [-0.3, 1.08], [-0.3, 0.98], [-0.07, 0.6]]),
                {"rear": [(0.0, 0.0), (0.0, 0.68)], "bar": [(-0.3, 1.03), (0.3, 1.03)]})
    R = 0.34
    rear_c, front_c = (-0.52, R), (0.52, R)
    rear = [(rear_c[0] + R * math.cos(a), R + R * math.sin(a)) for a in np.linspace(1.5 * np.pi, 0.5 * np.pi, 9)]
    front = [(front_c[0] + R * math.cos(a), R + R * math.sin(a)) for a in np.linspace(0.5 * np.pi, -0.5 * np.pi, 9)]
    pts = rear + [(-0.32, 0.86), (-0.4, 0.95), (-0.16, 0.97), (0.36, 0.94), (0.33, 1.05), (0.46, 1.07)] + front + [(0.0, 0.28)]
    geo = {"wheels": [rear_c, front_c, (rear_c[0] + R, R), (front_c[0] + R, R), (rear_c[0], 2 * R), (front_c[0], 2 * R)],
           "frame": [rear_c, (0.0, 0.3), (0.0, 0.3), (-0.3, 0.88), (-0.3, 0.88), rear_c, (0.0, 0.3), (0.4, 0.92),
                     (-0.3, 0.88), (0.4, 0.92), (0.4, 0.92), front_c, (0.38, 1.02), (0.46, 1.05), (-0.38, 0.95), (-0.18, 0.96)]}
    return np.array(pts, float), geo


def _motorcycle_outline(side_view):
    if not side_view:
        return (np.array([[-0.1, 0.0], [0.1, 0.0], [0.18, 0.5], [0.38, 1.05], [0.38, 1.15], [-0.38, 1.15], [-0.38, 1.05], [-0.18, 0.5]]),
                {"rear": [(0.0, 0.0), (0.0, 0.62)], "bar": [(-0.38, 1.1), (0.38, 1.1)]})
    R = 0.32
    rear_c, front_c = (-0.7, R), (0.7, R)
    rear = [(rear_c[0] + R * math.cos(a), R + R * math.sin(a)) for a in np.linspace(1.5 * np.pi, 0.75 * np.pi, 6)]
    front = [(front_c[0] + R * math.cos(a), R + R * math.sin(a)) for a in np.linspace(0.4 * np.pi, -0.5 * np.pi, 8)]
    pts = rear + [(-0.95, 0.8), (-0.3, 0.86), (0.05, 1.02), (0.45, 1.12), (0.55, 1.14), (0.75, 0.95)] + front + [(0.0, 0.22)]
    geo = {"wheels": [rear_c, front_c, (rear_c[0] + R, R), (front_c[0] + R, R), (rear_c[0], 2 * R), (front_c[0], 2 * R)],
           "frame": [(-0.3, 0.75), (0.4, 0.92)]}
    return np.array(pts, float), geo


def _rider_side_outline(seat):
    """A rider seen from the side, facing +u, sitting at height ``seat``."""
    pts = [(-0.24, seat - 0.02), (-0.16, seat + 0.36), (0.0, seat + 0.55), (0.08, seat + 0.62), (0.1, seat + 0.72),
           (0.2, seat + 0.78), (0.3, seat + 0.7), (0.3, seat + 0.6), (0.22, seat + 0.54), (0.46, seat + 0.2),
           (0.48, seat + 0.1), (0.36, seat + 0.12), (0.18, seat + 0.36), (0.06, seat + 0.1), (0.26, seat + 0.06),
           (0.3, seat - 0.02), (0.2, seat - 0.62), (0.25, seat - 0.68), (0.08, seat - 0.68), (0.13, seat - 0.08),
           (-0.06, seat - 0.1)]
    return np.array(pts, float)


# ---------------------------------------------------------------------------------------------
# Painting
# ---------------------------------------------------------------------------------------------
def _noise(rng, H, W, cell):
    gh, gw = max(2, int(math.ceil(H / cell)) + 2), max(2, int(math.ceil(W / cell)) + 2)
    g = rng.standard_normal((gh, gw)).astype(np.float32)
    big = cv2.resize(g, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)
    ox, oy = int(rng.integers(0, max(1, int(cell)))), int(rng.integers(0, max(1, int(cell))))
    out = big[oy:oy + H, ox:ox + W]
    return (out - out.mean()) / (out.std() + 1e-6)


class _Ctx:
    def __init__(self, rng, cam, comp):
        H, W = cam.H, cam.W
        self.rng, self.cam, self.comp, self.H, self.W = rng, cam, comp, H, W
        unit = max(W / 512.0, 0.125)
        self.n_lo = 0.6 * _noise(rng, H, W, 64 * unit) + 0.4 * _noise(rng, H, W, 20 * unit)
        self.n_mid = 0.5 * _noise(rng, H, W, 6 * unit) + 0.5 * _noise(rng, H, W, 3 * unit)
        self.n_px = rng.standard_normal((H, W)).astype(np.float32)
        self.n_leaf = 0.6 * _noise(rng, H, W, max(1.5, 2.2 * unit)) + 0.4 * self.n_px
        self.sunny = comp.sunny
        if self.sunny:
            self.sky_top = np.array([62.0, 112.0, 186.0]) * rng.uniform(0.85, 1.1)
            self.sky_hor = np.array([178.0, 202.0, 226.0]) * rng.uniform(0.9, 1.08)
        else:
            g = rng.uniform(160, 205)
            self.sky_top = np.array([g, g + 4, g + 12])
            self.sky_hor = np.array([g + 25, g + 27, g + 30]).clip(0, 250)

    def shadow(self, X, Z):
        """Multiplicative darkening of the ground at world points (X, Z) by building shadows."""
        if not self.sunny:
            return np.ones_like(X)
        m = np.zeros(X.shape, bool)
        for s, z1, z2, xe in self.comp.shadow_lots:
            # buildings on the sun's side throw their shadow into the street
            if s * self.comp.sun[0] <= 0:
                continue
            m |= (Z > z1) & (Z < z2) & ((X - xe) * s > 0)
        return np.where(m, 0.55, 1.0)


def _stripe(d, half_width, footprint):
    """Coverage of a stripe of half-width ``half_width`` at distance ``d`` for a pixel of size ``footprint``."""
    cov = np.clip((half_width - np.abs(d)) / footprint + 0.5, 0.0, 1.0)
    return np.minimum(cov, 2 * half_width / footprint)


def _plane_coords(ctx, p, yy, xx):
    cam = ctx.cam
    if p["plane"] == "side":
        X = p["coord"]
        dx = xx - cam.x_v
        ok = dx * X > 0
        Z = np.where(ok, cam.f * X / np.where(ok, dx, 1.0), 1e4).clip(0.3, 1e4)
        u = Z
    else:
        Z = np.full_like(xx, p["coord"])
        u = (xx - cam.x_v) * Z / cam.f
    h = cam.cam_h - (yy - cam.y_h) * Z / cam.f
    return u, h, Z


def _paint_sky(ctx, o, sl, yy, xx, patch):
    t = np.clip(yy / max(ctx.cam.y_h, 1.0), 0, 1)[..., None] ** 0.8
    col = ctx.sky_top * (1 - t) + ctx.sky_hor * t
    c = np.clip((ctx.n_lo[sl] - (0.3 if ctx.sunny else -0.5)) * 0.8, 0, 1)[..., None]
    cloud = np.array([235.0, 236.0, 240.0]) if ctx.sunny else ctx.sky_hor * 1.05
    col = col * (1 - 0.7 * c) + cloud * 0.7 * c
    return col + 3 * ctx.n_mid[sl][..., None]


def _paint_facade(ctx, o, sl, yy, xx, patch):
    p = o.p
    u, h, Z = _plane_coords(ctx, p, yy, xx)
    base = p["col"] * (1 + 0.05 * ctx.n_lo[sl] + 0.04 * ctx.n_mid[sl] + 0.03 * ctx.n_px[sl])[..., None]
    col = base.copy()
    if p.get("windows", True):
        fp = Z / ctx.cam.f  # metres per pixel
        a = np.clip((0.7 - fp) / 0.45, 0.2, 1.0)[..., None]
        fh = np.mod(h, p["floor"])
        fu = np.mod(u - p["u0"], p["spacing"])
        win = (fu < p["win_w"]) & (fh > p["sill"]) & (fh < p["sill"] + p["win_h"]) & (h > p["ground_floor"]) & (h < p["H"] - 0.8)
        glass = p["glass"] * (0.75 + 0.35 * (ctx.n_lo[sl] * 0.5 + 0.5))[..., None] + 25 * np.clip(ctx.n_mid[sl], 0, 2)[..., None] * 0.3
        frac = p["win_w"] * p["win_h"] / (p["spacing"] * p["floor"])
        avg = base * (1 - frac) + glass * frac
        col = np.where(win[..., None], glass * a + avg * (1 - a), base * a + avg * (1 - a))
        if p["shop"]:
            shop = (h > 0.3) & (h < p["ground_floor"] - 0.6) & (np.mod(u - p["u0"], 5.0) < 3.8)
            col = np.where(shop[..., None], glass * 0.8 * a + avg * (1 - a), col)
    top = h > p["H"] - 0.45
    col = np.where(top[..., None], col * 0.78, col)
    col = col * (1 - 0.12 * np.clip(1.2 - h, 0, 1.2))[..., None]  # dirt near the ground
    return col * p["shade"]


def _ground_xz(ctx, yy, xx):
    Z = ctx.cam.ground_depth(yy)
    X = (xx - ctx.cam.x_v) * Z / ctx.cam.f
    return X, Z


def _paint_road(ctx, o, sl, yy, xx, patch):
    p = o.p
    X, Z = _ground_xz(ctx, yy, xx)
    fp = np.maximum(Z / ctx.cam.f, 0.005)
    col = p["col"] * (1 + 0.06 * ctx.n_lo[sl] + 0.05 * ctx.n_mid[sl] + 0.07 * ctx.n_px[sl])[..., None]
    patchy = np.clip(ctx.n_lo[sl] * 2 - 1.6, 0, 1) * 0.25
    col = col * (1 - patchy)[..., None]
    a = np.zeros_like(X)
    for xl, period, dash in p["lines"]:
        on = 1.0 if period == 0 else (np.mod(Z, period) < dash)
        a = np.maximum(a, _stripe(X - xl, 0.07, fp) * on)
    if p["edge_lines"]:
        a = np.maximum(a, _stripe(X - (-p["L"] + 0.3), 0.08, fp))
        a = np.maximum(a, _stripe(X - (p["R"] - 0.3), 0.08, fp))
    for z0, z1 in p["crosswalks"]:
        a = np.maximum(a, ((Z > z0) & (Z < z1)) * _stripe(np.mod(X, 1.0) - 0.5, 0.25, fp))
    wear = np.clip(0.85 + 0.3 * ctx.n_mid[sl], 0.3, 1.0)
    a = (a * wear)[..., None]
    col = col * (1 - a) + p["paint"] * a
    return col * ctx.shadow(X, Z)[..., None] * (0.95 if not ctx.sunny else 1.0)


def _paint_rail(ctx, o, sl, yy, xx, patch):
    X, Z = _ground_xz(ctx, yy, xx)
    fp = np.maximum(Z / ctx.cam.f, 0.005)
    col = o.p["col"] * (1 + 0.08 * ctx.n_mid[sl] + 0.08 * ctx.n_px[sl])[..., None]
    a = np.zeros_like(X)
    for off in (-0.72, 0.72):
        a = np.maximum(a, _stripe(X - o.p["xc"] - off, 0.045, fp))
    col = col * (1 - a[..., None]) + np.array([175.0, 175.0, 180.0]) * a[..., None]
    return col * ctx.shadow(X, Z)[..., None]


def _paint_sidewalk(ctx, o, sl, yy, xx, patch):
    p = o.p
    X, Z = _ground_xz(ctx, yy, xx)
    fp = np.maximum(Z / ctx.cam.f, 0.005)
    col = p["col"] * (1 + 0.05 * ctx.n_lo[sl] + 0.05 * ctx.n_mid[sl] + 0.06 * ctx.n_px[sl])[..., None]
    t = p["tile"]
    joints = np.maximum(_stripe(np.mod(X, t) - t / 2, 0.012, fp), _stripe(np.mod(Z, t) - t / 2, 0.012, fp))
    col = col * (1 - 0.35 * joints)[..., None]
    kerb = _stripe(X - p["edge"], 0.15, fp)
    col = col * (1 - kerb[..., None]) + p["col"] * 1.12 * kerb[..., None]
    return col * ctx.shadow(X, Z)[..., None]


def _paint_terrain(ctx, o, sl, yy, xx, patch):
    X, Z = _ground_xz(ctx, yy, xx)
    c2 = o.p["col"] * np.array([1.1, 0.95, 0.8])
    m = np.clip(ctx.n_lo[sl] * 0.5 + 0.5, 0, 1)[..., None]
    col = o.p["col"] * (1 - m) + c2 * m
    col = col * (1 + 0.1 * ctx.n_mid[sl] + 0.12 * ctx.n_px[sl])[..., None]
    return col * ctx.shadow(X, Z)[..., None]


def _paint_veg(ctx, o, sl, yy, xx, patch):
    p = o.p
    if p.get("trunk"):
        return p["col"] * (1 + 0.15 * ctx.n_mid[sl] + 0.08 * ctx.n_px[sl])[..., None]
    leaf = ctx.n_leaf[sl]
    y0, y1 = yy.min(), yy.max() + 1
    light = 1.1 - 0.3 * (yy - y0) / max(y1 - y0, 1)
    col = p["col"] * (0.9 + 0.22 * leaf + 0.1 * ctx.n_lo[sl])[..., None] * light[..., None]
    yellow = np.clip(ctx.n_mid[sl] - 1.0, 0, 1)[..., None] * np.array([30.0, 25.0, 0.0])
    return (col + yellow) * (1.0 if not ctx.sunny else 0.95 + 0.1 * (ctx.comp.sun[1]))


def _paint_wall(ctx, o, sl, yy, xx, patch):
    p = o.p
    u, h, Z = _plane_coords(ctx, p, yy, xx)
    fp = np.maximum(Z / ctx.cam.f, 0.005)
    col = p["col"] * (1 + 0.05 * ctx.n_lo[sl] + 0.05 * ctx.n_mid[sl] + 0.04 * ctx.n_px[sl])[..., None]
    b = p["block"]
    joints = np.maximum(_stripe(np.mod(h, b) - b / 2, 0.01, fp), _stripe(np.mod(u, 2 * b) - b, 0.01, fp) * 0.6)
    col = col * (1 - 0.3 * joints)[..., None]
    return col * p["shade"]


def _paint_fence(ctx, o, sl, yy, xx, patch):
    p = o.p
    u, h, Z = _plane_coords(ctx, p, yy, xx)
    fp = np.maximum(Z / ctx.cam.f, 0.005)
    sp = p["spacing"]
    if p["style"] == 0:  # vertical bars
        a = _stripe(np.mod(u, sp) - sp / 2, 0.02, fp)
    elif p["style"] == 1:  # wire mesh
        a = np.maximum(_stripe(np.mod(u + h, sp) - sp / 2, 0.008, fp), _stripe(np.mod(u - h, sp) - sp / 2, 0.008, fp))
        a = np.maximum(a, 0.25)
    else:  # wooden planks with small gaps
        a = 1 - _stripe(np.mod(u, sp) - sp / 2, 0.015, fp) * 0.9
    rails = np.maximum(_stripe(h - p["H"] + 0.05, 0.05, fp), _stripe(h - 0.3, 0.04, fp))
    a = np.maximum(a, rails)[..., None]
    col = p["col"] * (1 + 0.06 * ctx.n_mid[sl] + 0.04 * ctx.n_px[sl])[..., None] * p["shade"]
    return patch * 0.85 * (1 - a) + col * a


def _paint_pole(ctx, o, sl, yy, xx, patch):
    x0, x1 = xx.min(), xx.max() + 1
    y0, y1 = yy.min(), yy.max() + 1
    if (x1 - x0) <= (y1 - y0):
        t = (xx - (x0 + x1 - 1) / 2) / max((x1 - x0) / 2, 0.5)
    else:
        t = (yy - (y0 + y1 - 1) / 2) / max((y1 - y0) / 2, 0.5)
    shade = 1.05 - 0.35 * np.abs(t) + 0.1 * np.sign(ctx.comp.sun[0]) * t
    return o.p["col"] * shade[..., None] * (1 + 0.05 * ctx.n_px[sl])[..., None]


def _paint_tlight(ctx, o, sl, yy, xx, patch):
    p = o.p
    col = np.broadcast_to(p["body"] * (1 + 0.05 * ctx.n_px[sl])[..., None], yy.shape + (3,)).copy()
    y0, x0 = int(yy[0, 0]), int(xx[0, 0])
    colours = [(235, 40, 30), (240, 180, 30), (40, 220, 110)]
    for k, c in enumerate(p["lamps"]):
        lit = k == p["lit"]
        rgb = np.array(colours[k], float) if lit else np.array(colours[k], float) * 0.25 + 10
        cv2.circle(col, (int(round((c[0] - x0) * 4)), int(round((c[1] - y0) * 4))), max(1, int(round(p["r"] * 4))),
                   tuple(float(v) for v in rgb), -1, lineType=cv2.LINE_8, shift=2)
    return col


def _paint_sign(ctx, o, sl, yy, xx, patch):
    p = o.p
    col = np.broadcast_to(p["outer"], yy.shape + (3,)).copy()
    y0, x0 = int(yy[0, 0]), int(xx[0, 0])
    poly = o.poly - [x0, y0]
    c = poly.mean(0)
    inner = (c + (poly - c) * 0.72) * 4
    cv2.fillPoly(col, [np.round(inner).astype(np.int32)], tuple(float(v) for v in p["inner"]), lineType=cv2.LINE_8, shift=2)
    if p["symbol"]:
        sym = (c + (poly - c) * np.array([0.3, 0.12])) * 4
        cv2.fillPoly(col, [np.round(sym).astype(np.int32)], (30.0, 30.0, 30.0), shift=2)
    return col * (1 + 0.04 * ctx.n_px[sl])[..., None] * 0.95


def _paint_person(ctx, o, sl, yy, xx, patch):
    p = o.p
    cam = ctx.cam
    s = cam.f / p["Z"]
    y_feet = cam.y_h + s * cam.cam_h
    v = (y_feet - yy) / s  # height above ground in metres
    hp = p["hp"]
    head = 0.23 * hp / 1.75
    col = np.zeros(yy.shape + (3,), np.float64)
    col[:] = p["pants"]
    col[v > 0.5 * hp] = p["shirt"]
    col[v > hp - head * 1.15] = p["skin"]
    hair_h = hp - head * (0.7 if p.get("helmet") else 0.35)
    col[v > hair_h] = p["helmet_col"] if p.get("helmet") else p["hair"]
    col[v < 0.05] = (30, 28, 28)
    xc = cam.x_v + s * p["X"]
    t = (xx - xc) / max(0.25 * s, 1.0)
    shade = (1.0 - 0.18 * np.clip(np.abs(t), 0, 1.5) + 0.12 * ctx.comp.sun[0] * t)
    return col * (shade * p["shade"] * (1 + 0.06 * ctx.n_mid[sl] + 0.05 * ctx.n_px[sl]))[..., None]


def _draw_wheels(col, geo, x0, y0, thick, tyre=(22.0, 22.0, 24.0), hub=None):
    w = np.asarray(geo["wheels"])
    for k in range(2):
        c = tuple(int(round(v * 4)) for v in w[k] - [x0, y0])
        axes = (max(1, int(round(abs(w[k + 2][0] - w[k][0]) * 4))), max(1, int(round(abs(w[k + 4][1] - w[k][1]) * 4))))
        cv2.ellipse(col, c, axes, 0.0, 0.0, 360.0, tyre, thickness=max(1, int(round(thick))) if hub is None else -1,
                    lineType=cv2.LINE_8, shift=2)
        if hub is not None:
            cv2.ellipse(col, c, (max(1, int(axes[0] * 0.45)), max(1, int(axes[1] * 0.45))), 0.0, 0.0, 360.0, hub, -1,
                        lineType=cv2.LINE_8, shift=2)


def _paint_bicycle(ctx, o, sl, yy, xx, patch):
    p = o.p
    col = patch.copy()
    y0, x0 = int(yy[0, 0]), int(xx[0, 0])
    thick = max(1.0, 0.04 * p["scale"])
    frame = tuple(float(v) for v in p["col"] * p["shade"])
    if p["side"]:
        _draw_wheels(col, p["geo"], x0, y0, thick)
        f = np.asarray(p["geo"]["frame"]) - [x0, y0]
        for a, b in zip(f[0::2], f[1::2]):
            cv2.line(col, tuple(int(round(v * 4)) for v in a), tuple(int(round(v * 4)) for v in b), frame,
                     max(1, int(round(thick))), shift=2)
    else:
        for key in ("rear", "bar"):
            a, b = np.asarray(p["geo"][key]) - [x0, y0]
            cv2.line(col, tuple(int(round(v * 4)) for v in a), tuple(int(round(v * 4)) for v in b),
                     (25.0, 25.0, 27.0) if key == "rear" else frame, max(1, int(round(thick * 1.5))), shift=2)
        col = col * 0.6 + np.asarray(frame) * 0.4  # a thin dark silhouette
    return col


def _paint_motorcycle(ctx, o, sl, yy, xx, patch):
    p = o.p
    y0, x0 = int(yy[0, 0]), int(xx[0, 0])
    body = np.array([38.0, 38.0, 42.0])
    col = np.broadcast_to(body, yy.shape + (3,)).copy()
    ys = yy.max() + 1 - yy
    h = (ys / max(p["scale"], 1e-3))
    tank = (h > 0.65) & (h < 1.0)
    col[tank] = p["col"] * p["shade"]
    if p["side"]:
        _draw_wheels(col, p["geo"], x0, y0, 1, tyre=(20.0, 20.0, 22.0), hub=(120.0, 120.0, 125.0))
    return col * (1 + 0.06 * ctx.n_mid[sl] + 0.05 * ctx.n_px[sl])[..., None]


def _paint_vehicle(ctx, o, sl, yy, xx, patch):
    p = o.p
    cam = ctx.cam
    y0, x0 = int(yy[0, 0]), int(xx[0, 0])
    base = p["col"]
    col = np.broadcast_to(base * 0.28 + 8, yy.shape + (3,)).copy()
    glass_top = np.array([60.0, 70.0, 85.0]) * (0.8 + 0.4 * ctx.rng.random())

    def fill(poly_img, colour):
        pts = np.round((np.asarray(poly_img) - [x0, y0]) * 4).astype(np.int32)
        cv2.fillPoly(col, [pts], tuple(float(v) for v in colour), lineType=cv2.LINE_8, shift=2)

    def proj(quad):
        return cam.project(quad[:, 0], quad[:, 1], quad[:, 2])

    cls = p["cls"]
    for f in p["faces"]:
        role, name, q = f["role"], f["name"], f["quad"]
        c = base * f["shade"]
        if role == "cargo":
            c = p["cargo_col"] * f["shade"]
        fill(f["img"], c)
        if name == "top":
            continue
        end = name in ("front", "rear")
        if role == "cabin":
            fill(proj(_face_sub(q, 0.06, 0.94, 0.08, 0.9)), glass_top * (0.8 if end else 0.7))
            if not end:
                fill(proj(_face_sub(q, 0.47, 0.53, 0.08, 0.9)), c)
        elif role == "body":
            fill(proj(_face_sub(q, 0.0, 1.0, 0.0, 0.16)), c * 0.45)
            if end:
                lamp = (170.0, 25.0, 20.0) if name == "rear" else (230.0, 230.0, 210.0)
                fill(proj(_face_sub(q, 0.04, 0.2, 0.62, 0.84)), lamp)
                fill(proj(_face_sub(q, 0.8, 0.96, 0.62, 0.84)), lamp)
                fill(proj(_face_sub(q, 0.37, 0.63, 0.25, 0.45)), (222.0, 222.0, 215.0))
                if name == "front":
                    fill(proj(_face_sub(q, 0.25, 0.75, 0.5, 0.75)), c * 0.35)
            else:
                fill(proj(_face_sub(q, 0.5, 0.51, 0.2, 0.95)), c * 0.7)
        elif role == "cab":
            if end or name in ("left", "right"):
                fill(proj(_face_sub(q, 0.08 if end else 0.35, 0.92, 0.55, 0.9)), glass_top * 0.8)
            if end:
                fill(proj(_face_sub(q, 0.05, 0.18, 0.12, 0.22)), (200.0, 200.0, 190.0) if name == "front" else (170.0, 25.0, 20.0))
                fill(proj(_face_sub(q, 0.82, 0.95, 0.12, 0.22)), (200.0, 200.0, 190.0) if name == "front" else (170.0, 25.0, 20.0))
                fill(proj(_face_sub(q, 0.37, 0.63, 0.04, 0.12)), (222.0, 222.0, 215.0))
        elif role in ("bus", "train"):
            if end:
                fill(proj(_face_sub(q, 0.06, 0.94, 0.45 if name == "front" else 0.6, 0.88)), glass_top * 0.8)
                fill(proj(_face_sub(q, 0.05, 0.18, 0.1, 0.18)), (200.0, 200.0, 190.0) if name == "front" else (170.0, 25.0, 20.0))
                fill(proj(_face_sub(q, 0.82, 0.95, 0.1, 0.18)), (200.0, 200.0, 190.0) if name == "front" else (170.0, 25.0, 20.0))
                if role == "bus" and name == "front":
                    fill(proj(_face_sub(q, 0.1, 0.9, 0.9, 0.97)), (230.0, 150.0, 30.0))
            else:
                length = float(np.linalg.norm(q[1] - q[0]))
                n_win = max(2, int(length / (1.4 if role == "bus" else 2.2)))
                fill(proj(_face_sub(q, 0.02, 0.98, 0.42, 0.86)), glass_top * 0.75)
                for k in range(1, n_win):
                    a = k / n_win
                    fill(proj(_face_sub(q, a - 0.08 / length, a + 0.08 / length, 0.42, 0.86)), c)
                if role == "train":
                    fill(proj(_face_sub(q, 0.0, 1.0, 0.18, 0.28)), np.array([230.0, 230.0, 228.0]) * f["shade"])
    for _, tyre, hub in p["wheels"]:
        fill(tyre, (20.0, 20.0, 22.0))
        fill(hub, (95.0, 95.0, 100.0))
    grad = 1.0 + 0.1 * (1 - (yy - yy.min()) / max(yy.max() - yy.min(), 1))
    return col * (grad * (1 + 0.04 * ctx.n_mid[sl] + 0.035 * ctx.n_px[sl]))[..., None]


def _paint_crowd(ctx, o, sl, yy, xx, patch):
    p = o.p
    col = patch * 0.9
    y0, x0 = int(yy[0, 0]), int(xx[0, 0])
    pts = p["pts"]
    per = len(pts) // max(len(p["cols"]), 1)
    for k, c in enumerate(p["cols"]):
        q = pts[k * per:(k + 1) * per] - [x0, y0]
        hull = cv2.convexHull((q * 4).astype(np.float32)).reshape(-1, 2)
        cv2.fillPoly(col, [np.round(hull).astype(np.int32)], tuple(float(v) for v in c), shift=2)
    return col * (1 + 0.05 * ctx.n_px[sl])[..., None]


def _paint_flat(ctx, o, sl, yy, xx, patch):
    return o.p["col"] * (1 + 0.08 * ctx.n_mid[sl] + 0.05 * ctx.n_px[sl])[..., None]


def _paint_ego(ctx, o, sl, yy, xx, patch):
    p = o.p
    t = np.clip((yy - p["top"]) / max(ctx.H - p["top"], 1), 0, 1)[..., None]
    col = p["col"] * (1.25 - 0.6 * t)
    return col + 18 * (1 - t) * (ctx.n_lo[sl][..., None] * 0.5 + 0.5)


def _paint_black(ctx, o, sl, yy, xx, patch):
    return np.broadcast_to(np.array([4.0, 4.0, 5.0]), yy.shape + (3,)) + 2 * np.abs(ctx.n_px[sl])[..., None]


_PAINTERS = {"sky": _paint_sky, "facade": _paint_facade, "road": _paint_road, "rail": _paint_rail,
             "sidewalk": _paint_sidewalk, "terrain": _paint_terrain, "veg": _paint_veg, "wall": _paint_wall,
             "fence": _paint_fence, "pole": _paint_pole, "tlight": _paint_tlight, "sign": _paint_sign,
             "person": _paint_person, "bicycle": _paint_bicycle, "motorcycle": _paint_motorcycle,
             "vehicle": _paint_vehicle, "crowd_car": _paint_crowd, "crowd_person": _paint_crowd,
             "flat": _paint_flat, "ego": _paint_ego, "black": _paint_black}


def _poly_mask(ipoly, width, height):
    """Pixels PIL's ``ImageDraw.polygon`` fills for ``ipoly`` (the rasteriser cityscapesscripts uses),
    as a boolean crop and its offset."""
    x0, y0 = int(ipoly[:, 0].min()), int(ipoly[:, 1].min())
    x1, y1 = int(ipoly[:, 0].max()), int(ipoly[:, 1].max())
    im = Image.new("L", (width, height), 0)
    ImageDraw.Draw(im).polygon([(int(x), int(y)) for x, y in ipoly], fill=1)
    return np.asarray(im.crop((x0, y0, x1 + 1, y1 + 1)), dtype=bool), x0, y0


def _object_index_map(objs, width, height):
    """0 = nothing, k+1 = object k; drawn like cityscapesscripts draws label images."""
    im = Image.new("I", (width, height), 0)
    draw = ImageDraw.Draw(im)
    for k, o in enumerate(objs):
        if name2label[_base_label(o.label)].id < 0:
            continue
        draw.polygon([(int(x), int(y)) for x, y in o.ipoly], fill=k + 1)
    return np.asarray(im)


def _visible_enough(mask):
    if int(mask.sum()) < MIN_VISIBLE_PIXELS:
        return False
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (stats[best, cv2.CC_STAT_AREA] >= MIN_VISIBLE_PIXELS and stats[best, cv2.CC_STAT_WIDTH] >= 3
            and stats[best, cv2.CC_STAT_HEIGHT] >= 3)


def _drop_hidden_things(objs, width, height):
    """Remove thing instances (and their license plates) that are (nearly) fully occluded, so that
    every instance in the JSON is visible in the PNGs and found by every loader."""
    for _ in range(4):
        idx = _object_index_map(objs, width, height)
        dropped = set()
        for k, o in enumerate(objs):
            if not name2label[_base_label(o.label)].hasInstances:
                continue
            x0, y0 = o.ipoly.min(0)
            x1, y1 = o.ipoly.max(0)
            if not _visible_enough(idx[y0:y1 + 1, x0:x1 + 1] == k + 1):
                dropped.add(id(o))
        objs = [o for o in objs if id(o) not in dropped and (o.parent is None or id(o.parent) not in dropped)]
        if not dropped:
            return objs, idx
    raise AssertionError("occlusion pruning did not converge")  # removal only uncovers pixels: unreachable


def _finish(ctx, canvas):
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


def _render(ctx, objs, idx_expected):
    H, W = ctx.H, ctx.W
    canvas = np.zeros((H, W, 3), np.float32)
    painted = np.zeros((H, W), np.int32)
    for k, o in enumerate(objs):
        if o.kind == "none":
            continue
        if "ground_shadow" in o.p:  # darken the ground under and around a vehicle, softly
            g = np.clip(o.p["ground_shadow"], -1e5, 1e5)
            gx0, gy0 = (int(max(np.floor(g[:, 0].min()) - 4, 0)), int(max(np.floor(g[:, 1].min()) - 4, 0)))
            gx1, gy1 = (int(min(np.ceil(g[:, 0].max()) + 5, W)), int(min(np.ceil(g[:, 1].max()) + 5, H)))
            if gx1 > gx0 and gy1 > gy0:
                m = np.zeros((gy1 - gy0, gx1 - gx0), np.float32)
                cv2.fillPoly(m, [np.round((g - [gx0, gy0]) * 4).astype(np.int32)], 1.0, shift=2)
                m = cv2.GaussianBlur(m, (0, 0), 1.0)
                canvas[gy0:gy1, gx0:gx1] *= (1 - 0.45 * m)[..., None]
        mask, x0, y0 = _poly_mask(o.ipoly, W, H)
        h, w = mask.shape
        sl = (slice(y0, y0 + h), slice(x0, x0 + w))
        yy, xx = np.mgrid[y0:y0 + h, x0:x0 + w].astype(np.float64)
        col = _PAINTERS[o.kind](ctx, o, sl, yy, xx, canvas[sl].astype(np.float64))
        canvas[sl][mask] = np.asarray(col, np.float32)[mask]
        painted[sl][mask] = k + 1
    if not np.array_equal(painted, idx_expected):
        raise AssertionError("RGB painting and label rasterisation disagree")  # internal invariant
    return _finish(ctx, canvas)


# ---------------------------------------------------------------------------------------------
# One sample
# ---------------------------------------------------------------------------------------------
def _json_text(height, width, objects):
    lines = ",\n".join("        " + json.dumps(o, separators=(", ", ": ")) for o in objects)
    return ('{\n    "imgHeight": %d,\n    "imgWidth": %d,\n    "objects": [\n%s\n    ]\n}\n'
            % (height, width, lines))


def _annotation_from_text(text):
    ann = Annotation()
    ann.fromJsonText(text)
    return ann


def _scene(seed, split, index, height, width):
    """Compose the scene and finalise its polygon list (clipped, rounded, occluded things removed)."""
    rng = _image_rng(seed, split, index)
    cam = _Camera(rng, height, width)
    comp = _Composer(rng, cam, index)
    objs = []
    for o in comp.compose():
        o.ipoly = _clip_round(o.poly, width, height)
        if o.ipoly is not None:
            objs.append(o)
    objs = [o for o in objs if o.parent is None or any(o.parent is q for q in objs)]
    objs, idx = _drop_hidden_things(objs, width, height)
    return rng, cam, comp, objs, idx


def scene_instance_counts(seed: int, split: str, index: int, height: int = 256, width: int = 512) -> dict:
    """``{label: count}`` of the thing and group polygons image ``index`` gets (full labels), without
    painting it: a cheap way to look at class frequencies over many images."""
    _check_params(seed, height, width, {split: index + 1}, "full")
    objs = _scene(seed, split, index, height, width)[3]
    counts = {}
    for o in objs:
        if name2label[_base_label(o.label)].hasInstances:
            counts[o.label] = counts.get(o.label, 0) + 1
    return counts


def render_sample(seed: int, split: str, index: int, height: int = 256, width: int = 512,
                  test_gt: str = "dummy") -> dict:
    """Build one sample in memory.

    Returns a dict with ``image`` (H x W x 3 uint8 RGB), ``polygons`` (the JSON text),
    ``labelIds``/``labelTrainIds`` (uint8), ``color`` (H x W x 4 uint8 RGBA), ``instanceIds``
    (uint16), and ``counts`` ({label: number of polygons} for the thing and group labels in the
    ground truth).  Label images are rasterised from the JSON by cityscapesscripts.
    """
    _check_params(seed, height, width, {split: index + 1}, test_gt)
    rng, cam, comp, objs, idx = _scene(seed, split, index, height, width)
    ctx = _Ctx(rng, cam, comp)
    image = _render(ctx, objs, idx)

    gt_objs = objs
    if split == "test" and test_gt == "dummy":
        gt_objs = [o for o in objs if o.label in _VOID_REGION_LABELS]
    text = _json_text(height, width, [{"label": o.label, "polygon": o.ipoly.tolist()} for o in gt_objs])
    ann = _annotation_from_text(text)
    label_ids = np.asarray(createLabelImage(ann, "ids"), np.uint8)
    train_ids = np.asarray(createLabelImage(ann, "trainIds"), np.uint8)
    color = np.asarray(createLabelImage(ann, "color"), np.uint8)
    inst = np.asarray(createInstanceImage(ann, "ids"))
    if inst.min() < 0 or inst.max() > 65535:
        raise AssertionError("instance id out of uint16 range")
    if gt_objs is objs:  # the painted image and the label image come from the same rasterisation
        lut = np.array([0] + [max(name2label[_base_label(o.label)].id, 0) for o in objs], np.int64)
        if not np.array_equal(lut[idx], label_ids):
            raise AssertionError("labelIds differ from the painted scene")
    counts = {}
    for o in gt_objs:
        if name2label[_base_label(o.label)].hasInstances:
            counts[o.label] = counts.get(o.label, 0) + 1
    return {"image": image, "polygons": text, "labelIds": label_ids, "labelTrainIds": train_ids,
            "color": color, "instanceIds": inst.astype(np.uint16), "counts": counts}


# ---------------------------------------------------------------------------------------------
# Files, manifest, generation
# ---------------------------------------------------------------------------------------------
def _atomic_write(path, data: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _png_bytes(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _write_sample(root, split, index, sample):
    paths = sample_paths(root, split, index)
    for kind in ("labelIds", "instanceIds", "labelTrainIds", "color"):
        _atomic_write(paths[kind], _png_bytes(sample[kind]))
    _atomic_write(paths["polygons"], sample["polygons"].encode("utf-8"))
    _atomic_write(paths["image"], _png_bytes(sample["image"]))


def _check_params(seed, height, width, num_images, test_gt):
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    for name, v, lo in (("height", height, 32), ("width", width, 64)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not lo <= v <= 4096:
            raise ValueError(f"{name} must be an integer in [{lo}, 4096], got {v!r}")
    for split, n in num_images.items():
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 0 <= n <= 1_000_000:
            raise ValueError(f"num_images[{split!r}] must be a non-negative integer, got {n!r}")
    if test_gt not in _TEST_GT_CHOICES:
        raise ValueError(f"test_gt must be one of {_TEST_GT_CHOICES}, got {test_gt!r}")


def read_manifest(root: str) -> dict | None:
    """The manifest of the dataset at ``root``, ``None`` if there is none; a clear error if it is
    unreadable."""
    path = os.path.join(root, MANIFEST_NAME)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise SyntheticDatasetError(f"{path}: not a readable synthetic-Cityscapes manifest ({e}); "
                                    "delete it or pass --overwrite") from e
    if not isinstance(data, dict) or data.get("generator") != GENERATOR_NAME or not isinstance(data.get("params"), dict):
        raise SyntheticDatasetError(f"{path}: not a manifest written by {GENERATOR_NAME} "
                                    "(missing 'generator'/'params'); delete it or pass --overwrite")
    return data


def _missing_files(root, num_images):
    missing = []
    for split in SPLITS:
        for i in range(num_images.get(split, 0)):
            missing += [p for p in sample_paths(root, split, i).values() if not os.path.isfile(p)]
    return missing


def generate_synthetic_cityscapes(root: str, seed: int = 0, height: int = 256, width: int = 512,
                                  num_images: dict | None = None, overwrite: bool = False,
                                  progress: bool = True, test_gt: str = "dummy") -> dict:
    """Write the synthetic dataset under ``root`` (e.g. ``$DETECTRON2_DATASETS/cityscapes``).

    ``num_images`` maps split -> count (missing splits: 0); default ``DEFAULT_NUM_IMAGES``.

    Idempotent: if ``root`` already holds a complete dataset made with the same parameters (and
    generator version), nothing is written.  A ``root`` holding another dataset -- a manifest with
    other parameters, or no manifest but files (e.g. a real Cityscapes) -- is refused with
    :class:`SyntheticDatasetError` unless ``overwrite=True``, which deletes ``root/leftImg8bit`` and
    ``root/gtFine`` (nothing else) first.  A run interrupted before its end leaves an incomplete
    manifest and is redone by the next run with the same parameters.  Every file is written to a
    temporary name and renamed; the manifest is written last.  Returns the manifest.
    """
    num_images = dict(DEFAULT_NUM_IMAGES if num_images is None else num_images)
    _check_params(seed, height, width, num_images, test_gt)
    num_images = {s: int(num_images.get(s, 0)) for s in SPLITS}
    params = {"seed": int(seed), "height": int(height), "width": int(width), "num_images": num_images,
              "test_gt": test_gt, "generator_version": GENERATOR_VERSION}
    root = os.path.abspath(root)
    manifest_path = os.path.join(root, MANIFEST_NAME)
    if os.path.exists(root) and not os.path.isdir(root):
        raise SyntheticDatasetError(f"{root}: exists and is not a directory")

    wipe = False
    try:
        old = read_manifest(root)
    except SyntheticDatasetError:
        if not overwrite:
            raise
        old = None
    if old is not None and (not overwrite or (old["params"] == params and old.get("complete") is True)):
        if old["params"] == params and old.get("complete") is True:
            missing = _missing_files(root, num_images)
            if not missing:
                logger.info("%s already holds the synthetic Cityscapes dataset with these parameters "
                            "(seed=%d, %dx%d, %s): nothing to do.", root, seed, height, width, num_images)
                return old
            logger.warning("%s: the manifest says complete but %d files are missing (e.g. %s); regenerating.",
                           root, len(missing), missing[0])
            wipe = True
        elif old["params"] == params:
            logger.info("%s: completing an interrupted generation with the same parameters.", root)
            wipe = True
        else:
            raise SyntheticDatasetError(
                f"{manifest_path}: the dataset there was generated with other parameters "
                f"({json.dumps(old['params'], sort_keys=True)}) than asked ({json.dumps(params, sort_keys=True)}). "
                "Pass --overwrite (overwrite=True) to delete its leftImg8bit/ and gtFine/ and regenerate, "
                "or choose another output folder.")
    elif overwrite:
        wipe = True
    elif os.path.isdir(root) and os.listdir(root):
        raise SyntheticDatasetError(
            f"{root}: the folder is not empty and has no {MANIFEST_NAME} (a real Cityscapes, or other files?). "
            "Refusing to write into it. Pass --overwrite (overwrite=True) to delete its leftImg8bit/ and gtFine/ "
            "and generate there, or choose another output folder.")
    if wipe:
        for sub in ("leftImg8bit", "gtFine"):
            shutil.rmtree(os.path.join(root, sub), ignore_errors=True)
        if os.path.exists(manifest_path):
            os.remove(manifest_path)

    manifest = {"generator": GENERATOR_NAME, "params": params, "complete": False,
                "layout": "cityscapes", "label_table": "cityscapesscripts.helpers.labels",
                "cities": {s: list(CITIES[s]) for s in SPLITS},
                "description": "Procedural street scenes in the Cityscapes on-disk format "
                               "(seethroughnet.data.synthetic_cityscapes)."}
    os.makedirs(root, exist_ok=True)
    _atomic_write(manifest_path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())

    jobs = [(s, i) for s in SPLITS for i in range(num_images[s])]
    counts = {s: {} for s in SPLITS}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc=f"synthetic cityscapes -> {root}", unit="img")
    try:
        for split, i in jobs:
            sample = render_sample(seed, split, i, height, width, test_gt)
            _write_sample(root, split, i, sample)
            for k, v in sample["counts"].items():
                counts[split][k] = counts[split].get(k, 0) + v
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    manifest["complete"] = True
    manifest["instances"] = {s: dict(sorted(c.items())) for s, c in counts.items()}
    _atomic_write(manifest_path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    logger.info("wrote %d images (%s) to %s", len(jobs), num_images, root)
    return manifest


# ---------------------------------------------------------------------------------------------
# Statistics and preview
# ---------------------------------------------------------------------------------------------
def compute_statistics(root: str, splits=("train", "val")) -> dict:
    """Class statistics measured from the label PNGs on disk (not from the generator's state):
    per split, the fraction of pixels of each label (``pixels``) and the number of thing instances
    (``instances``, ids >= 1000) and crowd regions (``groups``) per class, and ``images``."""
    out = {}
    for split in splits:
        pix = np.zeros(256, np.int64)
        inst, groups, n_img = {}, {}, 0
        gt_root = os.path.join(root, "gtFine", split)
        if not os.path.isdir(gt_root):
            continue
        for city in sorted(os.listdir(gt_root)):
            for fn in sorted(os.listdir(os.path.join(gt_root, city))):
                if not fn.endswith("_gtFine_labelIds.png"):
                    continue
                path = os.path.join(gt_root, city, fn)
                lab = np.asarray(Image.open(path))
                ins = np.asarray(Image.open(path.replace("_labelIds.png", "_instanceIds.png")))
                pix += np.bincount(lab.ravel(), minlength=256)
                for v in np.unique(ins):
                    v = int(v)
                    if v >= 1000:
                        name = id2label[v // 1000].name
                        inst[name] = inst.get(name, 0) + 1
                    elif id2label[v].hasInstances:
                        name = id2label[v].name
                        groups[name] = groups.get(name, 0) + 1
                n_img += 1
        total = max(int(pix.sum()), 1)
        out[split] = {"images": n_img,
                      "pixels": {id2label[i].name: float(pix[i]) / total for i in np.nonzero(pix)[0]},
                      "instances": inst, "groups": groups}
    return out


def format_statistics(stats: dict) -> str:
    """A Markdown table of :func:`compute_statistics`' output: evaluated classes, then void."""
    splits = list(stats)
    head = "| class | trainId | " + " | ".join(f"{s} pixels %" for s in splits) + " | " + \
           " | ".join(f"{s} instances" for s in splits) + " |"
    rows = [head, "|" + "---|" * (2 + 2 * len(splits))]
    evaluated = sorted((l for l in CS_LABELS if l.trainId not in (255, -1)), key=lambda l: l.trainId)
    for l in evaluated + [None]:
        if l is None:
            name, tid = "void (ignored)", "255"
            pct = [100 * sum(v for k, v in stats[s]["pixels"].items()
                             if name2label[k].trainId in (255, -1)) for s in splits]
        else:
            name, tid = l.name, str(l.trainId)
            pct = [100 * stats[s]["pixels"].get(l.name, 0.0) for s in splits]
        ins = []
        for s in splits:
            if l is not None and l.hasInstances:
                g = stats[s]["groups"].get(l.name, 0)
                ins.append(str(stats[s]["instances"].get(l.name, 0)) + (f" (+{g} groups)" if g else ""))
            else:
                ins.append("")
        rows.append(f"| {name} | {tid} | " + " | ".join(f"{p:.2f}" for p in pct) + " | " + " | ".join(ins) + " |")
    rows.append("| images | | " + " | ".join(str(stats[s]["images"]) for s in splits) + " | " + " | " * len(splits))
    return "\n".join(rows)


def write_preview(root: str, out_path: str, split: str = "train", n: int = 4, indices=None) -> str:
    """A PNG grid: ``n`` images of ``split`` (left) next to their colour labels (right)."""
    manifest = read_manifest(root)
    if manifest is None:
        raise SyntheticDatasetError(f"{root}: no {MANIFEST_NAME}; generate the dataset first")
    count = manifest["params"]["num_images"].get(split, 0)
    if count == 0:
        raise SyntheticDatasetError(f"{root}: the {split!r} split is empty; nothing to preview")
    indices = list(range(min(n, count))) if indices is None else list(indices)
    rows = []
    for i in indices:
        p = sample_paths(root, split, i)
        img = np.asarray(Image.open(p["image"]).convert("RGB"))
        colour = np.asarray(Image.open(p["color"]).convert("RGB"))
        sep = np.full((img.shape[0], 4, 3), 255, np.uint8)
        rows.append(np.concatenate([img, sep, colour], axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    grid = np.concatenate(rows[:-1], axis=0)
    _atomic_write(os.path.abspath(out_path), _png_bytes(grid))
    return out_path
