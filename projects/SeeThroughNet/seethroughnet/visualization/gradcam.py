"""Grad-CAM for semantic segmentation (plain PyTorch; no detectron2 import).

Selvaraju et al. 2017's Grad-CAM, extended to dense prediction as in Vinogradova et al. 2020
("Towards interpretable semantic segmentation via gradient-weighted class activation
mapping"): for a class ``c``, a set of pixels ``M`` and a layer with activations
``A`` (``C x h x w``),

* the score is ``y = sum_{p in M} logits[c, p]`` (``M``: the pixels predicted as ``c``, or a
  user-given box ``x0, y0, x1, y1``);
* the channel weights are the spatial means of the gradients, ``w_k = mean_{ij} dy/dA_k[i,j]``;
* the map is ``ReLU(sum_k w_k A_k)``, bilinearly up-sampled to the image size and divided by
  its maximum (all zeros if the maximum is 0), so it lies in ``[0, 1]``.

The layer is named as in ``model.named_modules()``; a layer whose output is a dict, list or
tuple (e.g. SeeThroughNet's encoder, ``{"res2", ..., "res5"}``) takes ``NAME:KEY`` to pick one
entry (``net.encoder:res5``); without a key the lowest-resolution tensor is used.

The forward pass must keep gradients: :func:`segmentation_forward` returns, per
meta-architecture, a callable giving full-resolution ``(1, K, H, W)`` logits with autograd on
(SeeThroughNet's ``inference`` runs under ``torch.no_grad``, so its adapter runs one
single-scale pass of ``net.forward_single`` instead; any other detectron2 semantic-segmentation
model is called as ``model([{"image", "height", "width"}])[0]["sem_seg"]``).
"""

from __future__ import annotations

import difflib
import math
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DEFAULT_LAYERS",
    "GradCAMResult",
    "LayerSpec",
    "default_layer",
    "grad_cam",
    "parse_layer",
    "resolve_class",
    "resolve_layer",
    "segmentation_forward",
]

# meta-architecture class name -> default Grad-CAM layer (the last encoder stage): the first
# of the candidates that the model has.
DEFAULT_LAYERS: Dict[str, Tuple[str, ...]] = {
    "SeeThroughNetSegmentor": ("net.encoder:res5",),
    "SemanticSegmentor": ("backbone.res5", "backbone.bottom_up.res5", "backbone"),
}

Box = Tuple[int, int, int, int]


# ----------------------------------------------------------------------------------------------
# names: classes and layers
def resolve_class(name: Union[str, int], class_names: Sequence[str]) -> int:
    """The index of class ``name`` (case-insensitive; ``_`` and spaces equivalent; an integer
    or a digit string is taken as the index). Raises ``ValueError`` listing the valid names."""
    k = len(class_names)
    if isinstance(name, (int, np.integer)) or (isinstance(name, str) and name.strip().isdigit()):
        i = int(name)
        if 0 <= i < k:
            return i
        raise ValueError(
            f"class index {i} out of range: the model has {k} classes (0..{k - 1}): "
            f"{_class_list(class_names)}"
        )

    def norm(s):
        return " ".join(str(s).replace("_", " ").lower().split())

    table = {norm(n): i for i, n in enumerate(class_names)}
    if norm(name) in table:
        return table[norm(name)]
    close = difflib.get_close_matches(norm(name), list(table), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown class {name!r}.{hint} Valid class names: {_class_list(class_names)}")


def _class_list(class_names):
    return ", ".join(repr(n) for n in class_names)


@dataclass(frozen=True)
class LayerSpec:
    """A module name and, for dict/list/tuple outputs, the entry to use (``None``: lowest
    resolution)."""

    module: str
    key: Optional[str] = None

    def __str__(self):
        return self.module + (f":{self.key}" if self.key is not None else "")


def parse_layer(spec: Union[str, LayerSpec]) -> LayerSpec:
    if isinstance(spec, LayerSpec):
        return spec
    module, sep, key = str(spec).partition(":")
    return LayerSpec(module.strip(), key.strip() if sep and key.strip() else None)


def default_layer(model: nn.Module) -> str:
    """The default layer of ``model``: the first candidate of :data:`DEFAULT_LAYERS` (by class
    name) that it has, else ``backbone`` (its lowest-resolution output) if it has one."""
    name = type(model).__name__
    modules = dict(model.named_modules())
    for cand in DEFAULT_LAYERS.get(name, ()) + ("backbone",):
        if parse_layer(cand).module in modules:
            return cand
    raise ValueError(
        f"no default Grad-CAM layer for a {name}; pass one by name (e.g. --layer NAME). "
        + _layer_listing(model)
    )


def _layer_listing(model: nn.Module, wanted: str = "", limit: int = 60) -> str:
    """Valid layer names, shallow ones first, truncated; close matches to ``wanted`` first."""
    names = [n for n, _ in model.named_modules() if n]
    close = difflib.get_close_matches(wanted, names, n=5, cutoff=0.5) if wanted else []
    depth, shown = 1, []
    while True:  # the deepest level whose names still fit in ``limit``
        level = [n for n in names if n.count(".") < depth]
        if len(level) > limit or depth > 12:
            break
        shown = level
        if len(level) == len(names):
            break
        depth += 1
    if not shown:
        shown = names[:limit]
    # one level further inside encoders / backbones (where Grad-CAM layers usually are)
    base = set(shown)
    inner = set(shown)
    for n in names:
        parent = n.rpartition(".")[0]
        if parent in base and ("encoder" in parent or "backbone" in parent):
            inner.add(n)
    shown = [n for n in names if n in inner][: 2 * limit]
    text = ""
    if close:
        text += f"Close matches: {', '.join(close)}. "
    text += f"Valid layer names: {', '.join(shown)}"
    if len(shown) < len(names):
        text += f", ... ({len(names)} modules in all; any name in model.named_modules() works)"
    return text


def resolve_layer(model: nn.Module, spec: Union[str, LayerSpec]) -> Tuple[nn.Module, LayerSpec]:
    """The module named by ``spec`` (``NAME`` or ``NAME:KEY``). Raises ``KeyError`` listing the
    valid names."""
    spec = parse_layer(spec)
    modules = dict(model.named_modules())
    if spec.module not in modules or not spec.module:
        raise KeyError(
            f"model {type(model).__name__} has no layer {spec.module!r}. "
            + _layer_listing(model, spec.module)
        )
    return modules[spec.module], spec


# ----------------------------------------------------------------------------------------------
# capturing one layer's activation
def _spatial_area(t) -> int:
    return int(t.shape[-2] * t.shape[-1]) if isinstance(t, torch.Tensor) and t.dim() >= 3 else -1


def _select(output, spec: LayerSpec):
    """(key, tensor) of the layer output to explain."""
    if isinstance(output, torch.Tensor):
        if spec.key is not None:
            raise KeyError(f"layer {spec.module!r} returns a single tensor; drop ':{spec.key}'")
        return None, output
    if isinstance(output, dict):
        items = list(output.items())
    elif isinstance(output, (list, tuple)):
        items = list(enumerate(output))
    else:
        raise TypeError(
            f"layer {spec.module!r} returns a {type(output).__name__}; Grad-CAM needs a tensor, "
            "dict, list or tuple"
        )
    tensors = [(k, v) for k, v in items if isinstance(v, torch.Tensor) and v.dim() >= 3]
    if not tensors:
        raise TypeError(f"layer {spec.module!r} returns no (N, C, H, W) tensors")
    if spec.key is None:  # lowest resolution, the first of equals
        return min(tensors, key=lambda kv: _spatial_area(kv[1]))
    for k, v in tensors:
        if str(k) == spec.key:
            return k, v
    raise KeyError(
        f"layer {spec.module!r} output has no entry {spec.key!r}; it has "
        + ", ".join(f"{k!s} {tuple(v.shape)}" for k, v in tensors)
        + f" (write e.g. {spec.module}:{tensors[-1][0]})"
    )


def _replace(output, key, value):
    if key is None:
        return value
    if isinstance(output, dict):
        new = output.copy()
        new[key] = value
        return new
    seq = list(output)
    seq[key] = value
    if hasattr(output, "_fields"):  # namedtuple
        return type(output)(*seq)
    return tuple(seq) if isinstance(output, tuple) else seq


class _Capture:
    """Forward hook keeping the selected activation; if it does not require grad (a frozen
    layer or an input without grad) it is replaced by a grad-requiring leaf so the gradient
    still reaches it."""

    def __init__(self, module: nn.Module, spec: LayerSpec):
        self.spec, self.activation, self.key = spec, None, None
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        if self.activation is not None:
            warnings.warn(
                f"layer {self.spec} ran more than once in the forward pass; Grad-CAM uses its "
                "first call",
                stacklevel=2,
            )
            return None
        key, act = _select(output, self.spec)
        self.key = key
        if not act.requires_grad:
            act = act.detach().requires_grad_(True)
            self.activation = act
            return _replace(output, key, act)
        self.activation = act
        return None

    def remove(self):
        self.handle.remove()


# ----------------------------------------------------------------------------------------------
@dataclass
class GradCAMResult:
    """``cam``: ``(H, W)`` float32 in ``[0, 1]``; ``prediction``: ``(H, W)`` int64 argmax of
    the logits of the same pass; ``region``: ``(H, W)`` bool pixels whose logits were summed;
    ``region_kind``: ``"predicted"``, ``"box"`` or ``"all"`` (nothing predicted as the class:
    the whole image was used); ``score``: the summed logit; ``layer``: the layer explained
    (with the key picked); ``activation_shape``: ``(C, h, w)``."""

    cam: np.ndarray
    prediction: np.ndarray
    region: np.ndarray
    region_kind: str
    score: float
    class_index: int
    layer: str
    activation_shape: Tuple[int, ...]


def check_box(box: Sequence[int], h: int, w: int) -> Box:
    if len(box) != 4:
        raise ValueError(f"box needs 4 numbers x0 y0 x1 y1, got {list(box)}")
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    x0, x1 = max(0, min(x0, w)), max(0, min(x1, w))
    y0, y1 = max(0, min(y0, h)), max(0, min(y1, h))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(
            f"box {list(box)} is empty inside the {w}x{h} image (need x0 < x1 <= {w}, y0 < y1 <= "
            f"{h})"
        )
    return x0, y0, x1, y1


def grad_cam(
    model: nn.Module,
    forward: Callable[[], torch.Tensor],
    layer: Union[str, LayerSpec],
    class_index: int,
    box: Optional[Sequence[int]] = None,
) -> GradCAMResult:
    """Grad-CAM map of class ``class_index`` at ``layer`` of ``model``.

    Args:
        forward: runs the model and returns its logits ``(1, K, H, W)`` or ``(K, H, W)`` at the
            image resolution, with autograd on (see :func:`segmentation_forward`).
        layer: ``NAME`` or ``NAME:KEY`` of a module of ``model``.
        box: ``(x0, y0, x1, y1)`` pixels (x1, y1 exclusive) whose class logits are summed;
            ``None``: the pixels predicted as the class (the whole image if there are none).
    """
    module, spec = resolve_layer(model, layer)
    cap = _Capture(module, spec)
    try:
        with torch.enable_grad():
            logits = forward()
    finally:
        cap.remove()
    if cap.activation is None:
        raise RuntimeError(
            f"layer {spec} did not run in the forward pass; pick a layer the prediction goes "
            "through"
        )
    if logits.dim() == 4:
        if logits.shape[0] != 1:
            raise ValueError(
                f"Grad-CAM explains one image at a time; got logits {tuple(logits.shape)}"
            )
        logits = logits[0]
    k, h, w = logits.shape
    if not 0 <= class_index < k:
        raise ValueError(f"class index {class_index} out of range for {k} classes")
    act = cap.activation
    if act.dim() == 4:
        if act.shape[0] != 1:
            raise ValueError(f"layer {spec} activation {tuple(act.shape)}: expected batch size 1")
        act_b = act
    else:
        act_b = act.unsqueeze(0)
    pred = logits.detach().argmax(0)
    if box is not None:
        x0, y0, x1, y1 = check_box(box, h, w)
        region = torch.zeros(h, w, dtype=torch.bool, device=logits.device)
        region[y0:y1, x0:x1] = True
        kind = "box"
    else:
        region = pred == class_index
        kind = "predicted"
        if not bool(region.any()):
            region = torch.ones_like(region)
            kind = "all"
    score = (logits[class_index] * region).sum()
    if not score.requires_grad:
        raise RuntimeError(
            "the logits do not depend on the layer with autograd on (did the forward run under "
            "torch.no_grad?)"
        )
    (grad,) = torch.autograd.grad(score, act, allow_unused=True)
    if grad is None:
        raise RuntimeError(f"the logits do not depend on layer {spec}")
    grad_b = grad if grad.dim() == 4 else grad.unsqueeze(0)
    with torch.no_grad():
        weights = grad_b.float().mean(dim=(2, 3), keepdim=True)  # (1, C, 1, 1)
        cam = F.relu((weights * act_b.detach().float()).sum(1, keepdim=True))  # (1, 1, h', w')
        cam = F.interpolate(cam, size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        cam = cam.clamp_min(0)
        peak = float(cam.max())
        cam = cam / peak if peak > 0 and math.isfinite(peak) else torch.zeros_like(cam)
    name = spec.module + (f":{cap.key}" if cap.key is not None else "")
    return GradCAMResult(
        cam=cam.cpu().numpy().astype(np.float32),
        prediction=pred.cpu().numpy().astype(np.int64),
        region=region.cpu().numpy(),
        region_kind=kind,
        score=float(score.detach()),
        class_index=int(class_index),
        layer=name,
        activation_shape=tuple(act_b.shape[1:]),
    )


# ----------------------------------------------------------------------------------------------
# forward adapters: full-resolution logits with autograd on
def _seethroughnet_forward(
    model: nn.Module, image: torch.Tensor, output_size: Tuple[int, int]
) -> Callable[[], torch.Tensor]:
    """One single-scale pass of ``SeeThroughNet.forward_single`` (its ``inference`` is
    ``@torch.no_grad``): normalise, zero-pad to a multiple of 32, stride-4 logits up-sampled to
    the padded size and cropped back, as ``SeeThroughNet._padded_pass`` does; then bilinearly
    resized (``align_corners=False``) to ``output_size`` as detectron2's
    ``sem_seg_postprocess`` resizes the model's output to the input's height x width."""
    net = model.net

    def run():
        x = (image.to(model.pixel_mean.device).float() - model.pixel_mean) / model.pixel_std
        x = x.unsqueeze(0)
        h, w = x.shape[-2:]
        div = net.encoder.size_divisibility
        ph, pw = math.ceil(h / div) * div, math.ceil(w / div) * div
        if (ph, pw) != (h, w):
            x = F.pad(x, (0, pw - w, 0, ph - h))
        logits = net.forward_single(x)["logits"]
        logits = F.interpolate(
            logits, size=(ph, pw), mode="bilinear", align_corners=net.align_corners
        )
        logits = logits[..., :h, :w]
        if tuple(output_size) != (h, w):
            logits = F.interpolate(logits, size=output_size, mode="bilinear", align_corners=False)
        return logits

    return run


def _detectron2_forward(
    model: nn.Module, image: torch.Tensor, output_size: Tuple[int, int]
) -> Callable[[], torch.Tensor]:
    """Any detectron2 semantic-segmentation meta-architecture whose eval forward keeps autograd
    (e.g. ``SemanticSegmentor``): ``model([{"image", "height", "width"}])[0]["sem_seg"]``."""
    h, w = output_size

    def run():
        out = model([{"image": image, "height": h, "width": w}])
        if not (
            isinstance(out, (list, tuple))
            and out
            and isinstance(out[0], dict)
            and "sem_seg" in out[0]
        ):
            raise TypeError(
                f"{type(model).__name__} did not return [{{'sem_seg': logits}}]; Grad-CAM needs a "
                "semantic-segmentation model"
            )
        return out[0]["sem_seg"].unsqueeze(0)

    return run


Adapter = Callable[[nn.Module, torch.Tensor, Tuple[int, int]], Callable[[], torch.Tensor]]
FORWARD_ADAPTERS: Dict[str, Adapter] = {
    "SeeThroughNetSegmentor": _seethroughnet_forward,
}


def segmentation_forward(
    model: nn.Module, image: torch.Tensor, output_size: Optional[Tuple[int, int]] = None
) -> Callable[[], torch.Tensor]:
    """A callable giving ``(1, K, H, W)`` logits with autograd on for ``image`` (uint8 or float
    ``(3, h, w)`` in the model's input format, unnormalised, as detectron2 models take it).
    ``output_size``: ``(H, W)`` of the logits, the original image size when ``image`` is the
    test-time resized input (the ``height`` / ``width`` of detectron2's input dict;
    :func:`seethroughnet.visualization.models.model_input` gives all three); ``None``: the
    image's own size. The model should be in eval mode."""
    if image.dim() != 3:
        raise ValueError(f"image must be (C, H, W), got {tuple(image.shape)}")
    size = tuple(int(v) for v in (output_size or image.shape[-2:]))
    adapter = FORWARD_ADAPTERS.get(type(model).__name__, _detectron2_forward)
    return adapter(model, image, size)
