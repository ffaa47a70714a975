"""Shared plumbing of the meta-architectures and the main cross-entropy."""

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("detectron2")

from detectron2.utils.events import EventStorage  # noqa: E402

from seethroughnet.modeling.common import (  # noqa: E402
    check_finite_losses,
    normalized_images,
    padded_labels,
)
from seethroughnet.nn.aux_losses import resized_cross_entropy  # noqa: E402


def test_check_finite_losses_names_every_bad_term_and_the_iteration():
    check_finite_losses({"a": torch.tensor(1.0)})
    with pytest.raises(FloatingPointError, match=r"outside a training loop: b = inf, c = nan"):
        check_finite_losses(
            {
                "a": torch.tensor(1.0),
                "b": torch.tensor(float("inf")),
                "c": torch.tensor(float("nan")),
            }
        )
    with EventStorage(7):
        with pytest.raises(FloatingPointError, match=r"at iteration 7: b = nan"):
            check_finite_losses({"b": torch.tensor(float("nan"))})


def test_resized_cross_entropy_matches_interpolate_plus_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 4, 6, generator=g, requires_grad=True)
    labels = torch.randint(0, 5, (2, 16, 24), generator=g)
    labels[0, :3] = 255
    ref = F.cross_entropy(
        F.interpolate(logits, size=(16, 24), mode="bilinear", align_corners=False),
        labels,
        ignore_index=255,
    )
    assert torch.allclose(resized_cross_entropy(logits, labels, 255), ref)
    zero = resized_cross_entropy(logits, torch.full((2, 16, 24), 255), 255)
    assert zero.item() == 0.0 and zero.requires_grad


def test_images_and_labels_are_padded_alike():
    mean, std = (
        torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1),
        torch.tensor([2.0, 2.0, 2.0]).view(3, 1, 1),
    )
    batch = [
        {
            "image": torch.full((3, 10, 20), 5, dtype=torch.uint8),
            "sem_seg": torch.ones(10, 20, dtype=torch.long),
        },
        {
            "image": torch.full((3, 33, 7), 5, dtype=torch.uint8),
            "sem_seg": torch.ones(33, 7, dtype=torch.long),
        },
    ]
    images = normalized_images(batch, mean, std, 32)
    labels = padded_labels(batch, 32, 255, mean.device)
    assert images.tensor.shape == (2, 3, 64, 32) and labels.shape == (2, 64, 32)
    assert images.image_sizes == [(10, 20), (33, 7)]
    assert torch.allclose(images.tensor[0, :, 0, 0], (5 - mean.flatten()) / 2)
    assert (
        images.tensor[0, :, 10:].abs().sum() == 0
        and (labels[0, 10:] == 255).all()
        and (labels[0, :10, :20] == 1).all()
    )
