"""The command line of ``tools/benchmark_seethroughnet.py``: size and speed of SeeThroughNet (Han,
Yoo, Oh, CVPR 2022): parameters, FLOPs, training step time (with / without the CPP auxiliary
losses), inference throughput, GPU step time and memory.

Subcommands (each prints markdown tables; ``--help`` on each lists its flags):

``params``  parameter counts of the model and of its parts (encoder, decoder, OCR head,
            scale-attention head) for one or more backbones.
``flops``   fvcore ``FlopCountAnalysis`` of single-scale inference (one ``r = 1.0`` pass + the
            bilinear up-sampling of the logits to the input size, i.e. ``model.inference(x)``),
            per part, counted at ``--count-size`` and at half of it, and extrapolated to
            ``--target-size`` with ``flops = a * H * W + b`` fitted through the two counts (every
            op is linear in the pixel count except the OCR head's convs on the K object-region
            vectors, a constant ``b``); ``--verify-sizes`` checks the fit at more sizes. fvcore
            counts one fused multiply-add as one flop (its "FLOPs" are MACs); elementwise ops,
            softmax and sigmoid are not counted.
``train``   training step time (forward + ``losses`` + backward + SGD step) for several
            auxiliary-loss variants of the *same* model, interleaved round by round in one
            process (order rotated every round): ``cpp_kl`` (CPP targets + KL, the paper),
            ``none`` (the six decoder terms are not computed at all; the aggregated maps still
            are, since the OCR head consumes them), ``upsample_ce`` / ``nearest_ce`` (ablations).
            Wall-clock and process CPU time (``time.process_time``, robust to other processes'
            load when run with ``--threads 1``). Also the six decoder terms alone (targets +
            losses + backward on detached copies of the maps CPP_ON names) and the
            ``cpp_targets`` call alone.
            With ``--device cuda``: peak memory per variant (``torch.cuda.max_memory_allocated``).
``infer``   inference images/second, batch 1, single scale and multi-scale
            (``{0.5, 1.0, 2.0}`` + flip, attention merge), cells interleaved round by round.
``all``     what ``docs/seethroughnet_benchmark.md`` records.

Model sizes: ``--heads paper`` (decoder attention 256, OCR 512/256, scale attention 256, the
paper's HRNet-OCR / Tao et al. widths) or ``--heads demo`` (64, 128/64, 64: the CPU demo config);
``--config FILE`` builds the model from a detectron2 config instead (``train``).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from typing import Tuple

import torch

from seethroughnet.experiments.benchmark import (
    CPP_HEADERS,
    DEFAULT_THREADS,
    DEMO_CONFIG,
    HEADS,
    INFER_HEADERS,
    TRAIN_HEADERS,
    VARIANTS,
    K,
    aux_module,
    benchmark_infer,
    benchmark_train,
    build_model,
    build_model_from_config,
    environment,
    format_gflops,
    infer_rows,
    make_labels,
    train_rows,
    train_step,
)
from seethroughnet.experiments.benchmark_flops import flops_rows, params_rows, scaling_rows
from seethroughnet.experiments.report import markdown_table

#: The folder that holds the ``seethroughnet`` package (first on the `memory` subprocesses' path).
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ----------------------------------------------------------------------------------------------
# CLI
def _print(title: str, headers, rows) -> None:
    print(f"\n### {title}\n")
    print(markdown_table(headers, rows))
    sys.stdout.flush()


def cmd_params(a) -> None:
    _print(
        f"Parameters ({a.heads} heads)",
        ["part"] + list(a.backbones),
        params_rows(a.backbones, a.heads),
    )


def cmd_flops(a) -> None:
    model = build_model(a.backbone, a.heads)
    t0 = time.perf_counter()
    rows, f = flops_rows(model, tuple(a.count_size), tuple(a.target_size), a.device)
    cs, ts, hs = a.count_size, a.target_size, f["half_size"]
    _print(
        f"{a.backbone} ({a.heads} heads): parameters and fvcore GFLOPs (1 GFLOP = 1e9 "
        "multiply-adds) of "
        f"single-scale inference, batch 1 (counted in {time.perf_counter() - t0:.0f} s)",
        [
            "part",
            "params",
            f"GFLOPs @ {hs[0]}x{hs[1]} (counted)" if hs else "-",
            f"GFLOPs @ {cs[0]}x{cs[1]} (counted)",
            f"GFLOPs @ {ts[0]}x{ts[1]} (a*HW+b from the counts)",
        ],
        rows,
    )
    a_tot, b_tot = f["fit"]["total"]
    print(
        f"\nsingle-scale total = {a_tot:,.2f} flops/pixel x H x W + {b_tot:,.0f} flops "
        f"(the constant: OCR key/value convs on the {K} object-region vectors); "
        f"plain pixel-ratio scaling of the {cs[0]}x{cs[1]} count would give "
        f"{f['counted']['total'] * ts[0] * ts[1] / (cs[0] * cs[1]) / 1e9:,.3f} GFLOPs"
    )
    ops = f["counted"]["by_operator"]
    _print(
        f"fvcore operators counted @ {cs[0]}x{cs[1]} (GFLOPs)",
        ["operator", "GFLOPs"],
        [[k, format_gflops(v)] for k, v in sorted(ops.items(), key=lambda kv: -kv[1])],
    )
    if a.verify_sizes:
        sizes = [tuple(int(v) for v in s.split("x")) for s in a.verify_sizes]
        vb = a.verify_backbone or a.backbone
        _print(
            f"Scaling check: {vb} ({a.heads} heads), fvcore GFLOPs vs input size",
            [
                "input",
                "encoder",
                "decoder",
                "OCR",
                "total",
                "flops per pixel / first row",
                "count - (a*HW+b) fitted on the first two rows (flops)",
            ],
            scaling_rows(build_model(vb, a.heads), sizes, a.device),
        )


def _train_model(a):
    if a.config:
        model, cfg = build_model_from_config(a.config)
        batch = a.batch or cfg.SOLVER.IMS_PER_BATCH
        size = tuple(a.size) if a.size else tuple(cfg.INPUT.CROP.SIZE)
        desc = f"config {a.config} ({cfg.MODEL.HRNET.VARIANT})"
    else:
        model = build_model(a.backbone, a.heads)
        batch, size = a.batch or 1, tuple(a.size or (128, 256))
        desc = f"{a.backbone}, {a.heads} heads"
    return model, batch, size, desc


def cmd_train(a) -> None:
    model, batch, size, desc = _train_model(a)
    t0 = time.perf_counter()
    res = benchmark_train(
        model,
        batch,
        size,
        a.variants,
        a.warmup,
        a.steps,
        a.device,
        cpp_repeats=a.cpp_repeats,
        aux_repeats=a.aux_repeats,
    )
    rows, cpp_rows = train_rows(res)
    _print(
        f"Training step on {a.device}: {desc}, batch {batch}, {size[0]}x{size[1]}, forward + "
        "losses + backward + "
        f"SGD; {a.steps} measured rounds after {a.warmup} warm-up rounds, variants interleaved "
        f"({time.perf_counter() - t0:.0f} s)",
        TRAIN_HEADERS,
        rows,
    )
    _print("Decoder loss terms and CPP targets alone (same batch)", CPP_HEADERS, cpp_rows)
    if res["nonfinite"]:
        print(f"\nWARNING: non-finite loss at (round, variant) {res['nonfinite']}")
    if a.device == "cpu":
        print(
            "\nprocess peak RSS (whole run): "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"
        )


def _rss_gib() -> Tuple[float, float]:
    """(current VmRSS, VmHWM = high-water mark of the resident set) of this process, GiB (Linux)."""
    vals = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                vals[key] = int(rest.split()[0]) / 2**20  # kB -> GiB
    return vals["VmRSS"], vals["VmHWM"]


PRECISIONS = {"float32": None, "bf16": torch.bfloat16}


def _parts(spec: str) -> Tuple[str, ...]:
    """``--checkpointing`` spec: ``none`` or parts joined by commas (``encoder,decoder,ocr``)."""
    return () if spec == "none" else tuple(spec.split(","))


#: the activation-checkpointing key of each meta-architecture (``memory --config``)
CHECKPOINT_KEYS = {
    "SeeThroughNetSegmentor": "MODEL.SEE_THROUGH.CHECKPOINT_ACTIVATIONS",
    "CPPSegmentor": "MODEL.CPP_SEGMENTOR.CHECKPOINT_ACTIVATIONS",
}


def _config_training_step(a):
    """``memory --config``: ``(model, step)`` of the config's model (detectron2's
    ``build_model``, random init, the ``--opts`` applied, training pad size = ``--size``) and
    one training step of it (the model's own losses on ``--batch`` random images with
    :func:`make_labels` labels, backward, SGD with momentum)."""
    from detectron2.modeling import build_model as build_detectron2_model

    import seethroughnet.modeling  # noqa: F401  (registers the meta-architectures)
    from seethroughnet.config import build_config

    h, w = a.size
    opts = list(a.opts) + ["MODEL.DEVICE", "cpu", "INPUT.CROP.SIZE", f"({h}, {w})"]
    cfg = build_config(a.config, opts)
    arch = cfg.MODEL.META_ARCHITECTURE
    if arch not in CHECKPOINT_KEYS:
        raise SystemExit(
            f"memory --config {a.config}: MODEL.META_ARCHITECTURE {arch!r} has no activation "
            f"checkpointing; valid: {', '.join(CHECKPOINT_KEYS)}"
        )
    cfg.merge_from_list([CHECKPOINT_KEYS[arch], str(list(_parts(a.checkpointing[0])))])
    torch.manual_seed(0)
    model = build_detectron2_model(cfg).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    g = torch.Generator().manual_seed(1)
    labels = make_labels(a.batch, h, w)
    batch = [
        {
            "image": torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8),
            "sem_seg": labels[i],
            "height": h,
            "width": w,
        }
        for i in range(a.batch)
    ]
    dtype = PRECISIONS[a.precisions[0]]

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            losses = model(batch)
        total = sum(losses.values())
        total.backward()
        opt.step()
        return {"loss": float(total.detach()), "n_terms": len(losses)}

    return model, step


def _print_memory_line(label: str, warmup: int, steps: int, step) -> None:
    """Run ``step()`` (one training step, returning ``n_terms`` and ``loss``) ``warmup`` + ``steps``
    times and print the ``MEMORY`` line: RSS after building (now), VmHWM, median timed step, loss
    terms and loss of the last step."""
    rss_built, _ = _rss_gib()
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        res = step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    _, peak = _rss_gib()
    times.sort()
    print(
        f"MEMORY {label} {rss_built:.3f} {peak:.3f} {times[len(times) // 2]:.1f} "
        f"{res['n_terms']} {res['loss']:.4f}"
    )


def _one_memory(a) -> None:
    """The ``memory --one`` subprocess: build, ``--warmup`` + ``--steps`` training steps, print
    one ``MEMORY`` line (RSS after building, VmHWM, median timed step, loss terms)."""
    if a.config:
        _, step = _config_training_step(a)
        _print_memory_line("config", a.warmup, a.steps, step)
        return
    torch.manual_seed(0)
    model = build_model(a.backbone, a.heads, _parts(a.checkpointing[0]))
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    h, w = a.size
    images = torch.randn(a.batch, 3, h, w)
    labels = make_labels(a.batch, h, w)
    variant = a.variants[0]
    dtype = PRECISIONS[a.precisions[0]]
    aux = aux_module(variant, model)

    def step():
        return train_step(
            model, opt, images, labels, variant, aux, torch.device("cpu"), autocast=dtype
        )

    _print_memory_line(variant, a.warmup, a.steps, step)


def cmd_memory(a) -> None:
    """Peak resident memory and step time of CPU training steps (forward, every loss term,
    backward, SGD step) of a freshly built model, one process per cell (size x precision x
    checkpointing x aux-loss variant) so that the high-water marks do not mix. Cells run from the
    smallest size up; a cell whose peak, estimated from the same cell at the largest smaller
    size measured (``built + (peak - built) x pixel ratio``), exceeds ``--max-rss-gib`` is
    skipped and listed as such, as is a cell ``--skip`` names (to bound the run time)."""
    if a.one:
        _one_memory(a)
        return
    import subprocess

    if a.config:  # the config's own losses: one "variant"
        a.variants = ["config"]
    sizes = sorted({tuple(a.size)} | {tuple(s) for s in a.sizes}, key=lambda s: s[0] * s[1])
    rows, measured = [], {}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    for size in sizes:
        for prec in a.precisions:
            for spec in a.checkpointing:
                for v in a.variants:
                    key = (prec, spec, v)
                    cell = [f"{size[0]}x{size[1]}", prec, spec, v]
                    if any(
                        all(want in ("*", got) for want, got in zip(sk.split(":"), cell))
                        for sk in a.skip
                    ):
                        rows.append(cell + ["-", "-", "not measured (--skip)"] + ["-"] * 3)
                        continue
                    if key in measured:
                        (sh, sw), built0, peak0 = measured[key]
                        ratio = size[0] * size[1] / (sh * sw)
                        estimate = built0 + (peak0 - built0) * ratio
                        if estimate > a.max_rss_gib:
                            rows.append(
                                cell + ["-", "-", f"skipped: ~{estimate:.1f} estimated"] + ["-"] * 3
                            )
                            print(f"skipped {cell}: estimated {estimate:.1f} GiB", flush=True)
                            continue
                    cmd = [
                        sys.executable,
                        "-m",
                        "seethroughnet.experiments.benchmark_cli",
                        "memory",
                        "--one",
                        "--backbone",
                        a.backbone,
                        "--size",
                        str(size[0]),
                        str(size[1]),
                        "--batch",
                        str(a.batch),
                        "--heads",
                        a.heads,
                        "--threads",
                        str(a.threads),
                        "--checkpointing",
                        spec,
                        "--precisions",
                        prec,
                        "--warmup",
                        str(a.warmup),
                        "--steps",
                        str(a.steps),
                    ]
                    if a.config:
                        cmd += ["--config", a.config, "--opts", *a.opts]
                    else:
                        cmd += ["--variants", v]
                    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
                    line = [ln for ln in r.stdout.splitlines() if ln.startswith("MEMORY ")]
                    if r.returncode != 0 or not line:
                        raise SystemExit(
                            f"memory measurement of {cell} failed:\n{r.stderr[-3000:]}"
                        )
                    _, _, built, peak, secs, terms, loss = line[0].split()
                    measured[key] = (size, float(built), float(peak))
                    rows.append(
                        cell + [terms, built, peak, f"{float(peak) - float(built):.3f}", secs, loss]
                    )
                    print(f"measured {cell}: {line[0]}", flush=True)
    base = {
        (r[0], r[3]): float(r[6])
        for r in rows
        if r[1] == "float32" and r[2] == "none" and r[4] != "-"
    }
    for r in rows:
        ref = base.get((r[0], r[3]))
        r.append(f"{float(r[6]) / ref:.2f}x" if ref and r[4] != "-" else "-")
    model = (
        f"config {a.config}, its own losses"
        if a.config
        else f"{a.backbone}, {a.heads} heads, two training resolutions"
    )
    _print(
        f"CPU peak RSS and step time of a training step: {model}, batch "
        f"{a.batch}, a fresh process per row, {a.warmup} warm-up + "
        f"{a.steps} timed step(s) (median), cells estimated above {a.max_rss_gib} GiB skipped",
        [
            "size",
            "precision",
            "checkpointing",
            "aux losses",
            "loss terms",
            "RSS after building the model (GiB)",
            "peak RSS, VmHWM (GiB)",
            "peak - built (GiB)",
            "step time (s)",
            "loss",
            "peak vs float32 without checkpointing",
        ],
        rows,
    )


def cmd_infer(a) -> None:
    cells = [(bb, m) for bb in a.backbones for m in a.modes]
    reps, warm = {}, {}
    for c in cells:
        slow = c[0] == "hrnet_w48" and c[1] == "multi"
        reps[c] = a.reps_slow if slow else a.reps
        warm[c] = a.warmup_slow if slow else a.warmup
    t0 = time.perf_counter()
    res = benchmark_infer(cells, tuple(a.size), reps, warm, a.heads, a.device)
    _print(
        f"Inference on {a.device}, batch 1, {a.heads} heads ({time.perf_counter() - t0:.0f} s; "
        f"warm-up runs: {a.warmup}, W48 multi-scale {a.warmup_slow})",
        INFER_HEADERS,
        infer_rows(res, a.size),
    )


def cmd_all(a) -> None:
    for argv in (
        ["params", "--backbones", "hrnet_w48", "hrnet_w18", "hrnet_w18_small_v2"],
        [
            "flops",
            "--backbone",
            "hrnet_w48",
            "--verify-sizes",
            "128x256",
            "256x512",
            "512x1024",
            "--verify-backbone",
            "hrnet_w18_small_v2",
        ],
        ["train", "--config", DEMO_CONFIG, "--steps", "12", "--warmup", "2"],
        ["train", "--config", DEMO_CONFIG, "--steps", "12", "--warmup", "2", "--threads", "1"],
        ["infer"],
    ):
        args = parser().parse_args(argv + ["--device", a.device])
        print(f"\n## `python tools/benchmark_seethroughnet.py {' '.join(argv)}`")
        _run(args)


def _size(s):
    return int(s)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(q):
        q.add_argument("--device", default="cpu", help="cpu or cuda")
        q.add_argument("--heads", default="paper", choices=sorted(HEADS))
        q.add_argument(
            "--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)"
        )

    q = sub.add_parser("params", help="parameter counts")
    common(q)
    q.add_argument(
        "--backbones", nargs="+", default=["hrnet_w48", "hrnet_w18", "hrnet_w18_small_v2"]
    )
    q.set_defaults(func=cmd_params)

    q = sub.add_parser("flops", help="fvcore FLOPs of single-scale inference, per part")
    common(q)
    q.add_argument("--backbone", default="hrnet_w48")
    q.add_argument("--count-size", nargs=2, type=_size, default=[512, 1024], metavar=("H", "W"))
    q.add_argument("--target-size", nargs=2, type=_size, default=[1024, 2048], metavar=("H", "W"))
    q.add_argument(
        "--verify-sizes",
        nargs="*",
        default=[],
        metavar="HxW",
        help="also count the whole model at these sizes to check the linear scaling",
    )
    q.add_argument(
        "--verify-backbone",
        default=None,
        help="backbone of the scaling check (default: --backbone)",
    )
    q.set_defaults(func=cmd_flops)

    q = sub.add_parser("train", help="training step time with / without the CPP auxiliary losses")
    common(q)
    q.add_argument(
        "--config",
        default=None,
        help="build the model from this detectron2 config (batch and crop from it too)",
    )
    q.add_argument("--backbone", default="hrnet_w18_small_v2")
    q.add_argument(
        "--batch",
        type=int,
        default=None,
        help="default: SOLVER.IMS_PER_BATCH with --config, else 1",
    )
    q.add_argument(
        "--size",
        nargs=2,
        type=_size,
        default=None,
        metavar=("H", "W"),
        help="multiples of 64; default: INPUT.CROP.SIZE with --config, else 128 256",
    )
    q.add_argument(
        "--variants", nargs="+", default=["cpp_kl", "none", "upsample_ce"], choices=VARIANTS
    )
    q.add_argument("--warmup", type=int, default=2)
    q.add_argument("--steps", type=int, default=10)
    q.add_argument("--cpp-repeats", type=int, default=30)
    q.add_argument(
        "--aux-repeats",
        type=int,
        default=20,
        help="repeats of the decoder-terms-alone timing (0: skip)",
    )
    q.set_defaults(func=cmd_train)

    q = sub.add_parser("infer", help="inference images/second, single and multi-scale")
    common(q)
    q.add_argument("--backbones", nargs="+", default=["hrnet_w18_small_v2", "hrnet_w48"])
    q.add_argument("--modes", nargs="+", default=["single", "multi"], choices=["single", "multi"])
    q.add_argument("--size", nargs=2, type=_size, default=[512, 1024], metavar=("H", "W"))
    q.add_argument("--reps", type=int, default=3)
    q.add_argument("--warmup", type=int, default=1)
    q.add_argument("--reps-slow", type=int, default=1, help="repetitions of W48 multi-scale")
    q.add_argument("--warmup-slow", type=int, default=0, help="warm-up runs of W48 multi-scale")
    q.set_defaults(func=cmd_infer)

    q = sub.add_parser(
        "memory",
        help="CPU peak RSS of one training step, per auxiliary-loss variant (a process each)",
    )
    common(q)
    q.add_argument("--backbone", default="hrnet_w48")
    q.add_argument("--size", nargs=2, type=_size, default=[512, 1024], metavar=("H", "W"))
    q.add_argument("--batch", type=int, default=1)
    q.add_argument("--variants", nargs="+", default=["cpp_kl", "none"], choices=VARIANTS)
    q.add_argument(
        "--config",
        default="",
        help="measure this project config's model instead (detectron2 build_model, random init, "
        "its own losses; SeeThroughNet or a Table 1 CPPSegmentor); --checkpointing then names "
        "its parts (MODEL.SEE_THROUGH / MODEL.CPP_SEGMENTOR.CHECKPOINT_ACTIVATIONS)",
    )
    q.add_argument(
        "--opts",
        nargs="*",
        default=[],
        metavar="KEY VALUE",
        help="config overrides for --config (e.g. MODEL.RESNETS.NORM BN on a CPU)",
    )
    q.add_argument(
        "--sizes",
        nargs="*",
        default=[],
        type=lambda s: tuple(int(v) for v in s.split("x")),
        metavar="HxW",
        help="more sizes besides --size (multiples of 64)",
    )
    q.add_argument(
        "--checkpointing",
        nargs="+",
        default=["none"],
        help="activation checkpointing per cell: none, or parts joined by commas "
        "(encoder,decoder,ocr; MODEL.SEE_THROUGH.CHECKPOINT_ACTIVATIONS)",
    )
    q.add_argument(
        "--precisions",
        nargs="+",
        default=["float32"],
        choices=sorted(PRECISIONS),
        help="bf16: forward and losses under CPU bfloat16 autocast",
    )
    q.add_argument("--warmup", type=int, default=0, help="untimed steps before the timed ones")
    q.add_argument("--steps", type=int, default=1, help="timed steps (median reported)")
    q.add_argument(
        "--max-rss-gib",
        type=float,
        default=18.0,
        help="skip a cell whose peak, estimated from a smaller size, is above this",
    )
    q.add_argument(
        "--skip",
        nargs="*",
        default=[],
        metavar="HxW:PRECISION[:CHECKPOINTING]",
        help="cells not to measure (listed as such; '*' matches anything), e.g. 1024x2048:bf16",
    )
    q.add_argument(
        "--one", action="store_true", help=argparse.SUPPRESS
    )  # internal: measure one cell here
    q.set_defaults(func=cmd_memory)

    q = sub.add_parser("all", help="everything docs/seethroughnet_benchmark.md records")
    q.add_argument("--device", default="cpu")
    q.add_argument("--threads", type=int, default=0)
    q.set_defaults(func=cmd_all)
    return p


def _run(a) -> None:
    torch.set_num_threads(a.threads or DEFAULT_THREADS)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but no GPU is available")
    if a.cmd != "all":
        print(environment())
    a.func(a)


def main(argv=None) -> None:
    _run(parser().parse_args(argv))


if __name__ == "__main__":  # the `memory --one` subprocess
    main()
