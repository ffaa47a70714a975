"""Calibration of the GPU-hours and GPU-memory estimates against published V100 measurements.

The estimate of :mod:`seethroughnet.experiments.gpu_hours` assumes the GPU runs a training step at
its FP32 peak, and counts memory from the tensors a step keeps for backward. Neither is what a GPU
does, so both are compared with published measurements of known models (the calibration file,
``projects/SeeThroughNet/configs/gpu_hours_calibration.yaml``, each entry with its ``source``):

* a **time calibrator** states a published training speed: seconds per step at ``images_per_gpu``
  images of ``size`` (``seconds_per_step``), or a wall-clock training time
  (``wall_days: [low, high]`` on ``gpus`` GPUs for ``images`` training images in all). Either
  gives published GPU-seconds per image (a range for ``wall_days``). The project's estimate of the
  same setting is the estimated GPU-seconds per image of the calibrator's ``model`` (a model
  measured by the estimate) at ``size``. Its **ratio** is published / estimated.
* a **memory calibrator** states a published peak training memory ``gb`` at ``images_per_gpu``
  images of ``size``; its ratio is published / the estimated peak of ``model`` at that setting.

A run's calibrated range is its estimate times ``[min, max]`` of the ratios of the calibrators
whose ``applies_to`` names the run's model family (``resnet``, ``hrnet``, ``detector``); a
calibrator whose model was not measured in this invocation is left out (and listed as such).
The GPU a run needs is the smallest of ``gpu_choice.sizes_gb`` that holds the high end of its
calibrated memory times ``gpu_choice.margin``.

Plain Python: no torch, no detectron2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = [
    "Calibrator",
    "load_calibration",
    "published_seconds_per_image",
    "calibrator_ratios",
    "family_range",
    "choose_gpu",
]

FAMILIES = ("resnet", "hrnet", "detector")
GB = 1e9  # MMSegmentation and detectron2 report memory in GB of max_memory_allocated (bytes / 1e9
# or / 2**30 is not stated by either; the difference, 7 %, is inside the calibrated ranges)


@dataclass
class Calibrator:
    """One published measurement (see the module docstring); ``kind`` is ``time`` or ``memory``."""

    kind: str
    name: str
    source: str
    model: str
    size: Tuple[int, int]
    applies_to: Tuple[str, ...]
    images_per_gpu: Optional[int] = None
    seconds_per_step: Optional[float] = None
    wall_days: Optional[Tuple[float, float]] = None
    gpus: Optional[int] = None
    images: Optional[int] = None
    gb: Optional[float] = None


def _need(entry: Mapping, key: str, where: str, path: str):
    if key not in entry or entry[key] in (None, ""):
        raise ValueError(f"{path}: {where} needs a {key!r} entry")
    return entry[key]


def _positive(value, key: str, where: str, path: str, integer: bool = False) -> float:
    try:
        x = int(value) if integer else float(value)
        ok = x > 0 and (not integer or float(value) == x)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        kind = "a positive integer" if integer else "a positive number"
        raise ValueError(f"{path}: {where}: {key!r} must be {kind}, got {value!r}")
    return x


def _calibrator(kind: str, e: Mapping, i: int, path: str) -> Calibrator:
    where = f"{kind}[{i}]" + (f" ({e['name']})" if isinstance(e, Mapping) and "name" in e else "")
    if not isinstance(e, Mapping):
        raise ValueError(f"{path}: {where} must be a mapping, got {e!r}")
    name = str(_need(e, "name", where, path))
    source = str(_need(e, "source", where, path))
    model = str(_need(e, "model", where, path))
    size = _need(e, "size", where, path)
    if not (isinstance(size, (list, tuple)) and len(size) == 2):
        raise ValueError(f"{path}: {where}: 'size' must be [H, W], got {size!r}")
    size = tuple(int(_positive(s, "size", where, path, integer=True)) for s in size)
    fams = _need(e, "applies_to", where, path)
    fams = (fams,) if isinstance(fams, str) else tuple(fams)
    bad = [f for f in fams if f not in FAMILIES]
    if bad or not fams:
        raise ValueError(
            f"{path}: {where}: 'applies_to' must name families among {list(FAMILIES)}, got {fams!r}"
        )
    c = Calibrator(kind, name, source, model, size, fams)
    if kind == "memory":
        c.gb = _positive(_need(e, "gb", where, path), "gb", where, path)
        c.images_per_gpu = int(
            _positive(_need(e, "images_per_gpu", where, path), "images_per_gpu", where, path, True)
        )
    elif "wall_days" in e:
        days = e["wall_days"]
        if not (isinstance(days, (list, tuple)) and len(days) == 2):
            raise ValueError(f"{path}: {where}: 'wall_days' must be [low, high], got {days!r}")
        lo, hi = (_positive(d, "wall_days", where, path) for d in days)
        if lo > hi:
            raise ValueError(f"{path}: {where}: 'wall_days' low {lo} is above high {hi}")
        c.wall_days = (lo, hi)
        c.gpus = int(_positive(_need(e, "gpus", where, path), "gpus", where, path, True))
        c.images = int(_positive(_need(e, "images", where, path), "images", where, path, True))
    else:
        if "seconds_per_step" not in e:
            raise ValueError(
                f"{path}: {where} needs a 'seconds_per_step' entry (or 'wall_days', 'gpus', "
                "'images')"
            )
        c.seconds_per_step = _positive(e["seconds_per_step"], "seconds_per_step", where, path)
        c.images_per_gpu = int(
            _positive(_need(e, "images_per_gpu", where, path), "images_per_gpu", where, path, True)
        )
    return c


def load_calibration(path: str) -> dict:
    """The calibration file: ``{"time": [Calibrator], "memory": [Calibrator], "gpu_choice":
    {"sizes_gb": [...], "margin": m}}``. A missing or malformed entry raises ``ValueError``
    naming the file and the key."""
    from seethroughnet.utils.safe_load import load_yaml_file

    spec = load_yaml_file(path, what="GPU-hours calibration file")
    if not isinstance(spec, Mapping):
        raise ValueError(f"{path}: the calibration file must be a mapping")
    out = {}
    for kind in ("time", "memory"):
        entries = spec.get(kind)
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"{path}: the calibration file needs a non-empty {kind!r} list")
        out[kind] = [_calibrator(kind, e, i, path) for i, e in enumerate(entries)]
    choice = spec.get("gpu_choice")
    if not isinstance(choice, Mapping):
        raise ValueError(f"{path}: the calibration file needs a 'gpu_choice' mapping")
    sizes = _need(choice, "sizes_gb", "gpu_choice", path)
    if not isinstance(sizes, list) or not sizes:
        raise ValueError(f"{path}: gpu_choice: 'sizes_gb' must be a list of GB, got {sizes!r}")
    out["gpu_choice"] = {
        "sizes_gb": sorted(_positive(s, "sizes_gb", "gpu_choice", path) for s in sizes),
        "margin": _positive(
            _need(choice, "margin", "gpu_choice", path), "margin", "gpu_choice", path
        ),
    }
    return out


def published_seconds_per_image(c: Calibrator) -> Tuple[float, float]:
    """GPU-seconds of one training image by a time calibrator's own statement: a step time over
    its images per GPU (low = high), or wall-clock days x GPUs over the images trained."""
    if c.wall_days is not None:
        return tuple(d * 86400.0 * c.gpus / c.images for d in c.wall_days)
    s = c.seconds_per_step / c.images_per_gpu
    return s, s


def calibrator_ratios(
    calibrators: Sequence[Calibrator],
    estimate: Callable[[Calibrator], Optional[float]],
) -> List[dict]:
    """``[{"calibrator", "published", "estimated", "ratio": (lo, hi)}]`` for every calibrator;
    ``estimate(c)`` is the project's estimate of ``c``'s setting (GPU-seconds per image for time,
    bytes for memory), ``None`` where ``c.model`` was not measured (then ``ratio`` is ``None``)."""
    out = []
    for c in calibrators:
        pub = published_seconds_per_image(c) if c.kind == "time" else (c.gb * GB, c.gb * GB)
        est = estimate(c)
        ratio = None if est is None else (pub[0] / est, pub[1] / est)
        out.append({"calibrator": c, "published": pub, "estimated": est, "ratio": ratio})
    return out


def family_range(ratios: Sequence[dict], family: str) -> Optional[Tuple[float, float]]:
    """``(min, max)`` of the ratios of the measured calibrators that apply to ``family``, or
    ``None`` where there is none."""
    rs = [r["ratio"] for r in ratios if r["ratio"] and family in r["calibrator"].applies_to]
    if not rs:
        return None
    return min(lo for lo, _ in rs), max(hi for _, hi in rs)


def choose_gpu(peak_gb: float, sizes_gb: Sequence[float], margin: float) -> Optional[float]:
    """The smallest GPU memory of ``sizes_gb`` that holds ``peak_gb x margin``; ``None`` where
    none does."""
    need = peak_gb * margin
    for s in sorted(sizes_gb):
        if need <= s:
            return s
    return None


def calibrated_rows(rows: Sequence[dict], time_ratios, memory_ratios, gpu_choice) -> List[dict]:
    """``rows`` (:func:`gpu_hours.run_rows`, with ``family``, ``gpu_hours`` and ``peak_bytes``,
    either ``None`` where not measured) with the calibrated ranges added: ``gpu_hours_range``,
    ``peak_gb_range`` (``None`` where no calibrator applies or nothing was measured) and
    ``gpu_gb`` (:func:`choose_gpu` of the high end, ``None`` where nothing fits)."""
    out = []
    for r in rows:
        tr = family_range(time_ratios, r["family"])
        mr = family_range(memory_ratios, r["family"])
        peak_gb = r["peak_bytes"] / GB if r.get("peak_bytes") is not None else None
        mem = (peak_gb * mr[0], peak_gb * mr[1]) if (mr and peak_gb is not None) else None
        gpu = choose_gpu(mem[1], gpu_choice["sizes_gb"], gpu_choice["margin"]) if mem else None
        hours = r.get("gpu_hours")
        out.append(
            {
                **r,
                "gpu_hours_range": (hours * tr[0], hours * tr[1])
                if (tr and hours is not None)
                else None,
                "peak_gb": peak_gb,
                "peak_gb_range": mem,
                "gpu_gb": gpu,
            }
        )
    return out


def totals(rows: Sequence[dict]) -> Dict[str, dict]:
    """Per table: the FP32-peak GPU-hours and the calibrated range's sums (``None`` where a row
    of the table has none)."""
    out: Dict[str, dict] = {}
    for r in rows:
        t = out.setdefault(r["table"], {"gpu_hours": 0.0, "range": (0.0, 0.0)})
        if t["gpu_hours"] is None or r.get("gpu_hours") is None:
            t["gpu_hours"] = None
        else:
            t["gpu_hours"] += r["gpu_hours"]
        rng = r.get("gpu_hours_range")
        if t["range"] is None or rng is None:
            t["range"] = None
        else:
            t["range"] = (t["range"][0] + rng[0], t["range"][1] + rng[1])
    return out
