"""Size of SeeThroughNet (Han, Yoo, Oh, CVPR 2022): parameters per part and FLOPs (fvcore
multiply-adds) per part and input size, with the linear fit in the pixel count that extrapolates
them to the paper's 1024x2048; the timing measurements are in :mod:`.benchmark`."""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence, Tuple

import torch
from torch import nn

from seethroughnet.nn.layers import resize
from seethroughnet.nn.seethroughnet import SeeThroughNet

from .benchmark import PART_LABELS, PARTS, K, build_model, count_params, format_gflops


def _fmt_m(x: float) -> str:
    return f"{x / 1e6:.3f}M"


# ----------------------------------------------------------------------------------------------
# 1. parameters
def params_rows(backbones: Sequence[str], heads: str = "paper") -> List[List[str]]:
    """Rows ``[part, count per backbone...]``: the four parts and the total."""
    models = {bb: build_model(bb, heads) for bb in backbones}
    rows = []
    for part in PARTS:
        rows.append(
            [PART_LABELS[part]] + [_fmt_m(count_params(getattr(m, part))) for m in models.values()]
        )
    rows.append(["**total**"] + [_fmt_m(count_params(m)) for m in models.values()])
    return rows


def hrnetv2_head(in_channels: int, num_classes: int = K) -> nn.Module:
    """HRNetV2's segmentation head (Wang et al.; HRNet-Semantic-Segmentation ``last_layer``):
    1x1 conv (C -> C, bias) + BN + ReLU + 1x1 conv (C -> K, bias), on the concatenated branches."""
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 1),
        nn.BatchNorm2d(in_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_channels, num_classes, 1),
    )


# ----------------------------------------------------------------------------------------------
# 2. FLOPs
def _flop_analysis(module: nn.Module, inputs) -> "object":
    from fvcore.nn import FlopCountAnalysis

    fa = FlopCountAnalysis(module, inputs)
    fa.unsupported_ops_warnings(False)
    fa.uncalled_modules_warnings(False)
    return fa


class TraceableInference(nn.Module):
    """Traceable single-scale inference at a fixed size: one ``r = 1.0`` pass
    (:meth:`SeeThroughNet.forward_single`) and the bilinear up-sampling of ``X`` to the input
    size -- what ``model.inference(x)`` computes for an input whose sides are multiples of 32
    (``inference`` itself rounds Python sizes, which ``torch.jit`` tracing does not allow)."""

    def __init__(self, model: SeeThroughNet, size: Tuple[int, int]):
        super().__init__()
        self.model = model
        self.size = tuple(int(v) for v in size)

    def forward(self, x):
        return resize(self.model.forward_single(x)["logits"], self.size, self.model.align_corners)


def count_flops(
    model: SeeThroughNet, size: Tuple[int, int], device: str = "cpu"
) -> Dict[str, float]:
    """fvcore flops of single-scale inference at ``size`` (batch 1), per part.

    Keys: the parts in :data:`PARTS` (``scale_attention`` counted separately on a tensor of the
    OCR features' shape: it does not run in single-scale inference), ``other`` (ops outside the
    parts: concatenating the HRNetV2 branches, the final up-sampling), ``total`` (single-scale
    inference = encoder + decoder + ocr + other), ``hrnetv2_head`` (HRNetV2's own 1x1 head on the
    same concatenated features, for the comparison with the published HRNetV2 count) and
    ``by_operator`` (a dict).
    """
    h, w = size
    if h % model.encoder.size_divisibility or w % model.encoder.size_divisibility:
        raise ValueError(
            f"FLOP-count size {size} must be a multiple of {model.encoder.size_divisibility}"
        )
    model = model.eval().to(device)
    x = torch.randn(1, 3, h, w, device=device)
    with torch.no_grad():
        fa = _flop_analysis(TraceableInference(model, (h, w)), (x,))
        by_module = fa.by_module()
        total = float(fa.total())
        res = {p: float(by_module.get(f"model.{p}", 0)) for p in ("encoder", "decoder", "ocr")}
        res["other"] = total - sum(res.values())
        res["total"] = total
        res["by_operator"] = {k: float(v) for k, v in fa.by_operator().items()}
        feat_hw = (h // 4, w // 4)
        if model.scale_attention is not None:
            mid = model.ocr.classifier.in_channels
            z = torch.randn(1, mid, *feat_hw, device=device)
            res["scale_attention"] = float(_flop_analysis(model.scale_attention, (z,)).total())
        else:
            res["scale_attention"] = 0.0
        cin = sum(model.encoder.channels.values())
        head = hrnetv2_head(cin).eval().to(device)
        res["hrnetv2_head"] = float(
            _flop_analysis(head, (torch.randn(1, cin, *feat_hw, device=device),)).total()
        )
        res["hrnetv2_head_params"] = float(count_params(head))
    return res


_FIT_KEYS = ("encoder", "decoder", "ocr", "scale_attention", "other", "total", "hrnetv2_head")


def linear_fit(
    f1: Mapping[str, float], px1: int, f2: Mapping[str, float], px2: int
) -> Dict[str, Tuple[float, float]]:
    """Per key, ``(a, b)`` with ``flops = a * pixels + b`` through the two counts. Every op of the
    model is linear in the pixel count except the OCR head's convs on the K object-region vectors
    (``key`` / ``value``, ``(N, C, K, 1)`` tensors), which are constant: ``b``."""
    out = {}
    for k in _FIT_KEYS:
        a = (f2[k] - f1[k]) / (px2 - px1)
        out[k] = (a, f2[k] - a * px2)
    return out


def flops_rows(
    model: SeeThroughNet, count_size, target_size, device="cpu"
) -> Tuple[List[List[str]], Dict[str, object]]:
    """Rows ``[part, params, GFLOPs at count_size/2, at count_size (counted), at target_size]``.

    The target-size value is ``a * H * W + b`` with ``(a, b)`` fitted through the two counts
    (:func:`linear_fit`); where ``count_size / 2`` is not a multiple of 32 it is the count times
    the pixel ratio."""
    ch, cw = count_size
    th, tw = target_size
    f2 = count_flops(model, (ch, cw), device)
    div = model.encoder.size_divisibility
    half = (ch // 2, cw // 2)
    if half[0] % div == 0 and half[1] % div == 0 and half[0] > 0:
        f1 = count_flops(model, half, device)
        fit = linear_fit(f1, half[0] * half[1], f2, ch * cw)
    else:
        f1 = None
        fit = {k: (f2[k] / (ch * cw), 0.0) for k in _FIT_KEYS}
    tgt = {k: a * th * tw + b for k, (a, b) in fit.items()}

    def row(label, params, key):
        return [
            label,
            params,
            format_gflops(f1[key]) if f1 else "-",
            format_gflops(f2[key]),
            format_gflops(tgt[key]),
        ]

    rows = []
    for part in PARTS:
        note = " (not run at single scale)" if part == "scale_attention" else ""
        rows.append(row(PART_LABELS[part] + note, _fmt_m(count_params(getattr(model, part))), part))
    rows.append(row("other (branch concat, final up-sampling)", "-", "other"))
    rows.append(
        row(
            "**single-scale inference (encoder+decoder+OCR+other)**",
            _fmt_m(count_params(model) - count_params(model.scale_attention)),
            "total",
        )
    )
    rows.append(["**whole model (all parameters)**", _fmt_m(count_params(model)), "-", "-", "-"])
    enc_head = {
        k: v["encoder"] + v["hrnetv2_head"] for k, v in (("f1", f1 or f2), ("f2", f2), ("t", tgt))
    }
    rows.append(
        [
            "HRNetV2 (our encoder + HRNetV2's 1x1 head)",
            _fmt_m(count_params(model.encoder) + f2["hrnetv2_head_params"]),
            format_gflops(enc_head["f1"]) if f1 else "-",
            format_gflops(enc_head["f2"]),
            format_gflops(enc_head["t"]),
        ]
    )
    return rows, {
        "counted": f2,
        "half": f1,
        "fit": fit,
        "target": tgt,
        "half_size": half if f1 else None,
    }


def scaling_rows(
    model: SeeThroughNet, sizes: Sequence[Tuple[int, int]], device="cpu"
) -> List[List[str]]:
    """fvcore GFLOPs at several sizes; ``a * HW + b`` fitted through the first two sizes, and the
    difference between every count and that line (0 where the model is exactly linear + const)."""
    counts = [count_flops(model, s, device) for s in sizes]
    px = [h * w for h, w in sizes]
    fit = linear_fit(counts[0], px[0], counts[1], px[1]) if len(sizes) > 1 else None
    rows = []
    for (h, w), p, f in zip(sizes, px, counts):
        pred = fit["total"][0] * p + fit["total"][1] if fit else f["total"]
        rows.append(
            [
                f"{h}x{w}",
                format_gflops(f["encoder"]),
                format_gflops(f["decoder"]),
                format_gflops(f["ocr"]),
                f"{f['total'] / 1e9:,.6f}",
                f"{(f['total'] / p) / (counts[0]['total'] / px[0]):.6f}",
                f"{f['total'] - pred:,.0f}",
            ]
        )
    if fit:
        rows.append(
            [
                "fit",
                "-",
                "-",
                "-",
                f"a = {fit['total'][0]:,.2f} flops/pixel, b = {fit['total'][1]:,.0f} flops",
                "-",
                "-",
            ]
        )
    return rows
