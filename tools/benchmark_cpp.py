#!/usr/bin/env python
"""Benchmark CPP pooling (SeeThroughNet Eq. 1) against nearest down-sampling and the naive one-hot.

A batch of 2 int64 label maps of 1024x2048, 19 classes + ignore (255). Methods:

  (i)   cpp_targets(labels, [4, 8, 16, 32], 19)          -- all four scales in one call
  (i')  the same with backend="torch" (the pure-torch path used on CUDA / without a compiler)
  (ii)  nearest-neighbour down-sampling to 1/4, 1/8, 1/16, 1/32
  (iii) naive: full-resolution one-hot (float32) + avg_pool2d at every scale
  (iv)  labels.max(): one full read of the labels, the floor

Time: median over --repeats runs in one process, after two warm-up runs, methods interleaved
(one call of each per round) so that load from other processes affects all of them alike.

Peak extra memory (CPU): every method runs once in a fresh subprocess that builds the labels,
warms the method up on a small input (so lazily loaded code and thread pools are in place), then
resets the kernel's peak-RSS counter (``echo 5 > /proc/self/clear_refs``) and reports
``VmHWM - VmRSS`` after the call: the largest resident set reached above the starting point,
outputs included. On CUDA: ``torch.cuda.max_memory_allocated`` above the starting allocation.

Usage:  python tools/benchmark_cpp.py [--labels regions|iid] [--repeats 20] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F

from seethroughnet.experiments.report import markdown_table
from seethroughnet.nn.cpp import compiled_kernel_available, cpp_targets, nearest_downsample

SCALES = (4, 8, 16, 32)
K = 19
IGNORE = 255
METHODS = ("cpp", "cpp_torch", "nearest", "naive", "floor")
LABELS = {
    "cpp": "(i) CPP, 4 scales, one call",
    "cpp_torch": "(i') CPP, pure-torch path",
    "nearest": "(ii) nearest, 4 scales",
    "naive": "(iii) one-hot + avg_pool2d",
    "floor": "(iv) labels.max() (floor)",
}


def make_labels(kind: str, n: int, h: int, w: int, device: str, seed: int = 0) -> torch.Tensor:
    """Deterministic (n, h, w) int64 labels in [0, 19) plus 255.

    ``regions``: piecewise constant like a street scene -- 64x64 blocks, 300 rectangles of 2..200
    pixels a side and 100 thin vertical 'poles', classes drawn uniformly from the 19 + ignore.
    ``iid``: every pixel drawn independently (the worst case for run-length counting).
    """
    g = torch.Generator().manual_seed(seed)
    if kind == "iid":
        lab = torch.randint(0, K + 1, (n, h, w), generator=g)
    else:
        lab = torch.randint(0, K + 1, (n, -(-h // 64), -(-w // 64)), generator=g)
        lab = lab.repeat_interleave(64, 1).repeat_interleave(64, 2)[:, :h, :w].contiguous()
        r = lambda lo, hi: int(torch.randint(lo, hi, (), generator=g))  # noqa: E731
        for _ in range(300):
            b, y, x, hh, ww = r(0, n), r(0, h), r(0, w), r(2, 200), r(2, 200)
            lab[b, y : y + hh, x : x + ww] = r(0, K + 1)
        for _ in range(100):
            b, y, x, hh, ww = r(0, n), r(0, h), r(0, w), r(50, 400), r(2, 9)
            lab[b, y : y + hh, x : x + ww] = r(0, K + 1)
    lab[lab == K] = IGNORE
    return lab.to(device)


def method_fn(name: str, device: str) -> Callable[[torch.Tensor], object]:
    if name == "cpp":
        return lambda lab: cpp_targets(lab, list(SCALES), K, IGNORE)
    if name == "cpp_torch":
        return lambda lab: cpp_targets(lab, list(SCALES), K, IGNORE, backend="torch")
    if name == "nearest":
        return lambda lab: [
            nearest_downsample(lab, (lab.shape[1] // s, lab.shape[2] // s)) for s in SCALES
        ]
    if name == "naive":

        def naive(lab):
            cls = torch.where(lab == IGNORE, torch.full_like(lab, K), lab)
            one_hot = torch.zeros((lab.shape[0], K + 1) + tuple(lab.shape[1:]), device=lab.device)
            one_hot.scatter_(1, cls[:, None], 1.0)
            return [F.avg_pool2d(one_hot, s) for s in SCALES]

        return naive
    if name == "floor":
        return lambda lab: lab.max()
    raise ValueError(name)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_methods(
    fns: Dict[str, Callable], lab, repeats: Dict[str, int], device: str
) -> Dict[str, List[float]]:
    """Seconds of every timed call, per method. Methods are timed round-robin (one call of each
    per round), so a burst of load from other processes hits all of them alike and the ratios
    stay meaningful."""
    for fn in fns.values():
        for _ in range(2):
            fn(lab)
    _sync(device)
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for r in range(max(repeats.values())):
        for name, fn in fns.items():
            if r >= repeats[name]:
                continue
            _sync(device)
            t0 = time.perf_counter()
            out = fn(lab)
            _sync(device)
            times[name].append(time.perf_counter() - t0)
            del out
    return times


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_memory(name: str, args) -> int:
    """Peak extra bytes of one call of method ``name`` (run in this fresh process)."""
    fn = method_fn(name, args.device)
    lab = make_labels(args.labels, args.batch, args.height, args.width, args.device)
    fn(make_labels(args.labels, 2, 64, 128, args.device))  # warm-up on a small input
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        out = fn(lab)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
        del out
        return peak
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM (peak RSS) to the current RSS
    out = fn(lab)
    peak = _status_kib("VmHWM") - before
    del out
    return peak * 1024


def memory_in_subprocess(name: str, args) -> int:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--measure-memory",
        name,
        "--labels",
        args.labels,
        "--device",
        args.device,
        "--batch",
        str(args.batch),
        "--height",
        str(args.height),
        "--width",
        str(args.width),
        "--threads",
        str(torch.get_num_threads()),
    ]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return int(json.loads(res.stdout.strip().splitlines()[-1])["peak_extra_bytes"])


def main(argv: List[str] = None) -> int:
    ap = argparse.ArgumentParser(description="CPP pooling benchmark")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--labels", choices=("regions", "iid"), default="regions")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--naive-repeats", type=int, default=5, help="repeats for the slow (iii)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--height", type=int, default=1024)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    ap.add_argument(
        "--no-memory", action="store_true", help="skip the per-method memory subprocesses"
    )
    ap.add_argument("--measure-memory", choices=METHODS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.measure_memory:
        print(json.dumps({"peak_extra_bytes": measure_memory(args.measure_memory, args)}))
        return 0

    lab = make_labels(args.labels, args.batch, args.height, args.width, args.device)
    kernel_ok, reason = compiled_kernel_available()
    on_cpu = args.device == "cpu"
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} threads, device {args.device}; load average at start "
        f"{os.getloadavg()[0]:.2f}"
    )
    cpp_backend = "compiled C++ kernel" if kernel_ok and on_cpu else f"torch ({reason or 'device'})"
    print(
        f"labels: {args.labels}, {tuple(lab.shape)} {lab.dtype}, 19 classes + ignore 255; "
        f"CPP backend for (i): {cpp_backend}"
    )
    out4_bytes = args.batch * (K + 1) * (args.height // 4) * (args.width // 4) * 4
    out_all = sum(args.batch * (K + 1) * (args.height // s) * (args.width // s) * 4 for s in SCALES)
    print(
        f"size of the 1/4 CPP output: {out4_bytes / 2**20:.1f} MiB; all four scales: "
        f"{out_all / 2**20:.1f} MiB; labels: {lab.numel() * lab.element_size() / 2**20:.1f} MiB"
    )

    # correctness guard: the benchmarked paths agree
    a = cpp_targets(lab, list(SCALES), K, IGNORE)
    b = cpp_targets(lab, list(SCALES), K, IGNORE, backend="torch")
    c = method_fn("naive", args.device)(lab)
    for x, y, z in zip(a, b, c):
        assert torch.equal(x, y) and torch.allclose(x, z, atol=1e-6), "CPP paths disagree"
    del a, b, c

    fns = {name: method_fn(name, args.device) for name in METHODS}
    reps = {name: args.naive_repeats if name == "naive" else args.repeats for name in METHODS}
    samples = time_methods(fns, lab, reps, args.device)
    times = {name: statistics.median(ts) for name, ts in samples.items()}
    mems: Dict[str, int] = {}
    if not args.no_memory:
        for name in METHODS:
            mems[name] = memory_in_subprocess(name, args)
    floor = times["floor"]
    print()
    rows = []
    for name in METHODS:
        mem = (
            [f"{mems[name] / 2**20:.1f}", f"{mems[name] / out4_bytes:.2f}"]
            if name in mems
            else ["-", "-"]
        )
        rows.append(
            [LABELS[name], f"{times[name] * 1e3:.2f}", f"{times[name] / floor:.1f}"]
            + [f"{min(samples[name]) * 1e3:.2f}", *mem]
        )
    headers = ["method", "median ms", "x (iv)", "min ms", "peak extra MiB", "x (1/4 output)"]
    print(markdown_table(headers, rows, colalign=["left"] + ["right"] * 5))
    print(f"load average at end {os.getloadavg()[0]:.2f} (other processes share this machine)")
    print(
        f"(median of {args.repeats} interleaved runs, {args.naive_repeats} for (iii); "
        f"min of the same runs; ratios are of medians)"
    )
    print()
    r_floor = times["cpp"] / floor
    r_naive = times["naive"] / times["cpp"]
    print(
        f"target (i) <= 10x (iv):             {r_floor:.1f}x  -> "
        f"{'met' if r_floor <= 10 else 'NOT met'}"
    )
    print(
        f"target (i) >= 20x faster than (iii): {r_naive:.1f}x  -> "
        f"{'met' if r_naive >= 20 else 'NOT met'}"
    )
    if "cpp" in mems:
        r_mem = mems["cpp"] / out4_bytes
        print(
            f"target peak extra (i) <= 2x 1/4 output: {r_mem:.2f}x -> "
            f"{'met' if r_mem <= 2 else 'NOT met'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
