"""``grad_cam`` against Grad-CAM written out with plain torch hooks on a fixed tiny model and
image: equal within 1e-5 (Selvaraju et al. 2017 for segmentation as in Vinogradova et al. 2020;
the map ReLU'd, bilinearly up-sampled with ``align_corners=False`` and divided by its maximum)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seethroughnet.visualization.gradcam import grad_cam


class Encoder(nn.Module):
    """Returns a dict of two strides, as SeeThroughNet's encoder does."""

    def __init__(self):
        super().__init__()
        self.s2 = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.s4 = nn.Sequential(nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2, padding=1))

    def forward(self, x):
        a = self.s2(x)
        return {"res2": a, "res3": self.s4(a)}


class Tiny(nn.Module):
    """Stride-4 features and a 1x1 classifier, logits bilinearly up-sampled to the image. Random
    weights plus: channels 0..2 follow the colours 0..2 into classes 0..2 (so each quadrant of
    :func:`_image` has its own class); channel 3 of ``res3`` has a bias of 3 and no ReLU after it
    and is class 3's only input (class 3's CAM is positive everywhere)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = Encoder()
        self.head = nn.Conv2d(8, 4, 1)
        with torch.no_grad():
            for i in range(3):
                self.encoder.s2.weight[i, i, 1, 1] += 2
                self.encoder.s4[1].weight[i, i, 1, 1] += 2
                self.head.weight[i, i] += 2
            self.encoder.s4[1].bias[3] = 3.0
            self.head.weight[3].zero_()
            self.head.weight[3, 3] = 1.0
            self.head.bias[3] = -2.5

    def forward(self, x):
        logits = self.head(self.encoder(x)["res3"])
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _image(seed=1):
    """30 x 42 noise; the top-left, top-right and bottom-left quadrants lit in colour 0, 1, 2."""
    g = torch.Generator().manual_seed(seed)
    img = 0.2 * torch.rand(1, 3, 30, 42, generator=g)
    img[:, 0, :15, :21] += 1
    img[:, 1, :15, 21:] += 1
    img[:, 2, 15:, :21] += 1
    return img


def reference_cam(model, image, module, key, class_index, box=None):
    """Grad-CAM with a forward hook and ``torch.autograd.grad``: score = sum of the class logits
    over the predicted pixels (the box; the whole image if nothing is predicted), channel
    weights = spatial mean of d score / dA, ReLU of the weighted sum, bilinear up-sampling
    (``align_corners=False``) to the image, divided by the maximum."""
    kept = {}

    def hook(mod, inputs, output):
        kept["a"] = output[key] if key is not None else output

    handle = module.register_forward_hook(hook)
    try:
        logits = model(image)[0]
    finally:
        handle.remove()
    act = kept["a"]
    if box is not None:
        x0, y0, x1, y1 = box
        region = torch.zeros(logits.shape[1:], dtype=torch.bool)
        region[y0:y1, x0:x1] = True
    else:
        region = logits.detach().argmax(0) == class_index
        if not region.any():
            region = torch.ones_like(region)
    score = (logits[class_index] * region).sum()
    (grad,) = torch.autograd.grad(score, act)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act.detach()).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=logits.shape[1:], mode="bilinear", align_corners=False)[0, 0]
    return (cam / cam.max()).numpy(), float(score.detach())


@pytest.mark.parametrize(
    "layer, module, key, class_index, box",
    [
        ("encoder:res3", "encoder", "res3", 0, None),
        ("encoder:res3", "encoder", "res3", 2, None),
        ("encoder:res2", "encoder", "res2", 1, (5, 3, 30, 20)),
        ("encoder.s4", "encoder.s4", None, 3, None),
        ("encoder.s4", "encoder.s4", None, 1, (0, 0, 42, 30)),
    ],
)
def test_grad_cam_equals_the_hook_reference(layer, module, key, class_index, box):
    model = Tiny().eval()
    image = _image()
    ref, score = reference_cam(
        model, image, dict(model.named_modules())[module], key, class_index, box
    )
    res = grad_cam(model, lambda: model(image), layer, class_index, box=box)
    assert res.cam.shape == ref.shape == (30, 42)
    np.testing.assert_allclose(res.cam, ref, atol=1e-5, rtol=0)
    assert res.score == pytest.approx(score, rel=1e-5)
    assert res.region_kind == ("box" if box else "predicted") and res.region.any()
    assert not any(p.grad is not None for p in model.parameters())
    assert not model.training


def test_a_map_positive_everywhere_keeps_its_floor():
    """Class 3's ReLU'd map has no zero: it is divided by its maximum, not min-max stretched (its
    minimum stays well above 0)."""
    model = Tiny().eval()
    image = _image()
    ref, _ = reference_cam(model, image, model.encoder, "res3", 3)
    assert ref.min() > 0.5
    res = grad_cam(model, lambda: model(image), "encoder:res3", 3)
    np.testing.assert_allclose(res.cam, ref, atol=1e-5, rtol=0)
    assert res.cam.min() > 0.5 and res.cam.max() == pytest.approx(1.0)
