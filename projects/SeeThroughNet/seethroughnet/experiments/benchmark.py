"""Size and speed measurements of SeeThroughNet (Han, Yoo, Oh, CVPR 2022): parameters, FLOPs,
training step time (with / without the CPP auxiliary losses), inference throughput, GPU step
time and memory. The command line is ``tools/benchmark_seethroughnet.py``
(:mod:`seethroughnet.experiments.benchmark_cli`, which describes every measurement)."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from seethroughnet.nn.aux_losses import AuxiliaryLoss
from seethroughnet.nn.cpp import cpp_targets
from seethroughnet.nn.options import (
    ActivationCheckpointing,
    DecoderOptions,
    EncoderOptions,
    OCROptions,
    TrainingScales,
)
from seethroughnet.nn.seethroughnet import SeeThroughNet

PARTS = ("encoder", "decoder", "ocr", "scale_attention")
PART_LABELS = {
    "encoder": "encoder (HRNetV2)",
    "decoder": "SeeThrough decoder",
    "ocr": "OCR head",
    "scale_attention": "scale-attention head",
}
HEADS = {
    "paper": dict(
        decoder=DecoderOptions(attention_channels=256),
        ocr=OCROptions(mid_channels=512, key_channels=256),
        scales=TrainingScales(attention_channels=256),
    ),
    "demo": dict(
        decoder=DecoderOptions(attention_channels=64),
        ocr=OCROptions(mid_channels=128, key_channels=64),
        scales=TrainingScales(attention_channels=64),
    ),
}
VARIANTS = ("cpp_kl", "none", "upsample_ce", "nearest_ce")
DEFAULT_THREADS = torch.get_num_threads()
DEMO_CONFIG = "projects/SeeThroughNet/configs/Cityscapes-Synthetic/seethroughnet_W18small_demo.yaml"
MULTI_SCALES = (0.5, 1.0, 2.0)
K = 19
IGNORE = 255


# ----------------------------------------------------------------------------------------------
# helpers
def environment() -> str:
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    dev = ""
    if torch.cuda.is_available():
        dev = f", GPU {torch.cuda.get_device_name(0)}"
    return (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs "
        f"({cpu}){dev}, load average (1/5/15 min) {load}, {time.strftime('%Y-%m-%d %H:%M:%S')}"
    )


def build_model(
    backbone: str, heads: str = "paper", checkpointing: Sequence[str] = ()
) -> SeeThroughNet:
    """A freshly initialised SeeThroughNet (no checkpoint; weights do not matter for timing);
    ``checkpointing``: the parts whose activations are recomputed in backward
    (:class:`~seethroughnet.nn.options.ActivationCheckpointing`)."""
    return SeeThroughNet(
        num_classes=K,
        encoder=EncoderOptions(backbone),
        checkpointing=ActivationCheckpointing(tuple(checkpointing)),
        **HEADS[heads],
    )


def build_model_from_config(path: str, opts: Sequence[str] = ()) -> Tuple[SeeThroughNet, object]:
    """``(model, cfg)``: the plain SeeThroughNet of a detectron2 config, built by
    :func:`seethroughnet.experiments.models.load_model` without weights (random init)."""
    from seethroughnet.experiments.models import load_model

    cfg, segmentor = load_model(path, weights="", opts=opts)
    return segmentor.net, cfg


def count_params(module: Optional[nn.Module]) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def make_labels(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Piecewise-constant ``(n, h, w)`` int64 labels (street-scene-like: blocks of 1/8 of the
    height, rectangles, thin poles), classes ``[0, 19)`` and ~5 % ignore (255)."""
    g = torch.Generator().manual_seed(seed)
    b = max(1, h // 8)
    lab = torch.randint(0, K, (n, -(-h // b), -(-w // b)), generator=g)
    lab = lab.repeat_interleave(b, 1).repeat_interleave(b, 2)[:, :h, :w].contiguous()

    def r(lo, hi):
        return int(torch.randint(lo, max(hi, lo + 1), (), generator=g))

    for i in range(n):
        for _ in range(40):
            y, x, hh, ww = r(0, h), r(0, w), r(2, h // 4), r(2, w // 4)
            lab[i, y : y + hh, x : x + ww] = r(0, K)
        for _ in range(15):
            y, x, hh, ww = r(0, h), r(0, w), r(h // 8, h // 2), r(1, 4)
            lab[i, y : y + hh, x : x + ww] = r(0, K)
        y, x = r(0, h - h // 5), r(0, w - w // 5)
        lab[i, y : y + h // 5, x : x + w // 5] = IGNORE
    return lab


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def format_gflops(x: float) -> str:
    return f"{x / 1e9:,.2f}"


# ----------------------------------------------------------------------------------------------
# 3. training step
class _NoAux(nn.Module):
    """Stand-in for ``model.aux_loss`` that computes nothing (no CPP targets, no loss)."""

    needs_cpp_targets = False

    def forward(self, logits, labels, targets=None):
        return torch.zeros((), device=logits.device)


def aux_module(variant: str, model: SeeThroughNet) -> nn.Module:
    if variant == "none":
        return _NoAux()
    a = model.aux_loss
    return AuxiliaryLoss(
        variant,
        model.num_classes,
        model.ignore_value,
        kl_direction=getattr(a, "kl_direction", "target_to_prediction"),
        ignore_mode=getattr(a, "ignore_mode", "renormalize"),
    )


@contextlib.contextmanager
def swapped_aux(model: SeeThroughNet, aux: nn.Module):
    old = model.aux_loss
    model.aux_loss = aux
    try:
        yield
    finally:
        model.aux_loss = old


def _now() -> Tuple[float, float]:
    """(wall clock, CPU time of this process: all its threads, user + system)."""
    return time.perf_counter(), time.process_time()


def train_step(
    model,
    optimizer,
    images,
    labels,
    variant: str,
    aux: nn.Module,
    device,
    autocast: Optional[torch.dtype] = None,
) -> Dict[str, float]:
    """One step. Returns wall-clock phase times (s) ``forward``, ``losses``, ``backward_step``,
    ``step``, the same in process CPU time under ``cpu_*``, and the loss. ``autocast``: run the
    forward and the losses under ``torch.autocast(device.type, dtype=autocast)`` (backward and
    the SGD step outside it, as AMP recipes do)."""
    device = torch.device(device)
    amp = (
        torch.autocast(device.type, dtype=autocast)
        if autocast is not None
        else contextlib.nullcontext()
    )
    _sync(device)
    t0 = _now()
    optimizer.zero_grad(set_to_none=True)
    with amp:
        out = model(images)
    _sync(device)
    t1 = _now()
    with swapped_aux(model, aux), amp:
        losses = model.losses(out, labels)
    if variant == "none":
        losses = {k: v for k, v in losses.items() if not k.startswith("loss_cpp_")}
    total = sum(losses.values())
    _sync(device)
    t2 = _now()
    total.backward()
    optimizer.step()
    _sync(device)
    t3 = _now()
    res = {"loss": float(total.detach()), "n_terms": len(losses)}
    for i, pre in ((0, ""), (1, "cpu_")):
        res.update(
            {
                pre + "forward": t1[i] - t0[i],
                pre + "losses": t2[i] - t1[i],
                pre + "backward_step": t3[i] - t2[i],
                pre + "step": t3[i] - t0[i],
            }
        )
    return res


def aux_terms_cost(
    model: SeeThroughNet,
    outputs: Mapping[str, object],
    labels: torch.Tensor,
    variant: str,
    repeats: int = 20,
    device="cpu",
) -> List[Tuple[float, float]]:
    """``(wall, CPU)`` seconds of the six decoder loss terms alone: their targets (``cpp_targets``
    for ``cpp_kl``), the losses on the maps ``model.loss_options.cpp_on`` (``coarse_{16,8,4}`` or
    ``agg_{16,8,4}``) of both passes (detached copies, so nothing else is recomputed) and their
    backward to those maps. Mirrors the decoder part of :meth:`SeeThroughNet.losses`."""
    dev = torch.device(device)
    aux = aux_module(variant, model).to(dev)
    maps = {}
    for r in model.train_resolutions:
        for s in (16, 8, 4):
            maps[(r, s)] = (
                outputs[f"r{float(r)}"][
                    f"{'coarse' if model.loss_options.cpp_on == 'coarse' else 'agg'}_{s}"
                ]
                .detach()
                .clone()
            )
    strides = sorted({int(round(s / r)) for s in (16, 8, 4) for r in model.train_resolutions})
    res = []
    for i in range(repeats + 2):
        leaves = {k: v.clone().requires_grad_(True) for k, v in maps.items()}
        _sync(dev)
        t0 = _now()
        targets = {}
        if getattr(aux, "needs_cpp_targets", False):
            with torch.no_grad():
                targets = dict(
                    zip(
                        strides, cpp_targets(labels, strides, model.num_classes, model.ignore_value)
                    )
                )
        total = 0.0
        for (r, s), logits in leaves.items():
            t = targets.get(int(round(s / r)))
            if t is not None and t.shape[-2:] != logits.shape[-2:]:
                t = None
            total = total + model.cpp_weights[s] * aux(logits, labels, t)
        if variant != "none":
            total.backward()
        _sync(dev)
        t1 = _now()
        if i >= 2:
            res.append((t1[0] - t0[0], t1[1] - t0[1]))
    return res


def benchmark_train(
    model: SeeThroughNet,
    batch: int,
    size: Tuple[int, int],
    variants: Sequence[str] = ("cpp_kl", "none", "upsample_ce"),
    warmup: int = 2,
    steps: int = 10,
    device: str = "cpu",
    lr: float = 1e-3,
    cpp_repeats: int = 30,
    seed: int = 0,
    aux_repeats: int = 20,
) -> Dict[str, object]:
    """Interleaved training-step timing. Round ``i`` runs one step of every variant, in an order
    rotated by ``i`` (so no variant always runs first / after the same one); ``warmup`` rounds
    are discarded. Returns per-variant lists of phase times, per-round paired ratios to the
    first variant, the cpp_targets timing and (cuda) peak memory per variant."""
    dev = torch.device(device)
    torch.manual_seed(seed)
    model = model.to(dev).train()
    h, w = size
    images = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(seed)).to(dev)
    labels = make_labels(batch, h, w, seed).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    auxes = {v: aux_module(v, model).to(dev) for v in variants}
    times: Dict[str, List[Dict[str, float]]] = {v: [] for v in variants}
    peak: Dict[str, int] = {v: 0 for v in variants}
    nonfinite = []
    for rnd in range(warmup + steps):
        order = [variants[(rnd + j) % len(variants)] for j in range(len(variants))]
        for v in order:
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            t = train_step(model, opt, images, labels, v, auxes[v], dev)
            if dev.type == "cuda":
                peak[v] = max(peak[v], torch.cuda.max_memory_allocated(dev))
            if not torch.isfinite(torch.tensor(t["loss"])):
                nonfinite.append((rnd, v))
            if rnd >= warmup:
                times[v].append(t)
    # the decoder loss terms alone, on the outputs of one more forward pass
    aux_cost = {}
    if aux_repeats > 0:
        out = model(images)
        aux_cost = {
            v: aux_terms_cost(model, out, labels, v, aux_repeats, device)
            for v in variants
            if v != "none"
        }
        del out
    # cpp_targets alone: the call losses() makes (strides 4, 8, 16, 32 for training at r=1.0, 0.5)
    strides = sorted({int(round(s / r)) for s in (16, 8, 4) for r in model.train_resolutions})
    ct, ct_cpu = [], []
    for i in range(cpp_repeats + 2):
        _sync(dev)
        t0 = _now()
        with torch.no_grad():
            cpp_targets(labels, strides, model.num_classes, model.ignore_value)
        _sync(dev)
        t1 = _now()
        if i >= 2:
            ct.append(t1[0] - t0[0])
            ct_cpu.append(t1[1] - t0[1])
    return {
        "times": times,
        "peak": peak,
        "aux_cost": aux_cost,
        "cpp_targets": ct,
        "cpp_targets_cpu": ct_cpu,
        "strides": strides,
        "nonfinite": nonfinite,
        "variants": list(variants),
        "batch": batch,
        "size": size,
        "device": device,
    }


def train_rows(res: Mapping[str, object]) -> Tuple[List[List[str]], List[List[str]]]:
    """(step table rows, cpp_targets table rows). Overheads are relative to ``none`` if measured,
    else to the first variant: the ratio of the medians, and the median of the per-round paired
    ratios (same round, so the same background load), in wall-clock and in process CPU time."""
    times = res["times"]
    variants = res["variants"]
    ref = "none" if "none" in variants else variants[0]

    def med(v, key):
        return statistics.median(t[key] for t in times[v])

    def overheads(v, key):
        paired = statistics.median(a[key] / b[key] for a, b in zip(times[v], times[ref]))
        return f"{(med(v, key) / med(ref, key) - 1) * 100:+.1f}% / {(paired - 1) * 100:+.1f}%"

    rows = []
    for v in variants:
        st = [t["step"] for t in times[v]]
        mem = (
            f"{res['peak'][v] / 2**20:,.0f} MiB"
            if res["device"].startswith("cuda")
            else "n/a (CPU)"
        )
        rows.append(
            [
                v,
                len(st),
                f"{med(v, 'step'):.3f}",
                f"{min(st):.3f}-{max(st):.3f}",
                overheads(v, "step"),
                f"{med(v, 'cpu_step'):.3f}",
                overheads(v, "cpu_step"),
                f"{med(v, 'cpu_forward'):.3f} / {med(v, 'cpu_losses'):.3f} / "
                f"{med(v, 'cpu_backward_step'):.3f}",
                mem,
            ]
        )
    ct, cc = res["cpp_targets"], res["cpp_targets_cpu"]
    first = variants[0]
    cpp_rows = []
    for v, ts in res.get("aux_cost", {}).items():
        w, c = statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts)
        cpp_rows.append(
            [
                f"six decoder terms, {v}: targets + losses on the CPP_ON maps x 2 passes + their "
                "backward",
                len(ts),
                f"{w * 1e3:.2f}",
                f"{min(t[0] for t in ts) * 1e3:.2f}",
                f"{c * 1e3:.2f}",
                f"{w / med(first, 'step') * 100:.3f}% / {c / med(first, 'cpu_step') * 100:.3f}%",
            ]
        )
    cpp_rows += [
        [
            f"cpp_targets(labels {res['batch']}x{res['size'][0]}x{res['size'][1]}, strides "
            f"{res['strides']})",
            len(ct),
            f"{statistics.median(ct) * 1e3:.2f}",
            f"{min(ct) * 1e3:.2f}",
            f"{statistics.median(cc) * 1e3:.2f}",
            f"{statistics.median(ct) / med(first, 'step') * 100:.3f}% / "
            f"{statistics.median(cc) / med(first, 'cpu_step') * 100:.3f}%",
        ]
    ]
    return rows, cpp_rows


TRAIN_HEADERS = [
    "aux losses",
    "steps",
    "wall: median step (s)",
    "wall: min-max (s)",
    "wall: overhead vs none (ratio of medians / median paired ratio)",
    "CPU: median step (s)",
    "CPU: overhead vs none (ratio of medians / median paired ratio)",
    "CPU: forward / losses() / backward+SGD (s)",
    "peak memory",
]
CPP_HEADERS = [
    "call",
    "repeats",
    "wall median (ms)",
    "wall min (ms)",
    "CPU median (ms)",
    "share of a median step of the first variant (wall / CPU)",
]


# ----------------------------------------------------------------------------------------------
# 4. inference throughput
def benchmark_infer(
    cells: Sequence[Tuple[str, str]],
    size: Tuple[int, int],
    reps: Mapping[Tuple[str, str], int],
    warmup: Mapping[Tuple[str, str], int],
    heads: str = "paper",
    device: str = "cpu",
    models: Optional[Mapping[str, SeeThroughNet]] = None,
) -> Dict[Tuple[str, str], List[Tuple[float, float]]]:
    """``cells``: ``(backbone, mode)`` with mode ``single`` or ``multi`` ({0.5,1,2} + flip,
    attention merge). Round-robin: each round runs one image through every cell that still needs
    repetitions (warm-up runs first, discarded). Returns per cell the ``(wall, CPU)`` seconds of
    every measured image."""
    dev = torch.device(device)
    models = dict(models or {})
    for bb, _ in cells:
        if bb not in models:
            models[bb] = build_model(bb, heads)
        models[bb] = models[bb].to(dev).eval()
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0)).to(dev)
    todo = {c: warmup.get(c, 0) + reps[c] for c in cells}
    out: Dict[Tuple[str, str], List[float]] = {c: [] for c in cells}
    done = {c: 0 for c in cells}
    while any(done[c] < todo[c] for c in cells):
        for c in cells:
            if done[c] >= todo[c]:
                continue
            bb, mode = c
            kw = (
                dict(scales=MULTI_SCALES, flip=True, merge="attention")
                if mode == "multi"
                else dict(scales=(1.0,))
            )
            _sync(dev)
            t0 = _now()
            with torch.no_grad():
                models[bb].inference(x, **kw)
            _sync(dev)
            t1 = _now()
            if done[c] >= warmup.get(c, 0):
                out[c].append((t1[0] - t0[0], t1[1] - t0[1]))
            done[c] += 1
    return out


def infer_rows(res: Mapping[Tuple[str, str], List[Tuple[float, float]]], size) -> List[List[str]]:
    rows = []
    for (bb, mode), ts in res.items():
        wall = [t[0] for t in ts]
        m = statistics.median(wall)
        desc = "single scale (1.0)" if mode == "single" else "{0.5,1.0,2.0} + flip, attention merge"
        rows.append(
            [
                bb,
                desc,
                f"{size[0]}x{size[1]}",
                len(ts),
                f"{m:.2f}",
                f"{min(wall):.2f}",
                f"{1.0 / m:.3f}",
                f"{statistics.median(t[1] for t in ts):.2f}",
            ]
        )
    return rows


INFER_HEADERS = [
    "backbone",
    "test-time scales",
    "input",
    "reps",
    "wall: median s/image",
    "wall: min s/image",
    "images/s (1 / wall median)",
    "CPU s/image (median)",
]
