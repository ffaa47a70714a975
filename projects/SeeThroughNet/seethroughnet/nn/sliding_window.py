"""Sliding-window inference (plain PyTorch): dense predictions of a large image assembled from
overlapping windows, overlaps averaged.

The windows are those of MMSegmentation's ``EncoderDecoder.slide_inference`` (mmseg 1.2.2,
``mmseg/models/segmentors/encoder_decoder.py``, ``test_cfg=dict(mode='slide', crop_size, stride)``):
along each axis of length ``L`` with window ``c`` and stride ``s`` there are
``max(L - c + s - 1, 0) // s + 1`` windows starting at ``i * s``, the last one shifted back to end
at the border (start ``L - c``); an axis shorter than the window gets one window of the axis'
length. Every window's prediction is added into a zero canvas in row-major window order and the sum
is divided by the number of windows that covered each pixel -- the same additions in the same order
as MMSegmentation, so the result is bit-identical for the same per-window predictions.

Used by the CPP plug-in models' test (:class:`~seethroughnet.modeling.segmentors.CPPSegmentor`,
``TEST.CPP_SEGMENTOR.MODE "slide"``) and by SeeThroughNet's per-scale inference
(:meth:`seethroughnet.nn.seethroughnet.SeeThroughNet.inference`).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Tuple, Union

import torch

__all__ = ["window_starts", "sliding_window_inference"]

Maps = Union[torch.Tensor, Dict[str, torch.Tensor]]


def window_starts(size: int, crop: int, stride: int) -> List[int]:
    """Start offsets of the windows along one axis of length ``size`` (MMSegmentation's grid)."""
    if size <= 0 or crop <= 0 or stride <= 0:
        raise ValueError(f"size, crop and stride must be positive, got {size}, {crop}, {stride}")
    count = max(size - crop + stride - 1, 0) // stride + 1
    return [max(min(i * stride + crop, size) - crop, 0) for i in range(count)]


def sliding_window_inference(
    images: torch.Tensor,
    predict: Callable[[torch.Tensor], Maps],
    crop_size: Tuple[int, int],
    stride: Tuple[int, int],
) -> Maps:
    """``predict`` on every window of ``images`` ``(N, C, H, W)``, overlaps averaged.

    ``predict(window)`` returns a map ``(N, K, h, w)`` -- or a dict of such maps -- at the window's
    own size ``h x w``; the result has the same structure at ``H x W``. ``crop_size`` and
    ``stride`` are ``(h, w)`` pairs.
    """
    (ch, cw), (sh, sw) = tuple(crop_size), tuple(stride)
    h, w = images.shape[-2:]
    acc: Dict[str, torch.Tensor] = {}
    count = images.new_zeros(images.shape[0], 1, h, w)
    single = None
    for y1 in window_starts(h, ch, sh):
        for x1 in window_starts(w, cw, sw):
            y2, x2 = min(y1 + ch, h), min(x1 + cw, w)
            out = predict(images[..., y1:y2, x1:x2])
            single = isinstance(out, torch.Tensor)
            maps = {"": out} if single else out
            for key, value in maps.items():
                if value.shape[-2:] != (y2 - y1, x2 - x1):
                    raise ValueError(
                        f"predict returned a {tuple(value.shape[-2:])} map for a "
                        f"{(y2 - y1, x2 - x1)} window; it must predict at the window's size"
                    )
                if key not in acc:
                    acc[key] = value.new_zeros(*value.shape[:-2], h, w)
                acc[key][..., y1:y2, x1:x2] += value
            count[..., y1:y2, x1:x2] += 1
    result = {key: value / count for key, value in acc.items()}
    return result[""] if single else result
