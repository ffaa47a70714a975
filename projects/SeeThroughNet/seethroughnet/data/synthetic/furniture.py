"""Street furniture of the synthetic scenes: street trees, street lights, sign poles and traffic
signs, traffic lights (on poles and overhead arms) and static clutter."""

from __future__ import annotations

import numpy as np

from .layout import SceneObject


class StreetFurnitureMixin:
    """Poles, signs, lights, trees and clutter along the kerbs (a part of
    :class:`.scene.SceneComposer`; uses the state and helpers of :class:`.layout.StreetLayout`)."""

    def _street_furniture(self):
        U, rng = self.U, self.rng
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
                    self._traffic_light_pole(
                        self.edge[s] + s * 0.6, z, s, overhead=rng.random() < 0.4
                    )

    def _pole_obj(self, X, Z, h1, width, h0=0.0):
        quad = self.cam.front_quad(X - width / 2, X + width / 2, Z, h0, h1)
        return SceneObject("pole", quad, "pole", {"col": self._pole_col, "xc": None})

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
        arm_quad = self.cam.front_quad(min(X, xa), max(X, xa), Z, hp - 0.12, hp)
        objs.append(SceneObject("pole", arm_quad, "pole", {"col": self._pole_col}))
        lamp_quad = self.cam.front_quad(xa - 0.25, xa + 0.25, Z, hp - 0.3, hp - 0.05)
        objs.append(SceneObject("pole", lamp_quad, "pole", {"col": self._pole_col * 0.8}))
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
        shape = rng.choice(
            ["circle", "triangle", "rect", "diamond", "invtriangle"], p=[0.4, 0.2, 0.25, 0.1, 0.05]
        )
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
        scheme = {
            "circle": [((200, 30, 30), (235, 235, 235)), ((30, 70, 170), (30, 70, 170))],
            "triangle": [((200, 30, 30), (235, 235, 235))],
            "invtriangle": [((200, 30, 30), (235, 235, 235))],
            "diamond": [((230, 190, 30), (240, 240, 240))],
            "rect": [
                ((30, 70, 170), (30, 70, 170)),
                ((235, 235, 235), (235, 235, 235)),
                ((30, 120, 60), (30, 120, 60)),
            ],
        }[shape]
        outer, inner = scheme[int(rng.integers(len(scheme)))]
        return SceneObject(
            "traffic sign",
            self.cam.billboard(uv, X, Z),
            "sign",
            {
                "outer": np.array(outer, float),
                "inner": np.array(inner, float),
                "symbol": rng.random() < 0.7,
            },
        )

    def _traffic_light(self, X, Z, h_bottom):
        w, hh = self.U(0.3, 0.4), self.U(0.85, 1.05)
        poly = self.cam.front_quad(X - w / 2, X + w / 2, Z, h_bottom, h_bottom + hh)
        lamps = [self.cam.project(X, h_bottom + hh * f, Z) for f in (0.8, 0.5, 0.2)]
        r = float(w * 0.32 * self.cam.f / Z)
        return SceneObject(
            "traffic light",
            poly,
            "tlight",
            {
                "body": (
                    np.array([36.0, 36.0, 40.0])
                    if self.rng.random() < 0.8
                    else np.array([150.0, 130.0, 40.0])
                ),
                "lamps": lamps,
                "r": r,
                "lit": int(self.rng.integers(3)),
            },
        )

    def _traffic_light_pole(self, X, Z, s, overhead):
        if not self.free((X - 0.3, X + 0.3, Z - 0.3, Z + 0.3)):
            return
        U = self.U
        if overhead:
            hp = U(5.8, 6.8)
            arm = U(3.0, 6.0)
            xa = X - s * arm
            objs = [
                self._pole_obj(X, Z, hp, U(0.2, 0.28)),
                SceneObject(
                    "pole",
                    self.cam.front_quad(min(X, xa), max(X, xa), Z, hp - 0.5, hp - 0.3),
                    "pole",
                    {"col": self._pole_col},
                ),
            ]
            for k in range(1 if arm < 4.5 else 2):
                objs.append(self._traffic_light(X - s * arm * (0.9 - 0.45 * k), Z, hp - 1.6))
        else:
            hp = U(2.6, 3.4)
            objs = [self._pole_obj(X, Z, hp, U(0.1, 0.15)), self._traffic_light(X, Z, hp)]
        self.add_standing(Z, objs, (X - 0.2, X + 0.2, Z - 0.2, Z + 0.2))

    def _static(self, X, Z):
        U, rng = self.U, self.rng
        kind = rng.choice(["bin", "bollard", "bench", "box"])
        w, h = {
            "bin": (U(0.5, 0.7), U(0.9, 1.1)),
            "bollard": (0.15, U(0.8, 1.0)),
            "bench": (U(1.4, 1.8), U(0.8, 0.9)),
            "box": (U(0.6, 1.0), U(1.0, 1.5)),
        }[kind]
        box = (X - w / 2, X + w / 2, Z - 0.3, Z + 0.3)
        if not self.free(box):
            return
        col = {
            "bin": (60, 90, 60),
            "bollard": (70, 70, 72),
            "bench": (120, 85, 55),
            "box": (150, 150, 145),
        }[kind]
        label = "static" if rng.random() < 0.85 else "dynamic"
        quad = self.cam.front_quad(X - w / 2, X + w / 2, Z, 0, h)
        self.add_standing(
            Z, [SceneObject(label, quad, "flat", {"col": np.array(col, float) * U(0.8, 1.2)})], box
        )
