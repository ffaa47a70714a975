"""The eight Cityscapes thing classes in the synthetic scenes (vehicles, pedestrians,
two-wheelers and riders, far crowds) and the void regions (ego vehicle, borders)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .geometry import bicycle_outline, face_sub, motorcycle_outline, rider_side_outline
from .layout import SceneObject


class ThingsMixin:
    """Thing instances placed in 3-D with collision checks, and the void overlays (a part of
    :class:`.scene.SceneComposer`; uses the state and helpers of :class:`.layout.StreetLayout`)."""

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
            self._two_wheeler(
                "bicycle" if rng.random() < 0.75 else "motorcycle", None, None, rider=True
            )
        for _ in range(int(rng.poisson(0.1))):
            self._parked_motorcycle()
        for _ in range(12 if forced in ("rider", "motorcycle") else 0):  # placement can fail: retry
            if self._two_wheeler(
                "bicycle" if forced == "rider" else "motorcycle", None, None, rider=True, z_max=30.0
            ):
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
            boxes = [
                ("body", -L / 2, L / 2, Wd / 2, 0.12, hb),
                ("cabin", -cl / 2 - 0.1 * L, cl / 2 - 0.1 * L, Wd * 0.43, hb, hc),
            ]
            wheels = [(-L / 2 + 0.75, 0.31), (L / 2 - 0.8, 0.31)]
            col = self.pick("car")
        elif cls == "truck":
            cab, cargo = U(1.8, 2.3), U(4.5, 8.0)
            L, Wd = cab + cargo + 0.3, U(2.3, 2.5)
            hcab, hcargo = U(2.4, 2.9), U(3.0, 3.8)
            boxes = [
                ("cargo", -L / 2, -L / 2 + cargo, Wd / 2, 0.7, hcargo),
                ("cab", L / 2 - cab, L / 2, Wd / 2 * 0.97, 0.35, hcab),
            ]
            wheels = [(-L / 2 + 1.2, 0.5), (L / 2 - 1.2, 0.5)]
            col = self.pick("truck")
            cargo_col = (
                np.array([215.0, 215.0, 212.0]) * self.U(0.9, 1.05) if rng.random() < 0.5 else col
            )
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
        return {
            "cls": cls,
            "L": L,
            "W": Wd,
            "boxes": boxes,
            "wheels": wheels,
            "col": col,
            "cargo_col": cargo_col if cls == "truck" else col,
        }

    def _lane_vehicle(self, cls, z_max=None):
        rng = self.rng
        spec = self._vehicle_spec(cls)
        if cls == "train":
            if self.track_x is None:
                self.tram = True
                self.track_x = min(self.lane_centres, key=lambda c: abs(c - 0.3))
                quad = self.cam.ground_quad(self.track_x - 1.1, self.track_x + 1.1, 0.3, self.z_end)
                self.ground.append(
                    SceneObject(
                        "rail track",
                        quad,
                        "rail",
                        {"col": np.array([80.0, 80.0, 84.0]), "xc": self.track_x},
                    )
                )
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
            # faces: (name, 4 corners (bottom a, bottom b, top b, top a) or top face, outward
            # normal)
            defs = [
                ("front", [(l1, -w), (l1, w)], (1, 0)),
                ("rear", [(l0, w), (l0, -w)], (-1, 0)),
                ("left", [(l0, -w), (l1, -w)], (0, -1)),
                ("right", [(l1, w), (l0, w)], (0, 1)),
            ]
            for name, ((la, wa), (lb, wb)), (nl, nw) in defs:
                n = np.array([nw * c + nl * s_, 0.0, nl * c - nw * s_])
                centre = np.array(world((la + lb) / 2, (wa + wb) / 2, (h0 + h1) / 2))
                if np.dot(n, cam_pos - centre) <= 0:
                    continue
                quad = np.array(
                    [world(la, wa, h0), world(lb, wb, h0), world(lb, wb, h1), world(la, wa, h1)]
                )
                faces.append(
                    {
                        "role": role,
                        "name": name,
                        "quad": quad,
                        "shade": self._shade(n),
                        "dist": float(np.linalg.norm(centre - cam_pos)),
                    }
                )
            if h1 < cam.cam_h:
                quad = np.array(
                    [world(l0, -w, h1), world(l1, -w, h1), world(l1, w, h1), world(l0, w, h1)]
                )
                top_centre = np.array(world((l0 + l1) / 2, 0, h1))
                faces.append(
                    {
                        "role": role,
                        "name": "top",
                        "quad": quad,
                        "shade": self._shade(np.array([0.0, 1.0, 0.0])) * 1.05,
                        "dist": float(np.linalg.norm(top_centre - cam_pos)),
                    }
                )
        wheels = []
        for lw, r in spec["wheels"]:
            for side_name, ww in (("left", -W2), ("right", W2)):
                t = np.linspace(0, 2 * np.pi, 14, endpoint=False)
                X, H_, Z = world(lw + r * np.cos(t), np.full_like(t, ww), r + r * np.sin(t))
                pts.append(tuple(np.array(world(lw, ww, 0.0), float)))
                hub = world(
                    lw + 0.55 * r * np.cos(t), np.full_like(t, ww), r + 0.55 * r * np.sin(t)
                )
                wheels.append((side_name, cam.project(X, H_, Z), cam.project(*hub)))
        pts = np.array(pts, float)
        img_pts = cam.project(pts[:, 0], pts[:, 1], pts[:, 2]).astype(np.float32)
        hull = cv2.convexHull(img_pts).reshape(-1, 2).astype(np.float64)
        faces.sort(key=lambda f: -f["dist"])
        for f in faces:
            f["img"] = cam.project(f["quad"][:, 0], f["quad"][:, 1], f["quad"][:, 2])
        visible_sides = {
            f["name"] for f in faces if f["role"] in ("body", "cab", "bus", "train", "cargo")
        }
        p = {
            "cls": cls,
            "col": spec["col"],
            "cargo_col": spec["cargo_col"],
            "faces": faces,
            "wheels": [w for w in wheels if w[0] in visible_sides],
            "ground_shadow": cam.ground_quad(
                box[0] - 0.2, box[1] + 0.2, box[2] - 0.3, box[3] + 0.2
            ),
        }
        obj = SceneObject(cls, hull, "vehicle", p)
        objs = [obj]
        # license plate on the visible end face of cars (label id -1: not drawn into the label
        # images)
        if cls in ("car", "truck"):
            for f in faces:
                if f["name"] in ("front", "rear") and f["role"] in ("body", "cab"):
                    plate = face_sub(f["quad"], 0.37, 0.63, 0.25, 0.45)
                    ip = cam.project(plate[:, 0], plate[:, 1], plate[:, 2])
                    if np.ptp(ip[:, 0]) >= 3:
                        objs.append(SceneObject("license plate", ip, "none", {}, parent=obj))
        self.add_standing(box[2], objs, box)
        return True

    def _person_outline(self, hp, stance, arms, narrow=1.0):
        r = 0.115 * hp / 1.75
        sw = 0.21 * hp / 1.75 * narrow
        hw = sw * 0.72
        t = np.linspace(np.pi / 2, -np.pi / 3, 6)
        head_r = [(r * math.cos(a), hp - r + r * math.sin(a)) for a in t]
        right = [
            (r * 0.45, hp - 2 * r),
            (sw, 0.82 * hp),
            (sw + 0.05 + arms, 0.47 * hp),
            (sw - 0.03 + arms, 0.45 * hp),
            (sw - 0.04, 0.72 * hp),
            (hw, 0.5 * hp),
            (stance / 2 + 0.08, 0.0),
            (stance / 2 - 0.05, 0.0),
            (0.0, 0.46 * hp),
        ]
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
        outline = self._person_outline(
            hp,
            U(0.2, 0.6) if side else U(0.14, 0.3),
            U(-0.02, 0.08),
            narrow=U(0.6, 0.75) if side else 1.0,
        )
        if rng.random() < 0.5:
            outline[:, 0] *= -1
            outline = outline[::-1]
        p = self._person_colours(hp, X, Z)
        obj = SceneObject("person", self.cam.billboard(outline, X, Z), "person", p)
        self.add_standing(Z, [obj], box)
        return True

    def _person_colours(self, hp, X, Z, lift=0.0):
        return {
            "hp": hp,
            "lift": lift,
            "X": X,
            "Z": Z,
            "shirt": self.pick("shirt"),
            "pants": self.pick("pants"),
            "skin": self.pick("skin"),
            "hair": self.pick("hair"),
            "shade": self._shade(np.array([0.0, 0.0, -1.0])),
        }

    def _parked_motorcycle(self, z_max=None):
        s = 1 if self.rng.random() < 0.5 else -1
        return self._two_wheeler(
            "motorcycle",
            self.edge[s] + s * self.U(0.5, 1.0) * (1 if self.rng.random() < 0.5 else -1),
            self.U(5, min(self.z_obj, z_max or self.z_obj)),
            rider=False,
        )

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
            outline, geo = bicycle_outline(side_view)
        else:
            outline, geo = motorcycle_outline(side_view)
        outline = outline * [mirror, 1.0]
        painter = "bicycle" if cls == "bicycle" else "motorcycle"
        geo_img = {
            k: cam.billboard(np.asarray(v, float).reshape(-1, 2) * [mirror, 1.0], X, Z, squeeze)
            for k, v in geo.items()
        }
        vehicle = SceneObject(
            cls,
            cam.billboard(outline, X, Z, squeeze),
            painter,
            {
                "col": col,
                "side": side_view,
                "geo": geo_img,
                "scale": cam.f / Z,
                "shade": self._shade(np.array([0.0, 0.0, -1.0])),
            },
        )
        objs = [vehicle]
        if rider:
            seat = 0.95 if cls == "bicycle" else 0.85
            if side_view:
                ro = rider_side_outline(seat) * [mirror, 1.0]
                hp = seat + 0.72
            else:
                hp = U(1.35, 1.5)
                ro = self._person_outline(hp, 0.22, 0.06)
                ro[:, 1] += 0.3
                hp += 0.3
            p = self._person_colours(hp, X, Z)
            p["helmet"] = cls == "motorcycle" or rng.random() < 0.4
            p["helmet_col"] = self.pick("car")
            rider_outline = cam.billboard(ro, X, Z, squeeze if side_view else 1.0)
            objs.append(SceneObject("rider", rider_outline, "person", p))
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
                pts += [
                    (x - 0.25, 0.0, z),
                    (x + 0.25, 0.0, z),
                    (x - 0.25, h * 0.8, z),
                    (x + 0.25, h * 0.8, z),
                    (x, h, z),
                ]
                parts.append(self.pick("shirt"))
            box = (X - 1.5, X + 1.5, Z - 2.3, Z + 2.3)
            kind = "crowd_person"
        if not self.free(box, margin=0.2):
            return False
        pts = np.array(pts, float)
        ip = self.cam.project(pts[:, 0], pts[:, 1], pts[:, 2]).astype(np.float32)
        hull = cv2.convexHull(ip).reshape(-1, 2).astype(np.float64)
        crowd = SceneObject(cls + "group", hull, kind, {"cols": parts, "pts": ip})
        self.add_standing(box[2], [crowd], box)
        return True

    def _void_regions(self):
        cam, U, rng = self.cam, self.U, self.rng
        W, H = cam.W, cam.H
        if rng.random() < 0.85:  # the ego vehicle's bonnet
            he = H * U(0.07, 0.13)
            xs = np.linspace(0, W - 1, 17)
            ys = H - 1 - he * (1 - 0.45 * ((xs - W / 2) / (W / 2)) ** 2)
            poly = np.concatenate([np.stack([xs, ys], 1), [[W - 1, H - 1], [0, H - 1]]])
            self.overlay.append(
                SceneObject(
                    "ego vehicle",
                    poly,
                    "ego",
                    {"col": np.array([40.0, 42.0, 48.0]) * U(0.7, 1.5), "top": float(ys.min())},
                )
            )
            if rng.random() < 0.4:
                k = max(2.0, H * 0.012)
                strip = np.array([[0, H - 1 - k], [W - 1, H - 1 - k], [W - 1, H - 1], [0, H - 1]])
                self.overlay.append(SceneObject("out of roi", strip, "black", {}))
        if rng.random() < 0.35:
            k = max(2.0, W * U(0.004, 0.012))
            for x0, x1 in ((0.0, k), (W - 1.0, W - 1.0 - k)):
                border = np.array([[x0, 0], [x1, 0], [x1 + (x0 - x1) * 0.5, H - 1], [x0, H - 1]])
                self.overlay.append(SceneObject("rectification border", border, "black", {}))
