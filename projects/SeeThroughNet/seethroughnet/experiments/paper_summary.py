"""Tables 4 and 6 of the paper beside this project's runs: the evaluation results that
``train_net.py`` left in the run folders (REPRODUCE.md sections 5 and 7), the paper's numbers
(:mod:`seethroughnet.paper_numbers`) and the differences, as markdown and JSON.

    python tools/summarize_seethroughnet.py table4 --runs output/ablation \
        --out output/ablation/table4.md
    python tools/summarize_seethroughnet.py table6 --val-run output/table6/finetune_train \
        [--server-results FILE.json] --out output/table6/table6.md

Where a run's result is read from, first found wins:

1. ``RUN/eval/inference/<dataset>/sem_seg_evaluation.pth``: the ``--eval-only`` run of REPRODUCE.md
   (``OUTPUT_DIR RUN/eval``);
2. ``RUN/metrics.json``: the last line with ``sem_seg/mIoU``, the evaluation at the end of
   training (detectron2's ``EvalHook``; with one test dataset its keys are ``sem_seg/mIoU``,
   ``sem_seg/IoU-<class>``);
3. ``RUN/inference/<dataset>/sem_seg_evaluation.pth``: the same evaluation's own file.

Results are detectron2's ``SemSegEvaluator`` numbers (percent). Plain Python; the ``.pth`` files
load through :func:`seethroughnet.utils.safe_load.load_torch_file` (numbers only).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
from typing import List, Optional

from seethroughnet import paper_numbers as pn
from seethroughnet.experiments.report import markdown_table
from seethroughnet.utils.atomic import write_json_atomic, write_text_atomic

EVAL_FILE = "sem_seg_evaluation.pth"
ABLATION_CONFIGS = "projects/SeeThroughNet/configs/Cityscapes/ablation"
TABLE6_VAL_CONFIG = (
    "projects/SeeThroughNet/configs/Cityscapes/table6/seethroughnet_W48_table6_finetune_train.yaml"
)


class SummaryError(ValueError):
    """Bad input: one message naming the file and what to do."""


def _num(v) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _from_flat(res: dict, prefix: str = "") -> Optional[dict]:
    """``{"mIoU", "IoU": {class: IoU}}`` from detectron2's SemSegEvaluator keys."""
    miou = _num(res.get(prefix + "mIoU"))
    if miou is None:
        return None
    iou = {k[len(prefix) + 4 :]: _num(v) for k, v in res.items() if k.startswith(prefix + "IoU-")}
    return {"mIoU": miou, "IoU": iou}


def _eval_file(folder: str) -> Optional[str]:
    files = sorted(glob.glob(os.path.join(folder, "inference", "*", EVAL_FILE)))
    val = [f for f in files if "val" in os.path.basename(os.path.dirname(f))]
    return (val or files or [None])[0]


def _read_eval_file(path: str) -> Optional[dict]:
    from seethroughnet.utils.safe_load import load_torch_file

    res = load_torch_file(path)
    if not isinstance(res, dict):
        raise SummaryError(f"{path}: not a SemSegEvaluator result (a dict of metrics)")
    return _from_flat(res)


def _read_metrics_json(path: str) -> Optional[dict]:
    last = None
    with open(path) as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut short by a killed run
            if isinstance(rec, dict) and "sem_seg/mIoU" in rec:
                last = rec
    if last is None:
        return None
    out = _from_flat(last, "sem_seg/")
    if out is not None and "iteration" in last:
        out["iteration"] = last["iteration"]
    return out


def read_run(run_dir: str) -> Optional[dict]:
    """``{"mIoU", "IoU": {class: IoU}, "source": path}`` of a run folder (module docstring: which
    file), or ``None`` where it holds no evaluation result."""
    candidates = [
        ("eval", _eval_file(os.path.join(run_dir, "eval"))),
        ("metrics", os.path.join(run_dir, "metrics.json")),
        ("eval", _eval_file(run_dir)),
    ]
    for kind, path in candidates:
        if path and os.path.isfile(path):
            res = _read_eval_file(path) if kind == "eval" else _read_metrics_json(path)
            if res is not None:
                res["source"] = path
                return res
    return None


def _looked_for(run_dir: str) -> str:
    return (
        f"{run_dir}: no evaluation result (looked for eval/inference/*/{EVAL_FILE}, a "
        f"sem_seg/mIoU line in metrics.json, inference/*/{EVAL_FILE})"
    )


def _f(v: Optional[float], sign: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{v:+.2f}" if sign else f"{v:.2f}"


def _d(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else a - b


def _write(md_path: str, text: str, obj: dict) -> List[str]:
    json_path = os.path.splitext(md_path)[0] + ".json"
    write_text_atomic(md_path, text)
    write_json_atomic(json_path, obj, indent=2, sort_keys=True)
    return [md_path, json_path]


# ------------------------------------------------------------------------------------- Table 4
def table4(runs_dir: str) -> dict:
    """Per ablation run: measured mIoU, the paper's, their difference, and the gains over the
    ``cpp-off_msa-off`` run (measured and paper); ``missing`` lists the runs without a result and
    what to run."""
    if not os.path.isdir(runs_dir):
        raise SummaryError(
            f"{runs_dir}: no such folder; train the four ablation runs first (REPRODUCE.md "
            "section 5, OUTPUT_DIR <runs>/<config name>)"
        )
    rows, missing = [], []
    base_name = pn.table4_runs()[0]
    results = {name: read_run(os.path.join(runs_dir, name)) for name in pn.table4_runs()}
    base = results[base_name]["mIoU"] if results[base_name] else None
    for name in pn.table4_runs():
        paper = pn.table4(name)
        res = results[name]
        run_dir = os.path.join(runs_dir, name)
        if res is None:
            missing.append(
                f"{_looked_for(run_dir)}: run REPRODUCE.md section 5's train_net.py command with "
                f"--config-file {ABLATION_CONFIGS}/{name}.yaml and OUTPUT_DIR {run_dir}"
            )
        m = res["mIoU"] if res else None
        gain = None if name == base_name else _d(m, base)
        rows.append(
            {
                "run": name,
                "cpp": paper["cpp"],
                "msa": paper["msa"],
                "mIoU": m,
                "source": res["source"] if res else None,
                "paper_mIoU": paper["mIoU"],
                "diff_mIoU": _d(m, paper["mIoU"]),
                "gain": gain,
                "paper_gain": paper["gain"],
                "diff_gain": _d(gain, paper["gain"]),
            }
        )
    return {"cite": pn.cite("table4"), "runs": runs_dir, "rows": rows, "missing": missing}


def table4_markdown(t: dict) -> str:
    mark = lambda b: "✓" if b else "–"  # noqa: E731
    lines = [
        "## Table 4: SeeThroughNet ablation, Cityscapes val (mIoU %)",
        "",
        f"Measured: the runs under `{t['runs']}`; paper: {t['cite']}. Δ = measured - paper; "
        "gain = mIoU - the mIoU of the run without CPP and without attention.",
        "",
    ]
    headers = ["CPP pooling", "MS attention", "run", "mIoU", "paper mIoU", "Δ vs paper", "gain"]
    headers += ["paper gain", "Δ gain vs paper", "result read from"]
    rows = []
    for r in t["rows"]:
        pg = "–" if r["paper_gain"] is None else _f(r["paper_gain"], True)
        g = "–" if r["paper_gain"] is None else _f(r["gain"], True)
        dg = "–" if r["paper_gain"] is None else _f(r["diff_gain"], True)
        m = "missing" if r["mIoU"] is None else _f(r["mIoU"])
        rows.append(
            [mark(r["cpp"]), mark(r["msa"]), f"`{r['run']}`", m, _f(r["paper_mIoU"])]
            + [_f(r["diff_mIoU"], True), g, pg, dg]
            + [f"`{r['source']}`" if r["source"] else "–"]
        )
    lines.append(markdown_table(headers, rows))
    if t["missing"]:
        lines += ["", "Missing runs:", ""] + [f"- {m}" for m in t["missing"]]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------- Table 6
def read_server_results(path: str) -> dict:
    """The benchmark server's per-class test IoU (percent) from a JSON file: ``{class: IoU, ...,
    "mIoU": m}`` or ``{"IoU": {class: IoU}, "mIoU": m}``, classes named as in Table 6."""
    try:
        with open(path) as f:
            obj = json.load(f)
    except OSError as e:
        raise SummaryError(f"{path}: cannot be read ({e.strerror})") from None
    except ValueError as e:
        raise SummaryError(f"{path}: not JSON ({e})") from None
    if not isinstance(obj, dict):
        raise SummaryError(f"{path}: expected a JSON object {{class: IoU, ..., 'mIoU': m}}")
    iou = obj.get("IoU", obj)
    classes = pn.table6_classes()
    bad = [k for k in iou if k not in classes and k != "mIoU"]
    if not isinstance(iou, dict) or bad:
        raise SummaryError(
            f"{path}: unknown class names {bad}; use the Cityscapes names {', '.join(classes)} "
            "(and 'mIoU')"
        )
    vals = {k: _num(v) for k, v in iou.items() if k in classes}
    if any(v is None for v in vals.values()):
        raise SummaryError(f"{path}: every class IoU must be a number (percent)")
    if vals and max(vals.values()) <= 1.0:
        raise SummaryError(f"{path}: the IoUs look like fractions; give them in percent (0-100)")
    miou = _num(obj.get("mIoU", iou.get("mIoU")))
    return {"IoU": vals, "mIoU": miou, "source": path}


def table6(val_run: str, server_results: Optional[str] = None) -> dict:
    """The validation run's per-class IoU (Cityscapes VAL) and, given, the benchmark server's
    (TEST) beside the paper's Table 6 SeeThroughNet row (TEST)."""
    paper = pn.table6("SeeThroughNet")
    val = read_run(val_run)
    server = read_server_results(server_results) if server_results else None
    missing = []
    if val is None:
        missing.append(
            f"{_looked_for(val_run)}: run REPRODUCE.md section 7's fine-tuning on Cityscapes "
            f"train (--config-file {TABLE6_VAL_CONFIG}, OUTPUT_DIR {val_run})"
        )
    rows = []
    for c in pn.table6_classes() + ["mIoU"]:
        v = (val["mIoU"] if c == "mIoU" else val["IoU"].get(c)) if val else None
        s = (server["mIoU"] if c == "mIoU" else server["IoU"].get(c)) if server else None
        rows.append(
            {
                "class": c,
                "val": v,
                "paper_test": paper[c],
                "val_minus_paper_test": _d(v, paper[c]),
                "server_test": s,
                "server_test_minus_paper_test": _d(s, paper[c]),
            }
        )
    return {
        "cite": pn.cite("table6"),
        "val_run": val_run,
        "val_source": val["source"] if val else None,
        "server_results": server_results,
        "rows": rows,
        "missing": missing,
    }


def table6_markdown(t: dict) -> str:
    has_server = t["server_results"] is not None
    lines = [
        "## Table 6: Cityscapes, per-class IoU (%)",
        "",
        f"**val** = Cityscapes VAL set, measured by the run `{t['val_run']}` (fine-tuned on "
        f"train; result read from `{t['val_source'] or 'missing'}`). **paper test** = the paper's "
        f"Table 6 SeeThroughNet row on the Cityscapes TEST set ({t['cite']}). They are different "
        "sets: val - paper test is not a like-for-like difference."
        + (
            f" **server test** = the benchmark server's TEST-set result (`{t['server_results']}`),"
            " comparable with the paper's row."
            if has_server
            else " For the TEST-set comparison, pass the benchmark server's per-class results "
            "(--server-results FILE.json)."
        ),
        "",
    ]
    headers = ["class", "val (measured)", "paper test", "val - paper test"]
    if has_server:
        headers += ["server test (measured)", "server test - paper test"]
    rows = []
    for r in t["rows"]:
        row = [r["class"], _f(r["val"]), _f(r["paper_test"]), _f(r["val_minus_paper_test"], True)]
        if has_server:
            row += [_f(r["server_test"]), _f(r["server_test_minus_paper_test"], True)]
        rows.append(row)
    lines.append(markdown_table(headers, rows))
    if t["missing"]:
        lines += ["", "Missing:", ""] + [f"- {m}" for m in t["missing"]]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description="Tables 4 and 6 of the paper beside this project's runs (markdown + JSON)"
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("table4", help="the four ablation runs (REPRODUCE.md section 5)")
    a.add_argument("--runs", default="output/ablation", help="folder holding the four runs")
    a.add_argument("--out", help="markdown file (JSON beside it); default RUNS/table4.md")
    b = sub.add_parser("table6", help="the Table 6 validation run (REPRODUCE.md section 7)")
    b.add_argument("--val-run", default="output/table6/finetune_train")
    b.add_argument(
        "--server-results",
        help="JSON of the benchmark server's per-class TEST IoU (percent): "
        '{"road": 98.9, ..., "mIoU": 86.0}',
    )
    b.add_argument("--out", help="markdown file (JSON beside it); default VAL_RUN/../table6.md")
    args = p.parse_args(argv)
    try:
        if args.cmd == "table4":
            t = table4(args.runs)
            found = sum(r["mIoU"] is not None for r in t["rows"])
            text, out = table4_markdown(t), args.out or os.path.join(args.runs, "table4.md")
        else:
            t = table6(args.val_run, args.server_results)
            found = int(t["val_source"] is not None) + int(t["server_results"] is not None)
            out = args.out or os.path.join(os.path.dirname(args.val_run.rstrip("/")), "table6.md")
            text = table6_markdown(t)
    except (SummaryError, pn.PaperNumbersError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for m in t["missing"]:
        print(f"missing: {m}", file=sys.stderr)
    if not found:
        print("error: nothing to summarize (see above); no file written", file=sys.stderr)
        return 2
    print(text)
    print("wrote " + ", ".join(_write(out, text, t)))
    return 0
