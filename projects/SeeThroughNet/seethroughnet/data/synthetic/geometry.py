"""Geometry of the synthetic scenes: the pinhole camera over the ground plane, polygon clipping
and rounding to Cityscapes' integer vertices, and the 2-D outlines of two-wheelers and riders."""

from __future__ import annotations

import math

import numpy as np


class Camera:
    """Pinhole camera at height ``cam_h`` over the plane h=0, looking along +Z; world (X, h, Z)."""

    def __init__(self, rng, height, width):
        self.H, self.W = height, width
        self.f = width * rng.uniform(0.50, 0.60)
        self.cam_h = rng.uniform(1.15, 1.45)
        self.y_h = height * rng.uniform(0.38, 0.46)
        self.x_v = width * rng.uniform(0.43, 0.57)

    def project(self, X, h, Z):
        X, h, Z = np.broadcast_arrays(
            np.asarray(X, np.float64), np.asarray(h, np.float64), np.asarray(Z, np.float64)
        )
        Z = np.maximum(Z, 1e-3)
        return np.stack(
            [self.x_v + self.f * X / Z, self.y_h + self.f * (self.cam_h - h) / Z], axis=-1
        )

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


def clip_polygon(pts, xmax, ymax):
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


def clip_round(poly, width, height):
    """Clip to the image, round to integer pixel coordinates (as Cityscapes stores them), drop
    repeated and collinear vertices; ``None`` if fewer than 3 vertices remain."""
    pts = clip_polygon(
        [(float(x), float(y)) for x, y in np.asarray(poly, np.float64)], width - 1, height - 1
    )
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


def face_sub(quad, a0, a1, b0, b1):
    """Sub-rectangle of a vertical face quad (bottom a, bottom b, top b, top a) in face
    coordinates."""
    pa, pb, pbt, pat = (np.asarray(q, float) for q in quad)

    def at(a, b):
        bottom = pa + (pb - pa) * a
        top = pat + (pbt - pat) * a
        return bottom + (top - bottom) * b

    return np.array([at(a0, b0), at(a1, b0), at(a1, b1), at(a0, b1)])


def _wheel_points(rear_c, front_c, R):
    """Wheel centres, then points at their right and top edges (the painter draws ellipses)."""
    return [
        rear_c,
        front_c,
        (rear_c[0] + R, R),
        (front_c[0] + R, R),
        (rear_c[0], 2 * R),
        (front_c[0], 2 * R),
    ]


def bicycle_outline(side_view):
    """``(outline, geo)`` of a bicycle in metres (u along the bike, v up): the silhouette and
    the wheel/frame points the painter draws; ``side_view`` False is seen from behind."""
    if not side_view:
        return (
            np.array(
                [
                    [-0.07, 0.0],
                    [0.07, 0.0],
                    [0.07, 0.6],
                    [0.3, 0.98],
                    [0.3, 1.08],
                    [-0.3, 1.08],
                    [-0.3, 0.98],
                    [-0.07, 0.6],
                ]
            ),
            {"rear": [(0.0, 0.0), (0.0, 0.68)], "bar": [(-0.3, 1.03), (0.3, 1.03)]},
        )
    R = 0.34
    rear_c, front_c = (-0.52, R), (0.52, R)
    rear = [
        (rear_c[0] + R * math.cos(a), R + R * math.sin(a))
        for a in np.linspace(1.5 * np.pi, 0.5 * np.pi, 9)
    ]
    front = [
        (front_c[0] + R * math.cos(a), R + R * math.sin(a))
        for a in np.linspace(0.5 * np.pi, -0.5 * np.pi, 9)
    ]
    pts = (
        rear
        + [(-0.32, 0.86), (-0.4, 0.95), (-0.16, 0.97), (0.36, 0.94), (0.33, 1.05), (0.46, 1.07)]
        + front
        + [(0.0, 0.28)]
    )
    geo = {
        "wheels": _wheel_points(rear_c, front_c, R),
        "frame": [
            rear_c,
            (0.0, 0.3),
            (0.0, 0.3),
            (-0.3, 0.88),
            (-0.3, 0.88),
            rear_c,
            (0.0, 0.3),
            (0.4, 0.92),
            (-0.3, 0.88),
            (0.4, 0.92),
            (0.4, 0.92),
            front_c,
            (0.38, 1.02),
            (0.46, 1.05),
            (-0.38, 0.95),
            (-0.18, 0.96),
        ],
    }
    return np.array(pts, float), geo


def motorcycle_outline(side_view):
    """``(outline, geo)`` of a motorcycle, as :func:`bicycle_outline`."""
    if not side_view:
        return (
            np.array(
                [
                    [-0.1, 0.0],
                    [0.1, 0.0],
                    [0.18, 0.5],
                    [0.38, 1.05],
                    [0.38, 1.15],
                    [-0.38, 1.15],
                    [-0.38, 1.05],
                    [-0.18, 0.5],
                ]
            ),
            {"rear": [(0.0, 0.0), (0.0, 0.62)], "bar": [(-0.38, 1.1), (0.38, 1.1)]},
        )
    R = 0.32
    rear_c, front_c = (-0.7, R), (0.7, R)
    rear = [
        (rear_c[0] + R * math.cos(a), R + R * math.sin(a))
        for a in np.linspace(1.5 * np.pi, 0.75 * np.pi, 6)
    ]
    front = [
        (front_c[0] + R * math.cos(a), R + R * math.sin(a))
        for a in np.linspace(0.4 * np.pi, -0.5 * np.pi, 8)
    ]
    pts = (
        rear
        + [(-0.95, 0.8), (-0.3, 0.86), (0.05, 1.02), (0.45, 1.12), (0.55, 1.14), (0.75, 0.95)]
        + front
        + [(0.0, 0.22)]
    )
    geo = {"wheels": _wheel_points(rear_c, front_c, R), "frame": [(-0.3, 0.75), (0.4, 0.92)]}
    return np.array(pts, float), geo


def rider_side_outline(seat):
    """A rider seen from the side, facing +u, sitting at height ``seat``."""
    pts = [
        (-0.24, seat - 0.02),
        (-0.16, seat + 0.36),
        (0.0, seat + 0.55),
        (0.08, seat + 0.62),
        (0.1, seat + 0.72),
        (0.2, seat + 0.78),
        (0.3, seat + 0.7),
        (0.3, seat + 0.6),
        (0.22, seat + 0.54),
        (0.46, seat + 0.2),
        (0.48, seat + 0.1),
        (0.36, seat + 0.12),
        (0.18, seat + 0.36),
        (0.06, seat + 0.1),
        (0.26, seat + 0.06),
        (0.3, seat - 0.02),
        (0.2, seat - 0.62),
        (0.25, seat - 0.68),
        (0.08, seat - 0.68),
        (0.13, seat - 0.08),
        (-0.06, seat - 0.1),
    ]
    return np.array(pts, float)
