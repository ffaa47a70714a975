"""Table 5 as the paper prints it: ``table5.md`` (mean +- std over seeds, best per detector in
bold) and ``table5.png``, rendered from the cells' results (:func:`transfer.table5_grid.gather`)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

from seethroughnet import paper_numbers
from seethroughnet.experiments.report import (
    figure,
    fmt_mean_std,
    markdown_table,
    mean_std,
    save_png,
)
from seethroughnet.utils.atomic import write_text_atomic

from .table5_grid import DETECTORS, INITS, METRIC_LABELS, METRICS, MODES, Cell, gather, plan


def _value(rec: Optional[dict], task: str, metric: str) -> Optional[float]:
    if not rec or rec.get("status") != "ok":
        return None
    v = (rec.get("metrics") or {}).get(task, {}).get(metric)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


@dataclass
class Entry:
    """One table entry: the cells of a (detector, init, mode) over its seeds."""

    n_cells: int = 0
    n_ok: int = 0
    values: Tuple[float, ...] = ()

    @property
    def mean(self) -> Optional[float]:
        return mean_std(self.values)[0]

    @property
    def std(self) -> Optional[float]:
        """Sample standard deviation over seeds (None for fewer than two)."""
        return mean_std(self.values)[1]


def _entry(records: Dict[Cell, dict], group: Tuple[str, str, str], task: str, metric: str) -> Entry:
    recs = [r for c, r in records.items() if c.group == group]
    vals = tuple(v for r in recs if (v := _value(r, task, metric)) is not None)
    return Entry(len(recs), sum(r.get("status") == "ok" for r in recs), vals)


def _fmt(e: Entry, best: bool) -> str:
    if e.n_cells == 0:
        return "–"
    if e.n_ok == 0:
        return "failed"
    if e.mean is None:
        return "n/a"
    s = fmt_mean_std(e.mean, e.std, 1)
    return f"**{s}**" if best else s


def render_markdown(records: Dict[Cell, dict], title: str = "") -> str:
    """Table 5 layout: one row per (detector, encoder init), one column per COCO metric;
    each entry "fine-tuned (frozen)", as "mean ± std" (sample std) where a cell ran with more
    than one seed; per detector and column the best fine-tuned and the best frozen mean are bold
    (unless all values shown are equal)."""
    lines = []
    if title:
        lines += [title, ""]
    n_seeds = max(
        (sum(1 for c in records if c.group == g) for g in {c.group for c in records}), default=0
    )
    for task, heading in (("bbox", "Box AP"), ("segm", "Mask AP (Mask R-CNN)")):
        dets = [d for d in DETECTORS if task == "bbox" or d == "mask_rcnn"]
        if task == "segm" and not any(
            _value(r, "segm", "AP") is not None
            for c, r in records.items()
            if c.detector == "mask_rcnn"
        ):
            continue
        seeds_note = (
            f" Entries are mean ± sample std over up to {n_seeds} seeds." if n_seeds > 1 else ""
        )
        lines += [
            f"**{heading}** — fine-tuned encoder (frozen encoder in parentheses); best per "
            f"detector in bold where values differ.{seeds_note}",
            "",
        ]
        rows = []
        for det in dets:
            best = {}
            for mode in MODES:
                for m in METRICS:
                    means = [_entry(records, (det, i, mode), task, m).mean for i in INITS]
                    vals = {round(v, 1) for v in means if v is not None}
                    # bold only where there is something to choose: >= 2 different values
                    best[mode, m] = max(vals) if len(vals) > 1 else None
            for init, (label, _, _) in INITS.items():
                cells = []
                for m in METRICS:
                    parts = []
                    for mode in MODES:
                        e = _entry(records, (det, init, mode), task, m)
                        is_best = (
                            e.mean is not None
                            and best[mode, m] is not None
                            and round(e.mean, 1) == best[mode, m]
                        )
                        parts.append(_fmt(e, is_best))
                    cells.append(f"{parts[0]} ({parts[1]})")
                rows.append([DETECTORS[det][0], label, *cells])
        headers = ["Detector", "Encoder"] + [METRIC_LABELS[m] for m in METRICS]
        lines += [markdown_table(headers, rows), ""]
    lines += paper_comparison(records)
    failed = [(c, r) for c, r in records.items() if r.get("status") != "ok"]
    if failed:
        lines += ["Failed cells:", ""]
        for c, r in failed:
            err = (r.get("error") or "").strip().splitlines()
            lines.append(f"- `{c.key}`: {err[0] if err else 'unknown error'}")
        lines.append("")
    done = {c.group for c in records}
    missing = [c.key for c in plan() if c.group not in done]
    if missing:
        lines += [f"Not run yet: {', '.join(f'`{k}`' for k in missing)}", ""]
    shas = sorted(
        {(c.init, r.get("encoder_sha256")) for c, r in records.items() if r.get("encoder_sha256")}
    )
    if shas:
        lines += [
            "Encoder files (sha256): " + "; ".join(f"{INITS[i][0]} `{h[:16]}`" for i, h in shas),
            "",
        ]
    return "\n".join(lines)


def paper_comparison(records: Dict[Cell, dict]) -> list:
    """Markdown lines: per (detector, encoder, mode) the measured mean over seeds of AP, AP50,
    AP_s, AP_m, AP_l beside the paper's Table 5 and the difference (measured - paper). Box AP
    for every detector; where Mask R-CNN has mask AP, a second table holds it against the same
    paper numbers, since the paper does not say which of the two its Mask R-CNN AP is."""
    headers = ["Detector", "Encoder", "mode"]
    for m in paper_numbers.TABLE5_METRICS:
        label = METRIC_LABELS[m]
        headers += [label, f"paper {label}", f"Δ {label}"]
    has_segm = any(
        _value(r, "segm", "AP") is not None for c, r in records.items() if c.detector == "mask_rcnn"
    )
    out = []
    for task in ("bbox", "segm"):
        dets = list(DETECTORS) if task == "bbox" else ["mask_rcnn"]
        if task == "segm" and not has_segm:
            continue
        rows = []
        for det in dets:
            for init, (label, _, _) in INITS.items():
                for mode in MODES:
                    paper = paper_numbers.table5(det, init, mode == "frozen") or {}
                    cells = [
                        DETECTORS[det][0],
                        label,
                        "frozen" if mode == "frozen" else "fine-tuned",
                    ]
                    for m in paper_numbers.TABLE5_METRICS:
                        e = _entry(records, (det, init, mode), task, m)
                        p = paper.get(m)
                        cells += [
                            "–" if e.mean is None else f"{e.mean:.1f}",
                            paper_numbers.fmt(p, 1) if paper else "n/a",
                            paper_numbers.fmt_diff(e.mean, p, 1) if paper else "n/a",
                        ]
                    rows.append(cells)
        if task == "bbox":
            intro = (
                "**Against the paper, box AP** — measured mean over seeds, "
                f"{paper_numbers.cite('table5')}, Δ = measured - paper (`?`: unreadable in the "
                "paper's text; –: not run). The paper does not say whether Mask R-CNN's AP is box "
                "or mask AP: its Mask R-CNN rows are compared with box AP here"
                + (" and with mask AP below." if has_segm else ".")
            )
        else:
            intro = (
                "**Against the paper, Mask R-CNN mask AP** — the same paper numbers as above "
                "(the paper does not say whether they are box or mask AP)."
            )
        out += [intro, "", *markdown_table(headers, rows).splitlines(), ""]
    return out


def render_chart(
    records: Dict[Cell, dict],
    path: str,
    metrics: Sequence[str] = ("AP", "APs", "APm", "APl"),
    title: str = "",
) -> str:
    """Grouped bars per detector: one group per metric, one bar per encoder init, solid =
    fine-tuned, hatched = frozen; the mean over seeds with a sample-std error bar. Missing or
    failed cells have no bar."""
    colors = {"imagenet": "#8c8c8c", "stn_wo_cpp": "#6baed6", "stn_cpp": "#d94801"}
    with figure(1, len(DETECTORS), figsize=(5 * len(DETECTORS), 3.8), sharey=True) as (fig, axes):
        _draw_chart(fig, axes, records, metrics, colors, title)
        return save_png(fig, path)


def _draw_chart(fig, axes, records, metrics, colors, title) -> None:
    width = 0.8 / (len(INITS) * len(MODES))
    for ax, (det, (det_label, _)) in zip(axes, DETECTORS.items()):
        for j, init in enumerate(INITS):
            for k, mode in enumerate(MODES):
                off = (j * len(MODES) + k) * width - 0.4 + width / 2
                entries = [_entry(records, (det, init, mode), "bbox", m) for m in metrics]
                xs = [i + off for i, e in enumerate(entries) if e.mean is not None]
                ys = [e.mean for e in entries if e.mean is not None]
                errs = [e.std or 0.0 for e in entries if e.mean is not None]
                ax.bar(
                    xs,
                    ys,
                    width,
                    yerr=errs if any(errs) else None,
                    capsize=2,
                    color=colors[init],
                    hatch="//" if mode == "frozen" else None,
                    edgecolor="white" if mode == "frozen" else colors[init],
                    label=f"{INITS[init][0]}{' (frozen)' if mode == 'frozen' else ''}",
                )
        ax.set_xticks(range(len(metrics)))
        ax.set_xticklabels([METRIC_LABELS[m] for m in metrics])
        ax.set_title(det_label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("box AP")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="lower center", ncol=len(INITS) * len(MODES), fontsize=8, frameon=False
    )
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95 if title else 1))


def render_outputs(out_dir: str, title: Optional[str] = None) -> Tuple[str, str]:
    records = gather(out_dir)
    title = title if title is not None else _title(out_dir)
    md_path = os.path.join(out_dir, "table5.md")
    write_text_atomic(md_path, render_markdown(records, title=f"## {title}" if title else ""))
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
