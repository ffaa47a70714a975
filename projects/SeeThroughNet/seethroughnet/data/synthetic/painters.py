"""Painters of the synthetic scenes: one function per object kind that colours the pixels of
its polygon (textures, markings, windows, shading), and the noise fields they share.

Each painter is called as ``painter(ctx, obj, sl, yy, xx, patch)`` with the
:class:`PaintContext`, the :class:`.layout.SceneObject`, the bounding-box slice ``sl`` of the
polygon, its pixel coordinates ``yy``/``xx`` and the canvas under it; it returns the colours of
the whole box (the caller keeps those inside the polygon).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .geometry import face_sub


def smooth_noise(rng, H, W, cell):
    """Standardised smooth noise of size ``H`` x ``W``: bicubic upsampling of a random grid with
    ``cell`` pixels per grid step, randomly offset."""
    gh, gw = max(2, int(math.ceil(H / cell)) + 2), max(2, int(math.ceil(W / cell)) + 2)
    g = rng.standard_normal((gh, gw)).astype(np.float32)
    big = cv2.resize(g, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)
    ox, oy = int(rng.integers(0, max(1, int(cell)))), int(rng.integers(0, max(1, int(cell))))
    out = big[oy : oy + H, ox : ox + W]
    return (out - out.mean()) / (out.std() + 1e-6)


class PaintContext:
    """Per-image painting state: noise fields, sky colours and the composer lighting."""

    def __init__(self, rng, cam, comp):
        H, W = cam.H, cam.W
        self.rng, self.cam, self.comp, self.H, self.W = rng, cam, comp, H, W
        unit = max(W / 512.0, 0.125)
        self.n_lo = 0.6 * smooth_noise(rng, H, W, 64 * unit) + 0.4 * smooth_noise(
            rng, H, W, 20 * unit
        )
        self.n_mid = 0.5 * smooth_noise(rng, H, W, 6 * unit) + 0.5 * smooth_noise(
            rng, H, W, 3 * unit
        )
        self.n_px = rng.standard_normal((H, W)).astype(np.float32)
        self.n_leaf = 0.6 * smooth_noise(rng, H, W, max(1.5, 2.2 * unit)) + 0.4 * self.n_px
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
    """Coverage of a stripe of half-width ``half_width`` at distance ``d`` for a pixel of size
    ``footprint``."""
    cov = np.clip((half_width - np.abs(d)) / footprint + 0.5, 0.0, 1.0)
    return np.minimum(cov, 2 * half_width / footprint)


def _plane_coords(ctx, p, yy, xx):
    """``(u, h, Z)`` on a vertical plane (``p['plane']`` side or front at ``p['coord']``) for the
    pixels ``yy``, ``xx``: position along the plane, height above the ground, depth."""
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
    base = (
        p["col"] * (1 + 0.05 * ctx.n_lo[sl] + 0.04 * ctx.n_mid[sl] + 0.03 * ctx.n_px[sl])[..., None]
    )
    col = base.copy()
    if p.get("windows", True):
        fp = Z / ctx.cam.f  # metres per pixel
        a = np.clip((0.7 - fp) / 0.45, 0.2, 1.0)[..., None]
        fh = np.mod(h, p["floor"])
        fu = np.mod(u - p["u0"], p["spacing"])
        win = (
            (fu < p["win_w"])
            & (fh > p["sill"])
            & (fh < p["sill"] + p["win_h"])
            & (h > p["ground_floor"])
            & (h < p["H"] - 0.8)
        )
        glass = (
            p["glass"] * (0.75 + 0.35 * (ctx.n_lo[sl] * 0.5 + 0.5))[..., None]
            + 25 * np.clip(ctx.n_mid[sl], 0, 2)[..., None] * 0.3
        )
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
    """World ``(X, Z)`` on the ground plane of the pixels ``yy``, ``xx``."""
    Z = ctx.cam.ground_depth(yy)
    X = (xx - ctx.cam.x_v) * Z / ctx.cam.f
    return X, Z


def _paint_road(ctx, o, sl, yy, xx, patch):
    p = o.p
    X, Z = _ground_xz(ctx, yy, xx)
    fp = np.maximum(Z / ctx.cam.f, 0.005)
    col = (
        p["col"] * (1 + 0.06 * ctx.n_lo[sl] + 0.05 * ctx.n_mid[sl] + 0.07 * ctx.n_px[sl])[..., None]
    )
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
    col = (
        p["col"] * (1 + 0.05 * ctx.n_lo[sl] + 0.05 * ctx.n_mid[sl] + 0.06 * ctx.n_px[sl])[..., None]
    )
    t = p["tile"]
    joints = np.maximum(
        _stripe(np.mod(X, t) - t / 2, 0.012, fp), _stripe(np.mod(Z, t) - t / 2, 0.012, fp)
    )
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
    col = (
        p["col"] * (1 + 0.05 * ctx.n_lo[sl] + 0.05 * ctx.n_mid[sl] + 0.04 * ctx.n_px[sl])[..., None]
    )
    b = p["block"]
    joints = np.maximum(
        _stripe(np.mod(h, b) - b / 2, 0.01, fp), _stripe(np.mod(u, 2 * b) - b, 0.01, fp) * 0.6
    )
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
        a = np.maximum(
            _stripe(np.mod(u + h, sp) - sp / 2, 0.008, fp),
            _stripe(np.mod(u - h, sp) - sp / 2, 0.008, fp),
        )
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
        centre = (int(round((c[0] - x0) * 4)), int(round((c[1] - y0) * 4)))
        cv2.circle(
            col,
            centre,
            max(1, int(round(p["r"] * 4))),
            tuple(float(v) for v in rgb),
            -1,
            lineType=cv2.LINE_8,
            shift=2,
        )
    return col


def _paint_sign(ctx, o, sl, yy, xx, patch):
    p = o.p
    col = np.broadcast_to(p["outer"], yy.shape + (3,)).copy()
    y0, x0 = int(yy[0, 0]), int(xx[0, 0])
    poly = o.poly - [x0, y0]
    c = poly.mean(0)
    inner = (c + (poly - c) * 0.72) * 4
    cv2.fillPoly(
        col,
        [np.round(inner).astype(np.int32)],
        tuple(float(v) for v in p["inner"]),
        lineType=cv2.LINE_8,
        shift=2,
    )
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
    shade = 1.0 - 0.18 * np.clip(np.abs(t), 0, 1.5) + 0.12 * ctx.comp.sun[0] * t
    return col * (shade * p["shade"] * (1 + 0.06 * ctx.n_mid[sl] + 0.05 * ctx.n_px[sl]))[..., None]


def _draw_wheels(col, geo, x0, y0, thick, tyre=(22.0, 22.0, 24.0), hub=None):
    """Draw the two wheels of ``geo`` (rings, or filled tyres with hubs) into ``col``."""
    w = np.asarray(geo["wheels"])
    for k in range(2):
        c = tuple(int(round(v * 4)) for v in w[k] - [x0, y0])
        axes = (
            max(1, int(round(abs(w[k + 2][0] - w[k][0]) * 4))),
            max(1, int(round(abs(w[k + 4][1] - w[k][1]) * 4))),
        )
        cv2.ellipse(
            col,
            c,
            axes,
            0.0,
            0.0,
            360.0,
            tyre,
            thickness=max(1, int(round(thick))) if hub is None else -1,
            lineType=cv2.LINE_8,
            shift=2,
        )
        if hub is not None:
            hub_axes = (max(1, int(axes[0] * 0.45)), max(1, int(axes[1] * 0.45)))
            cv2.ellipse(col, c, hub_axes, 0.0, 0.0, 360.0, hub, -1, lineType=cv2.LINE_8, shift=2)


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
            cv2.line(
                col,
                tuple(int(round(v * 4)) for v in a),
                tuple(int(round(v * 4)) for v in b),
                frame,
                max(1, int(round(thick))),
                shift=2,
            )
    else:
        for key in ("rear", "bar"):
            a, b = np.asarray(p["geo"][key]) - [x0, y0]
            cv2.line(
                col,
                tuple(int(round(v * 4)) for v in a),
                tuple(int(round(v * 4)) for v in b),
                (25.0, 25.0, 27.0) if key == "rear" else frame,
                max(1, int(round(thick * 1.5))),
                shift=2,
            )
        col = col * 0.6 + np.asarray(frame) * 0.4  # a thin dark silhouette
    return col


def _paint_motorcycle(ctx, o, sl, yy, xx, patch):
    p = o.p
    y0, x0 = int(yy[0, 0]), int(xx[0, 0])
    body = np.array([38.0, 38.0, 42.0])
    col = np.broadcast_to(body, yy.shape + (3,)).copy()
    ys = yy.max() + 1 - yy
    h = ys / max(p["scale"], 1e-3)
    tank = (h > 0.65) & (h < 1.0)
    col[tank] = p["col"] * p["shade"]
    if p["side"]:
        _draw_wheels(col, p["geo"], x0, y0, 1, tyre=(20.0, 20.0, 22.0), hub=(120.0, 120.0, 125.0))
    return col * (1 + 0.06 * ctx.n_mid[sl] + 0.05 * ctx.n_px[sl])[..., None]


def _lamp_colour(face_name):
    """Head lamps on the front face, tail lamps elsewhere."""
    return (200.0, 200.0, 190.0) if face_name == "front" else (170.0, 25.0, 20.0)


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
            fill(proj(face_sub(q, 0.06, 0.94, 0.08, 0.9)), glass_top * (0.8 if end else 0.7))
            if not end:
                fill(proj(face_sub(q, 0.47, 0.53, 0.08, 0.9)), c)
        elif role == "body":
            fill(proj(face_sub(q, 0.0, 1.0, 0.0, 0.16)), c * 0.45)
            if end:
                lamp = (170.0, 25.0, 20.0) if name == "rear" else (230.0, 230.0, 210.0)
                fill(proj(face_sub(q, 0.04, 0.2, 0.62, 0.84)), lamp)
                fill(proj(face_sub(q, 0.8, 0.96, 0.62, 0.84)), lamp)
                fill(proj(face_sub(q, 0.37, 0.63, 0.25, 0.45)), (222.0, 222.0, 215.0))
                if name == "front":
                    fill(proj(face_sub(q, 0.25, 0.75, 0.5, 0.75)), c * 0.35)
            else:
                fill(proj(face_sub(q, 0.5, 0.51, 0.2, 0.95)), c * 0.7)
        elif role == "cab":
            if end or name in ("left", "right"):
                fill(proj(face_sub(q, 0.08 if end else 0.35, 0.92, 0.55, 0.9)), glass_top * 0.8)
            if end:
                fill(proj(face_sub(q, 0.05, 0.18, 0.12, 0.22)), _lamp_colour(name))
                fill(proj(face_sub(q, 0.82, 0.95, 0.12, 0.22)), _lamp_colour(name))
                fill(proj(face_sub(q, 0.37, 0.63, 0.04, 0.12)), (222.0, 222.0, 215.0))
        elif role in ("bus", "train"):
            if end:
                b0 = 0.45 if name == "front" else 0.6
                fill(proj(face_sub(q, 0.06, 0.94, b0, 0.88)), glass_top * 0.8)
                fill(proj(face_sub(q, 0.05, 0.18, 0.1, 0.18)), _lamp_colour(name))
                fill(proj(face_sub(q, 0.82, 0.95, 0.1, 0.18)), _lamp_colour(name))
                if role == "bus" and name == "front":
                    fill(proj(face_sub(q, 0.1, 0.9, 0.9, 0.97)), (230.0, 150.0, 30.0))
            else:
                length = float(np.linalg.norm(q[1] - q[0]))
                n_win = max(2, int(length / (1.4 if role == "bus" else 2.2)))
                fill(proj(face_sub(q, 0.02, 0.98, 0.42, 0.86)), glass_top * 0.75)
                for k in range(1, n_win):
                    a = k / n_win
                    fill(proj(face_sub(q, a - 0.08 / length, a + 0.08 / length, 0.42, 0.86)), c)
                if role == "train":
                    stripe = np.array([230.0, 230.0, 228.0]) * f["shade"]
                    fill(proj(face_sub(q, 0.0, 1.0, 0.18, 0.28)), stripe)
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
        q = pts[k * per : (k + 1) * per] - [x0, y0]
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
    return (
        np.broadcast_to(np.array([4.0, 4.0, 5.0]), yy.shape + (3,))
        + 2 * np.abs(ctx.n_px[sl])[..., None]
    )


#: object kind (``SceneObject.kind``) -> painter
PAINTERS = {
    "sky": _paint_sky,
    "facade": _paint_facade,
    "road": _paint_road,
    "rail": _paint_rail,
    "sidewalk": _paint_sidewalk,
    "terrain": _paint_terrain,
    "veg": _paint_veg,
    "wall": _paint_wall,
    "fence": _paint_fence,
    "pole": _paint_pole,
    "tlight": _paint_tlight,
    "sign": _paint_sign,
    "person": _paint_person,
    "bicycle": _paint_bicycle,
    "motorcycle": _paint_motorcycle,
    "vehicle": _paint_vehicle,
    "crowd_car": _paint_crowd,
    "crowd_person": _paint_crowd,
    "flat": _paint_flat,
    "ego": _paint_ego,
    "black": _paint_black,
}
