#!/usr/bin/env python
"""Table 5 of the paper: the HRNetV2 encoder of SeeThroughNet in three detectors.

Grid: {Mask R-CNN, Faster R-CNN, FCOS} x {ImageNet, SeeThroughNet w/o CPP, SeeThroughNet w/ CPP}
x {fine-tuned, frozen encoder} = 18 cells. Each cell is one ``transfer/train_net.py`` run in a
subprocess (its log in ``<out>/<detector>/<init>_<mode>/log.txt``) and ends in
``<out>/<detector>/<init>_<mode>/cell.json`` (``status`` ``ok`` with the metrics, or ``failed``
with the error). Re-running skips the ``ok`` cells (and, with ``--keep-failed``, the failed
ones). After every cell ``<out>/table5.md`` and ``<out>/table5.png`` are re-rendered.

Paper setting (8 GPUs, HRNetV2-W48, the Cityscapes schedule of the configs):

    python -m transfer.run_table5 --out-dir output/table5 --num-gpus 8 \
        --imagenet-weights weights/hrnetv2_w48_imagenet.pth \
        --stn-weights output/seethroughnet_wo_cpp/model_final.pth \
        --stn-cpp-weights output/seethroughnet_cpp/model_final.pth

CPU smoke run (a few iterations on small images; see transfer/README.md):

    python -m transfer.run_table5 --smoke --iters 4 --variant hrnet_w18_small_v2 ...
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from transfer.cityscapes_to_coco import write_json_atomic  # noqa: E402  (light: numpy only)

logger = logging.getLogger("transfer.table5")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

DETECTORS: Dict[str, Tuple[str, str]] = {
    "mask_rcnn": ("Mask R-CNN", "mask_rcnn_hrnetv2_w48_fpn.yaml"),
    "faster_rcnn": ("Faster R-CNN", "faster_rcnn_hrnetv2_w48_fpn.yaml"),
    "fcos": ("FCOS", "fcos_hrnetv2_w48_fpn.yaml"),
}
#: init key -> (label, MODEL.TRANSFER.ENCODER_INIT, CLI option holding the weights)
INITS: Dict[str, Tuple[str, str, str]] = {
    "imagenet": ("ImageNet", "imagenet", "--imagenet-weights"),
    "stn_wo_cpp": ("SeeThroughNet w/o CPP", "seethroughnet", "--stn-weights"),
    "stn_cpp": ("SeeThroughNet w/ CPP", "seethroughnet", "--stn-cpp-weights"),
}
MODES = ("finetune", "frozen")
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
METRIC_LABELS = {"AP": "AP", "AP50": "AP50", "AP75": "AP75", "APs": "AP_s", "APm": "AP_m", "APl": "AP_l"}
CELL_FILE = "cell.json"

# A CPU smoke run: tiny images, few proposals, no data-loader workers, one final evaluation.
SMOKE_OPTS = [
    "MODEL.DEVICE", "cpu",
    "SOLVER.IMS_PER_BATCH", "2",
    "SOLVER.BASE_LR", "0.0025",
    "SOLVER.WARMUP_ITERS", "0",
    "SOLVER.CHECKPOINT_PERIOD", "100000",
    "TEST.EVAL_PERIOD", "0",
    "INPUT.MIN_SIZE_TRAIN", "(128,)",
    "INPUT.MAX_SIZE_TRAIN", "256",
    "INPUT.MIN_SIZE_TEST", "128",
    "INPUT.MAX_SIZE_TEST", "256",
    "DATALOADER.NUM_WORKERS", "0",
    "MODEL.FPN.OUT_CHANNELS", "64",
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN", "500",
    "MODEL.RPN.POST_NMS_TOPK_TRAIN", "100",
    "MODEL.RPN.PRE_NMS_TOPK_TEST", "500",
    "MODEL.RPN.POST_NMS_TOPK_TEST", "100",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "64",
    # A few iterations from barely trained encoders: clip gradients so that the randomly
    # initialised FPN and heads do not diverge, and keep every scored detection (the model-zoo
    # thresholds, 0.05 for the R-CNNs and 0.2 for FCOS, would leave nothing to evaluate).
    "SOLVER.CLIP_GRADIENTS.ENABLED", "True",
    "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "norm",
    "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", "1.0",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
    "MODEL.FCOS.SCORE_THRESH_TEST", "0.0",
]


@dataclass(frozen=True)
class Cell:
    detector: str
    init: str
    mode: str

    @property
    def key(self) -> str:
        return f"{self.detector}/{self.init}_{self.mode}"

    def dir(self, out_dir: str) -> str:
        return os.path.join(out_dir, self.detector, f"{self.init}_{self.mode}")


class CellError(RuntimeError):
    """A cell could not run; the message says why."""


def plan(detectors: Iterable[str] = DETECTORS, inits: Iterable[str] = INITS, modes: Iterable[str] = MODES) -> List[Cell]:
    bad = [d for d in detectors if d not in DETECTORS] + [i for i in inits if i not in INITS] + [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f"unknown grid entries {bad}; detectors {list(DETECTORS)}, inits {list(INITS)}, modes {list(MODES)}")
    return [Cell(d, i, m) for d in detectors for i in inits for m in modes]


# ----------------------------------------------------------------------------------------- running
def read_cell(out_dir: str, cell: Cell) -> Optional[dict]:
    path = os.path.join(cell.dir(out_dir), CELL_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None  # unreadable: run again


def run_grid(
    cells: Sequence[Cell],
    out_dir: str,
    run_cell: Callable[[Cell, str], dict],
    *,
    rerun_failed: bool = True,
    render: bool = True,
) -> Dict[str, dict]:
    """Run the cells not finished yet. ``run_cell(cell, cell_dir)`` returns a dict with
    ``metrics`` (``{"bbox": {...}, "segm": {...}}``) or raises; either way a ``cell.json`` is
    written and the grid goes on. Returns ``{cell.key: record}`` for all ``cells``."""
    records = {}
    for n, cell in enumerate(cells, 1):
        old = read_cell(out_dir, cell)
        if old is not None and (old.get("status") == "ok" or (old.get("status") == "failed" and not rerun_failed)):
            logger.info("[%d/%d] %s: %s, skipped (%s exists)", n, len(cells), cell.key, old.get("status"), CELL_FILE)
            records[cell.key] = old
            continue
        cell_dir = cell.dir(out_dir)
        os.makedirs(cell_dir, exist_ok=True)
        logger.info("[%d/%d] %s: running in %s", n, len(cells), cell.key, cell_dir)
        t0 = time.time()
        base = {"detector": cell.detector, "init": cell.init, "mode": cell.mode}
        try:
            out = run_cell(cell, cell_dir) or {}
            rec = {**base, "status": "ok", **out}
        except Exception as e:  # noqa: BLE001 - a failing cell is recorded, the grid goes on
            rec = {**base, "status": "failed", "error": f"{type(e).__name__}: {e}",
                   "traceback": traceback.format_exc(limit=5)}
            logger.error("%s failed: %s", cell.key, rec["error"])
        rec["seconds"] = round(time.time() - t0, 1)
        write_json_atomic(rec, os.path.join(cell_dir, CELL_FILE))
        records[cell.key] = rec
        if render:
            render_outputs(out_dir)
    return records


def cell_command(cell: Cell, cell_dir: str, *, weights: Dict[str, str], num_gpus: int = 1,
                 extra_opts: Sequence[str] = (), config_dir: str = os.path.join(HERE, "configs")) -> List[str]:
    """The ``transfer/train_net.py`` command line of a cell."""
    label, encoder_init, option = INITS[cell.init]
    path = weights.get(cell.init) or ""
    if not path:
        raise CellError(f"no encoder weights for {label!r}: pass {option} PATH")
    if not os.path.isfile(path):
        raise CellError(f"{option} {path}: file not found")
    config = os.path.join(config_dir, DETECTORS[cell.detector][1])
    return [
        sys.executable, "-m", "transfer.train_net",
        "--config-file", config,
        "--num-gpus", str(num_gpus),
        *extra_opts,  # user/smoke options first, so that the cell's own keys win
        "MODEL.TRANSFER.ENCODER_INIT", encoder_init,
        "MODEL.TRANSFER.ENCODER_WEIGHTS", os.path.abspath(path),
        "MODEL.TRANSFER.FREEZE_ENCODER", str(cell.mode == "frozen"),
        "OUTPUT_DIR", os.path.abspath(cell_dir),
    ]


def subprocess_runner(*, weights: Dict[str, str], num_gpus: int = 1, extra_opts: Sequence[str] = (),
                      timeout: Optional[float] = None) -> Callable[[Cell, str], dict]:
    """A ``run_cell`` that launches ``transfer/train_net.py`` and reads its results file."""

    def run(cell: Cell, cell_dir: str) -> dict:
        cmd = cell_command(cell, cell_dir, weights=weights, num_gpus=num_gpus, extra_opts=extra_opts)
        log_path = os.path.join(cell_dir, "log.txt")
        results_path = os.path.join(cell_dir, "transfer_results.json")
        if os.path.exists(results_path):
            os.unlink(results_path)
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with open(log_path, "w") as log:
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            try:
                rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                raise CellError(f"timed out after {timeout} s (log: {log_path})") from None
        if rc != 0:
            raise CellError(f"train_net exited with {rc}: {_last_exception(log_path)} (log: {log_path})")
        if not os.path.isfile(results_path):
            raise CellError(f"train_net finished but wrote no {results_path} (log: {log_path})")
        with open(results_path) as f:
            res = json.load(f)
        return {"metrics": res.get("metrics", {}), "encoder_init": res.get("encoder_init"),
                "max_iter": res.get("max_iter"), "command": cmd, "log": log_path}

    return run


def _last_exception(path: str) -> str:
    """The last ``SomeError: message`` line of a log (the exception that ended the run)."""
    import re

    pat = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.*)$")
    found = ""
    for line in _tail(path, 400).splitlines():
        m = pat.match(line.strip())
        if m:
            found = m.group(1)
    return found[:500] or "no exception found in the log"


def _tail(path: str, n: int = 25) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


# --------------------------------------------------------------------------------------- rendering
def gather(out_dir: str, cells: Optional[Sequence[Cell]] = None) -> Dict[Cell, dict]:
    cells = cells or plan()
    return {c: r for c in cells if (r := read_cell(out_dir, c)) is not None}


def _value(rec: Optional[dict], task: str, metric: str) -> Optional[float]:
    if not rec or rec.get("status") != "ok":
        return None
    v = (rec.get("metrics") or {}).get(task, {}).get(metric)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _fmt(v: Optional[float], rec: Optional[dict], best: bool) -> str:
    if rec is None:
        return "–"
    if rec.get("status") != "ok":
        return "failed"
    if v is None:
        return "n/a"
    s = f"{v:.1f}"
    return f"**{s}**" if best else s


def render_markdown(records: Dict[Cell, dict], title: str = "") -> str:
    """Table 5 layout: one row per (detector, encoder init), one column per COCO metric;
    each entry "fine-tuned (frozen)"; per detector and column the best fine-tuned and the best
    frozen value are bold (unless all values shown are equal)."""
    lines = []
    if title:
        lines += [title, ""]
    for task, heading in (("bbox", "Box AP"), ("segm", "Mask AP (Mask R-CNN)")):
        dets = [d for d in DETECTORS if task == "bbox" or d == "mask_rcnn"]
        if task == "segm" and not any(_value(r, "segm", "AP") is not None for c, r in records.items() if c.detector == "mask_rcnn"):
            continue
        lines += [f"**{heading}** — fine-tuned encoder (frozen encoder in parentheses); best per detector in bold where values differ.", ""]
        lines.append("| Detector | Encoder | " + " | ".join(METRIC_LABELS[m] for m in METRICS) + " |")
        lines.append("|---|---|" + "---|" * len(METRICS))
        for det in dets:
            best = {}
            for mode in MODES:
                for m in METRICS:
                    vals = [_value(records.get(Cell(det, i, mode)), task, m) for i in INITS]
                    vals = {round(v, 1) for v in vals if v is not None}
                    # bold only where there is something to choose: >= 2 different values
                    best[mode, m] = max(vals) if len(vals) > 1 else None
            for init, (label, _, _) in INITS.items():
                cells = []
                for m in METRICS:
                    parts = []
                    for mode in MODES:
                        rec = records.get(Cell(det, init, mode))
                        v = _value(rec, task, m)
                        is_best = v is not None and best[mode, m] is not None and round(v, 1) == best[mode, m]
                        parts.append(_fmt(v, rec, is_best))
                    cells.append(f"{parts[0]} ({parts[1]})")
                lines.append(f"| {DETECTORS[det][0]} | {label} | " + " | ".join(cells) + " |")
        lines.append("")
    failed = [(c, r) for c, r in records.items() if r.get("status") != "ok"]
    if failed:
        lines += ["Failed cells:", ""]
        for c, r in failed:
            err = (r.get("error") or "").strip().splitlines()
            lines.append(f"- `{c.key}`: {err[0] if err else 'unknown error'}")
        lines.append("")
    missing = [c.key for c in plan() if c not in records]
    if missing:
        lines += [f"Not run yet: {', '.join(f'`{k}`' for k in missing)}", ""]
    return "\n".join(lines)


def render_chart(records: Dict[Cell, dict], path: str, metrics: Sequence[str] = ("AP", "APs", "APm", "APl"),
                 title: str = "") -> str:
    """Grouped bars per detector: one group per metric, one bar per encoder init, solid =
    fine-tuned, hatched = frozen. Missing/failed cells have no bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"imagenet": "#8c8c8c", "stn_wo_cpp": "#6baed6", "stn_cpp": "#d94801"}
    fig, axes = plt.subplots(1, len(DETECTORS), figsize=(5 * len(DETECTORS), 3.8), sharey=True)
    width = 0.8 / (len(INITS) * len(MODES))
    for ax, (det, (det_label, _)) in zip(axes, DETECTORS.items()):
        for j, init in enumerate(INITS):
            for k, mode in enumerate(MODES):
                off = (j * len(MODES) + k) * width - 0.4 + width / 2
                vals = [_value(records.get(Cell(det, init, mode)), "bbox", m) for m in metrics]
                xs = [i + off for i, v in enumerate(vals) if v is not None]
                ys = [v for v in vals if v is not None]
                ax.bar(xs, ys, width, color=colors[init], hatch="//" if mode == "frozen" else None,
                       edgecolor="white" if mode == "frozen" else colors[init],
                       label=f"{INITS[init][0]}{' (frozen)' if mode == 'frozen' else ''}")
        ax.set_xticks(range(len(metrics)))
        ax.set_xticklabels([METRIC_LABELS[m] for m in metrics])
        ax.set_title(det_label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("box AP")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(INITS) * len(MODES), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95 if title else 1))
    from seethroughnet.utils.atomic import atomic_path

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return path


def render_outputs(out_dir: str, title: Optional[str] = None) -> Tuple[str, str]:
    records = gather(out_dir)
    title = title if title is not None else _title(out_dir)
    md_path = os.path.join(out_dir, "table5.md")
    md = render_markdown(records, title=f"## {title}" if title else "")
    from seethroughnet.utils.atomic import atomic_path

    with atomic_path(md_path) as tmp, open(tmp, "w") as f:
        f.write(md)
    png = render_chart(records, os.path.join(out_dir, "table5.png"), title=title)
    return md_path, png


def _title(out_dir: str) -> str:
    meta = os.path.join(out_dir, "grid.json")
    if os.path.isfile(meta):
        try:
            with open(meta) as f:
                return json.load(f).get("title", "")
        except (OSError, ValueError):
            pass
    return "Table 5: detection transfer of the HRNetV2 encoder (Cityscapes val, COCO box AP)"


# ---------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", default="output/table5")
    p.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=list(DETECTORS))
    p.add_argument("--inits", nargs="+", default=list(INITS), choices=list(INITS))
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--imagenet-weights", default="", help="HRNetV2 ImageNet checkpoint (timm/official layout)")
    p.add_argument("--stn-weights", default="", help="SeeThroughNet checkpoint trained WITHOUT CPP")
    p.add_argument("--stn-cpp-weights", default="", help="SeeThroughNet checkpoint trained WITH CPP")
    p.add_argument("--variant", default=None, help="MODEL.HRNET.VARIANT (must match the checkpoints; configs: hrnet_w48)")
    p.add_argument("--dataset-root", default=None, help="DATASETS.CITYSCAPES_ROOT (converted with convert_cityscapes_to_coco)")
    p.add_argument("--num-gpus", type=int, default=1)
    p.add_argument("--iters", type=int, default=None, help="SOLVER.MAX_ITER (STEPS scaled to 3/4 of it)")
    p.add_argument("--ims-per-batch", type=int, default=None, help="SOLVER.IMS_PER_BATCH")
    p.add_argument("--min-size", type=int, default=None, help="INPUT.MIN_SIZE_TRAIN/TEST (single value)")
    p.add_argument("--max-size", type=int, default=None, help="INPUT.MAX_SIZE_TRAIN/TEST")
    p.add_argument("--smoke", action="store_true", help="CPU smoke preset (tiny images, few proposals)")
    p.add_argument("--keep-failed", action="store_true", help="do not re-run cells that failed before")
    p.add_argument("--render-only", action="store_true", help="only re-render table5.md / table5.png")
    p.add_argument("--timeout", type=float, default=None, help="seconds per cell")
    p.add_argument("--title", default=None)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="more KEY VALUE config overrides for every cell")
    return p


def extra_opts_from_args(args) -> List[str]:
    opts: List[str] = list(SMOKE_OPTS) if args.smoke else []
    if args.variant:
        opts += ["MODEL.HRNET.VARIANT", args.variant]
    if args.dataset_root:
        opts += ["DATASETS.CITYSCAPES_ROOT", os.path.abspath(args.dataset_root)]
    if args.iters is not None:
        opts += ["SOLVER.MAX_ITER", str(args.iters), "SOLVER.STEPS", f"({max(1, args.iters * 3 // 4)},)"]
    if args.ims_per_batch is not None:
        opts += ["SOLVER.IMS_PER_BATCH", str(args.ims_per_batch)]
    if args.min_size is not None:
        opts += ["INPUT.MIN_SIZE_TRAIN", f"({args.min_size},)", "INPUT.MIN_SIZE_TEST", str(args.min_size)]
    if args.max_size is not None:
        opts += ["INPUT.MAX_SIZE_TRAIN", str(args.max_size), "INPUT.MAX_SIZE_TEST", str(args.max_size)]
    rest = [o for o in args.opts if o != "--"]
    if len(rest) % 2:
        raise SystemExit(f"config overrides must be KEY VALUE pairs, got {rest}")
    return opts + rest


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(name)s %(levelname)s: %(message)s")
    os.makedirs(args.out_dir, exist_ok=True)
    if args.title is not None:
        write_json_atomic({"title": args.title}, os.path.join(args.out_dir, "grid.json"))
    if args.render_only:
        md, png = render_outputs(args.out_dir)
        print(open(md).read())
        print(f"wrote {md} and {png}")
        return 0
    cells = plan(args.detectors, args.inits, args.modes)
    weights = {"imagenet": args.imagenet_weights, "stn_wo_cpp": args.stn_weights, "stn_cpp": args.stn_cpp_weights}
    runner = subprocess_runner(weights=weights, num_gpus=args.num_gpus, extra_opts=extra_opts_from_args(args),
                               timeout=args.timeout)
    records = run_grid(cells, args.out_dir, runner, rerun_failed=not args.keep_failed)
    md, png = render_outputs(args.out_dir)
    print(open(md).read())
    n_ok = sum(r.get("status") == "ok" for r in records.values())
    print(f"{n_ok}/{len(records)} cells ok; wrote {md} and {png}")
    return 0 if n_ok == len(records) else 1


if __name__ == "__main__":
    sys.exit(main())
