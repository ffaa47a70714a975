"""Scene layout: the street itself (sky, end-of-street backdrop, road, sidewalks, the lots on
both sides with buildings, parks, walls, fences, hedges and trees).

:class:`StreetLayout` holds the scene state and the composition order; its ``compose`` also
calls ``_street_furniture`` (:class:`.furniture.StreetFurnitureMixin`), ``_things`` and
``_void_regions`` (:class:`.things.ThingsMixin`), put together in :class:`.scene.SceneComposer`.
Every random draw comes from the image's generator in a fixed order: reordering calls changes
the images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class SceneObject:
    """One polygon of the scene: its label, its outline and how it is painted."""

    label: str
    poly: np.ndarray  # float image coordinates, (N, 2)
    kind: str  # painter
    p: dict = field(default_factory=dict)
    parent: "SceneObject | None" = None  # license plates belong to their vehicle
    ipoly: np.ndarray | None = None  # final integer polygon


PALETTE = {
    "car": [
        ((225, 225, 222), 3),
        ((172, 174, 178), 3),
        ((110, 112, 116), 2),
        ((30, 30, 33), 3),
        ((35, 45, 85), 1),
        ((150, 28, 26), 1),
        ((45, 75, 140), 1),
        ((42, 66, 52), 0.5),
        ((190, 176, 142), 0.5),
        ((210, 170, 40), 0.2),
    ],
    "building": [
        ((200, 186, 160), 3),
        ((226, 216, 192), 2),
        ((182, 181, 176), 2),
        ((130, 130, 128), 2),
        ((152, 82, 62), 1.5),
        ((118, 72, 56), 1),
        ((222, 222, 216), 1.5),
        ((220, 200, 140), 1),
        ((168, 184, 196), 0.7),
        ((88, 88, 93), 1),
    ],
    "sidewalk": [
        ((166, 161, 156), 3),
        ((186, 176, 166), 2),
        ((150, 146, 152), 2),
        ((170, 132, 122), 1),
    ],
    "wall": [((162, 156, 146), 2), ((192, 186, 170), 2), ((122, 121, 118), 2), ((148, 88, 70), 1)],
    "fence": [((72, 76, 76), 3), ((52, 82, 62), 1), ((132, 96, 62), 2), ((198, 198, 196), 1)],
    "pole": [((122, 124, 128), 3), ((62, 64, 68), 2), ((46, 72, 56), 1)],
    "veg": [((60, 96, 36), 3), ((82, 112, 46), 2), ((46, 72, 30), 2), ((96, 122, 62), 1)],
    "terrain": [((122, 136, 72), 3), ((142, 140, 92), 2), ((108, 120, 60), 2), ((150, 128, 92), 1)],
    "shirt": [
        ((32, 32, 36), 3),
        ((205, 205, 205), 2),
        ((150, 32, 32), 1),
        ((42, 62, 122), 2),
        ((92, 92, 96), 2),
        ((182, 162, 122), 1),
        ((62, 92, 62), 1),
        ((222, 182, 62), 0.5),
    ],
    "pants": [((32, 38, 62), 3), ((26, 26, 28), 3), ((82, 82, 86), 1), ((172, 152, 122), 1)],
    "skin": [((232, 192, 162), 3), ((202, 152, 112), 2), ((142, 96, 66), 1), ((92, 62, 42), 1)],
    "hair": [((32, 26, 22), 3), ((82, 56, 36), 2), ((182, 152, 92), 1), ((122, 122, 122), 1)],
    "bus": [
        ((210, 180, 30), 1),
        ((180, 30, 30), 1),
        ((30, 80, 150), 1),
        ((225, 225, 225), 1),
        ((40, 120, 70), 0.7),
    ],
    "train": [((220, 220, 215), 1), ((200, 40, 40), 1), ((240, 200, 40), 1), ((40, 90, 160), 0.7)],
    "truck": [
        ((235, 235, 235), 3),
        ((200, 40, 35), 1),
        ((40, 70, 140), 1),
        ((60, 60, 62), 1),
        ((220, 190, 60), 0.5),
    ],
    "bike": [
        ((30, 30, 32), 3),
        ((170, 30, 30), 1),
        ((40, 70, 150), 1),
        ((200, 200, 200), 1),
        ((40, 110, 60), 0.5),
    ],
}


class StreetLayout:
    """The street of one image, composed as ordered lists of :class:`SceneObject`."""

    def __init__(self, rng, cam, index):
        self.rng, self.cam, self.index = rng, cam, index
        # drawing order: bg, ground, facades, lots, standing (far to near), overlay
        self.bg, self.ground, self.facades, self.lots = [], [], [], []
        self.standing, self.overlay = [], []
        self.footprints = []  # axis-aligned (X0, X1, Z0, Z1) of things and poles on the ground
        self.counter = 0

    # -- small helpers --------------------------------------------------------------------
    def U(self, a, b):
        return float(self.rng.uniform(a, b))

    def pick(self, key):
        items = PALETTE[key]
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
        rng, U = self.rng, self.U
        self.L, self.R = U(3.2, 7.5), U(3.2, 7.5)
        self.edge = {-1: -self.L, 1: self.R}
        self.sw = {-1: U(1.6, 4.5), 1: U(1.6, 4.5)}
        self.z_end = U(55.0, 170.0) if rng.random() < 0.65 else 400.0
        self.z_obj = min(self.z_end - 6.0, 95.0)
        self.sunny = rng.random() < 0.6
        az = U(-1.0, 1.0)
        el = U(0.35, 0.9)
        self.sun = np.array(
            [
                math.sin(az) * math.cos(el),
                math.sin(el),
                -abs(math.cos(az)) * math.cos(el) * U(0.2, 1),
            ]
        )
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
        whole = np.array([[0, 0], [W - 1, 0], [W - 1, H - 1], [0, H - 1]], float)
        self.bg.append(SceneObject("sky", whole, "sky", {"sunny": self.sunny}))
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
                outline = cam.project([p[0] for p in pts], [p[1] for p in pts], ze)
                self.bg.append(SceneObject("vegetation", outline, "veg", {"col": self.pick("veg")}))
            else:
                hb = U(8, 30) if not open_street else U(5, 45)
                pts = [(x, 0.0), (x + w, 0.0), (x + w, hb)]
                if rng.random() < 0.3:  # gable roof
                    pts.append((x + w / 2, hb + U(2, 5)))
                elif rng.random() < 0.3:  # stepped top
                    pts += [
                        (x + w * 0.6, hb),
                        (x + w * 0.6, hb + U(2, 6)),
                        (x + w * 0.2, hb + U(2, 6)),
                        (x + w * 0.2, hb),
                    ]
                pts.append((x, hb))
                outline = cam.project([p[0] for p in pts], [p[1] for p in pts], ze)
                self.bg.append(
                    SceneObject("building", outline, "facade", self._facade_style("front", ze, hb))
                )
            x += w

    def _facade_style(self, plane, coord, height, shade=None):
        U, rng = self.U, self.rng
        floor = U(2.8, 3.6)
        p = {
            "plane": plane,
            "coord": coord,
            "col": self.pick("building"),
            "H": height,
            "floor": floor,
            "spacing": U(2.2, 4.0),
            "u0": U(0, 4),
            "win_w": U(0.9, 1.6),
            "sill": U(0.7, 1.0),
            "win_h": floor * U(0.4, 0.55),
            "ground_floor": U(3.0, 4.5) if rng.random() < 0.7 else floor,
            "shop": rng.random() < 0.5,
            "glass": np.array([U(30, 70), U(40, 80), U(55, 100)]),
            "windows": rng.random() < 0.92,
        }
        if shade is None:
            n = (
                np.array([0.0, 0.0, -1.0])
                if plane == "front"
                else np.array([-math.copysign(1.0, coord), 0.0, 0.0])
            )
            shade = self._shade(n)
        p["shade"] = shade
        return p

    def _shade(self, normal):
        d = float(np.dot(normal, self.sun))
        return (
            self.ambient + (1.0 - self.ambient) * 1.15 * max(d, 0.0) + (0.0 if self.sunny else 0.1)
        )

    def _ground(self):
        cam, U, rng = self.cam, self.U, self.rng
        ze, W, H = self.z_end, cam.W, cam.H
        y_end = float(cam.project(0, 0, ze)[1])
        below = np.array([[0, y_end], [W - 1, y_end], [W - 1, H - 1], [0, H - 1]], float)
        self.ground.append(SceneObject("terrain", below, "terrain", {"col": self.pick("terrain")}))
        lines = []
        for x in self.lane_lines:
            solid = abs(x - min(self.lane_lines, key=abs)) < 1e-6 and rng.random() < 0.3
            lines.append((x, 0.0 if solid else U(5.0, 9.0), U(2.0, 3.5)))
        crosswalks = [(z1 - U(4.0, 5.0), z1 - U(0.8, 1.2)) for z1, _, _ in self.crossings]
        if rng.random() < 0.15:
            zc = U(8, 30)
            crosswalks.append((zc, zc + U(3, 4)))
        road = {
            "col": np.array([1.0, 1.0, 1.04]) * U(70, 112),
            "lines": lines,
            "crosswalks": crosswalks,
            "edge_lines": rng.random() < 0.5,
            "L": self.L,
            "R": self.R,
            "paint": np.array([215.0, 215.0, 205.0]) * U(0.75, 1.0),
        }
        self.ground.append(
            SceneObject("road", cam.ground_quad(-self.L, self.R, 0.3, ze), "road", road)
        )
        for s in (-1, 1):
            e = self.edge[s]
            outer = e + s * (self.sw[s] + 1.6)
            zs = [(0.3, ze)]
            for z1, z2, sides in self.crossings:
                if s in sides:
                    zs = [(a, min(b, z1)) for a, b in zs if a < z1] + [
                        (max(a, z2), b) for a, b in zs if b > z2
                    ]
            col = self.pick("sidewalk")
            tile = U(0.3, 0.7)
            verge = (
                U(0.8, min(2.0, self.sw[s] - 0.6))
                if rng.random() < 0.3 and self.sw[s] > 2.2
                else 0.0
            )
            for a, b in zs:
                quad = cam.ground_quad(min(e, outer), max(e, outer), a, b)
                self.ground.append(
                    SceneObject("sidewalk", quad, "sidewalk", {"col": col, "tile": tile, "edge": e})
                )
                if verge:  # a grass strip along the kerb
                    x1 = e + s * (0.25 + verge)
                    quad = cam.ground_quad(min(e + s * 0.25, x1), max(e + s * 0.25, x1), a, b)
                    self.ground.append(
                        SceneObject("terrain", quad, "terrain", {"col": self.pick("terrain")})
                    )
        for z1, z2, sides in self.crossings:
            for s in sides:
                e = self.edge[s]
                x_far = e + s * 120.0
                quad = cam.ground_quad(min(e, x_far), max(e, x_far), z1, z2)
                cross_road = dict(road, lines=[], crosswalks=[], edge_lines=False)
                self.ground.append(SceneObject("road", quad, "road", cross_road))
        if self.tram:
            for z0, z1 in [(0.3, ze)]:
                quad = cam.ground_quad(self.track_x - 1.1, self.track_x + 1.1, z0, z1)
                self.ground.append(
                    SceneObject(
                        "rail track", quad, "rail", {"col": road["col"] * 0.9, "xc": self.track_x}
                    )
                )

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
            typ, ln = (
                ("building", U(7, 26))
                if r < 0.68
                else ("park", U(10, 30))
                if r < 0.82
                else ("gap", U(5, 14))
                if r < 0.93
                else ("wall", U(8, 20))
            )
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
                facade = SceneObject("building", cam.side_quad(xb, z1, z2, 0, hb), "facade", st)
                self.facades.append((z1, len(self.facades), facade))
                nxt_h = heights[i + 1] if i + 1 < len(lots) else 0.0
                if nxt_h < hb - 0.5 and z2 < self.z_end - 1:  # exposed end wall facing the camera
                    st2 = dict(
                        st,
                        plane="front",
                        coord=z2,
                        shade=self._shade(np.array([0.0, 0.0, -1.0])),
                        windows=rng.random() < 0.4,
                    )
                    quad = cam.front_quad(min(xb, xb + s * 14), max(xb, xb + s * 14), z2, 0, hb)
                    self.facades.append(
                        (z2, len(self.facades), SceneObject("building", quad, "facade", st2))
                    )
                shadow_edge = xb - s * hb * abs(self.sun[0]) / max(self.sun[1], 0.2)
                self.shadow_lots.append((s, z1, z2, shadow_edge))
            elif typ == "wall":
                hw = U(1.6, 3.2)
                label = "wall" if rng.random() < 0.75 else "fence"
                self._wall_or_fence(label, sw_outer + s * 0.1, z1, z2, hw, s)
                xb = xb_base + s * U(3.0, 9.0)
                hb = heights[i]
                facade = SceneObject(
                    "building",
                    cam.side_quad(xb, z1, z2, 0, hb),
                    "facade",
                    self._facade_style("side", xb, hb),
                )
                self.facades.append((z1, len(self.facades), facade))
            elif typ in ("park", "gap"):
                x_far = sw_outer + s * 60.0
                quad = cam.ground_quad(min(sw_outer, x_far), max(sw_outer, x_far), z1, z2)
                self.ground.append(
                    SceneObject("terrain", quad, "terrain", {"col": self.pick("terrain")})
                )
                if typ == "gap" and rng.random() < 0.65:
                    xb = sw_outer + s * U(8, 20)
                    hb = U(10, 30)
                    quad = cam.side_quad(xb, max(z1 - 6, 0.3), z2 + 6, 0, hb)
                    back = SceneObject(
                        "building", quad, "facade", self._facade_style("side", xb, hb)
                    )
                    # a back row: drawn before the front row
                    self.facades.append((z1 + 1000.0, len(self.facades), back))
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
                quad = cam.front_quad(min(xb, x_far), max(xb, x_far), z2 + 1.0, 0, hb)
                self.facades.append(
                    (z2 + 1.0, len(self.facades), SceneObject("building", quad, "facade", st))
                )

    def _wall_or_fence(self, label, X, z1, z2, hw, s):
        cam = self.cam
        poly = cam.side_quad(X, z1, z2, 0.0, hw)
        if label == "wall":
            p = {
                "plane": "side",
                "coord": X,
                "col": self.pick("wall"),
                "shade": self._shade(np.array([-s, 0.0, 0.0])),
                "block": self.U(0.25, 0.6),
            }
            kind = "wall"
        else:
            p = {
                "plane": "side",
                "coord": X,
                "col": self.pick("fence"),
                "H": hw,
                "style": int(self.rng.integers(3)),
                "spacing": self.U(0.12, 0.3),
                "shade": self._shade(np.array([-s, 0.0, 0.0])),
            }
            kind = "fence"
        self.lots.append((z1, len(self.lots) + 10000, [SceneObject(label, poly, kind, p)]))

    def _hedge(self, X, z1, z2):
        n = max(4, int((z2 - z1) / 0.8))
        zs = np.linspace(z1, z2, n)
        h0 = self.U(0.7, 1.6)
        hs = h0 * (1 + 0.12 * self.rng.standard_normal(n)).clip(0.6, 1.4)
        poly = np.concatenate(
            [self.cam.project(X, 0.0, zs), self.cam.project(X, hs[::-1], zs[::-1])]
        )
        hedge = SceneObject("vegetation", poly, "veg", {"col": self.pick("veg")})
        self.lots.append((z1, len(self.lots) + 20000, [hedge]))

    def _tree(self, X, Z, group):
        cam, U, rng = self.cam, self.U, self.rng
        trunk_h = U(2.2, 4.0)
        tw = U(0.2, 0.4)
        r = U(1.4, 3.2)
        col = self.pick("veg")
        quad = cam.front_quad(X - tw / 2, X + tw / 2, Z, 0.0, trunk_h + r * 0.5)
        trunk = SceneObject(
            "vegetation",
            quad,
            "veg",
            {"col": np.array([78.0, 62.0, 46.0]) * U(0.8, 1.2), "trunk": True},
        )
        n = 20
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        rad = r * (1 + 0.13 * rng.standard_normal(n)).clip(0.7, 1.3)
        hc = trunk_h + r * 0.85
        crown = SceneObject(
            "vegetation",
            cam.project(X + rad * np.cos(t) * U(0.9, 1.2), hc + rad * np.sin(t) * U(0.8, 1.1), Z),
            "veg",
            {"col": col},
        )
        if group is self.lots:
            self.lots.append((Z, len(self.lots) + 30000, [trunk, crown]))
        else:
            self.add_standing(Z, [trunk, crown], (X - tw, X + tw, Z - tw, Z + tw))
