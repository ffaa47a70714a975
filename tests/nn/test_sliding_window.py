"""Sliding-window inference (seethroughnet/nn/sliding_window.py): MMSegmentation's window grid
(``slide_inference``: ``max(L - c + s - 1, 0) // s + 1`` windows, the last one moved back to the
border, one window on an axis shorter than the crop) and the averaging of overlaps. The equality
with MMSegmentation's own ``slide_inference`` is tests/mmseg/test_mmseg_pipeline.py."""

import pytest
import torch

from seethroughnet.nn.sliding_window import sliding_window_inference, window_starts


@pytest.mark.parametrize(
    "size,crop,stride,starts",
    [
        (520, 480, 320, [0, 40]),  # Context: a 390x520 image, 480 windows every 320
        (693, 480, 320, [0, 213]),
        (1000, 480, 320, [0, 320, 520]),
        (480, 480, 320, [0]),
        (300, 480, 320, [0]),  # shorter than the window: one window of the whole side
        (10, 4, 3, [0, 3, 6]),
        (11, 4, 3, [0, 3, 6, 7]),
    ],
)
def test_window_starts(size, crop, stride, starts):
    assert window_starts(size, crop, stride) == starts


def test_window_starts_rejects_non_positive_sizes():
    with pytest.raises(ValueError, match="positive"):
        window_starts(10, 0, 3)


def test_windows_cover_the_image_and_overlaps_are_averaged():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 23, 37, generator=g)
    seen = []

    def predict(window):
        seen.append(tuple(window.shape[-2:]))
        return window[:, :2] * 2 + 1

    out = sliding_window_inference(images, predict, (10, 16), (7, 9))
    assert out.shape == (2, 2, 23, 37)
    assert torch.allclose(out, images[:, :2] * 2 + 1, atol=1e-6)
    assert len(seen) == len(window_starts(23, 10, 7)) * len(window_starts(37, 16, 9)) == 12
    assert set(seen) == {(10, 16)}


def test_position_dependent_predictions_are_averaged_per_pixel():
    images = torch.zeros(1, 1, 6, 5)
    calls = iter(range(1, 100))

    def predict(window):  # window k predicts the constant k
        return torch.full_like(window, float(next(calls)))

    out = sliding_window_inference(images, predict, (4, 5), (2, 5))
    # rows 0-3: window 1, rows 2-5: window 2 -> rows 2-3 are the mean 1.5
    assert out[0, 0, :, 0].tolist() == [1.0, 1.0, 1.5, 1.5, 2.0, 2.0]


def test_dict_predictions_and_a_wrong_size_is_an_error():
    images = torch.randn(1, 3, 9, 9)
    out = sliding_window_inference(images, lambda w: {"a": w[:, :1], "b": -w}, (5, 5), (4, 4))
    assert set(out) == {"a", "b"} and out["b"].shape == (1, 3, 9, 9)
    assert torch.allclose(out["b"], -images, atol=1e-6)
    with pytest.raises(ValueError, match="window's size"):
        sliding_window_inference(images, lambda w: w[..., :-1], (5, 5), (4, 4))
