"""Bilinear resizing written out by hand: the independent reference of the SeeThroughNet tests
(tests/nn/test_seethroughnet_parts.py, tests/nn/test_seethroughnet_model.py)."""

import math

import torch


def ref_bilinear(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """Bilinear resize with half-pixel centres (align_corners=False), written out by hand."""
    n, c, h, w = x.shape
    out = torch.zeros(n, c, out_h, out_w, dtype=x.dtype)
    for i in range(out_h):
        sy = max((i + 0.5) * h / out_h - 0.5, 0.0)
        y0 = min(int(math.floor(sy)), h - 1)
        y1 = min(y0 + 1, h - 1)
        wy = sy - y0
        for j in range(out_w):
            sx = max((j + 0.5) * w / out_w - 0.5, 0.0)
            x0 = min(int(math.floor(sx)), w - 1)
            x1 = min(x0 + 1, w - 1)
            wx = sx - x0
            out[:, :, i, j] = (
                (1 - wy) * (1 - wx) * x[:, :, y0, x0]
                + (1 - wy) * wx * x[:, :, y0, x1]
                + wy * (1 - wx) * x[:, :, y1, x0]
                + wy * wx * x[:, :, y1, x1]
            )
    return out
