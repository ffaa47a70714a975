"""Tables 1-2 and Figure 5 of the paper from the CPP study's cell records
(:func:`seethroughnet.experiments.cpp_study.gather`): mean +- std over seeds per model and
dataset, the per-class gains on instance / non-instance classes, and the 0-4 heads sweep as
markdown and PNG. Pure functions of ``(grid, records)``."""

from __future__ import annotations

from typing import Dict, List, Optional

from seethroughnet import paper_numbers
from seethroughnet.experiments.report import (
    figure,
    fmt_mean_std,
    markdown_table,
    mean_std,
    save_png,
)


def _mean_std(xs: List[float]):
    """mean and sample std, NaN where :func:`~seethroughnet.experiments.report.mean_std` has
    none (no values; a single value)."""
    m, s = mean_std(xs)
    return (float("nan") if m is None else m), (float("nan") if s is None else s)


def _fmt(m, s=None, n=None):
    out = fmt_mean_std(m, s, 2)
    return out if n is None or out == "n/a" else f"{out} (n={n})"


def _variant_spec(grid, name):
    variants = grid.get("variants") or {
        "baseline": {"loss": "upsample_ce", "num_heads": 4},
        "cpp": {"loss": "cpp_kl", "num_heads": 4},
    }
    v = variants[name]
    n = int(v.get("num_heads", 4))
    return ("none" if n == 0 else v["loss"]), n


def _select(records, model, dataset, loss, num_heads):
    return [
        r
        for r in records
        if r["model"] == model
        and r["dataset"] == dataset
        and r["loss"] == loss
        and r["num_heads"] == num_heads
    ]


def _status_note(rs):
    failed = [r for r in rs if r.get("status") == "failed"]
    pending = [r for r in rs if r.get("status") == "pending"]
    notes = []
    if failed:
        notes.append(f"FAILED: {', '.join('s%d' % r['seed'] for r in failed)}")
    if pending:
        notes.append(f"pending: {', '.join('s%d' % r['seed'] for r in pending)}")
    return "; ".join(notes)


def table1(grid: dict, records: List[dict]) -> str:
    t1 = grid.get("table1", {"baseline": "baseline", "cpp": "cpp"})
    b_loss, b_n = _variant_spec(grid, t1["baseline"])
    c_loss, c_n = _variant_spec(grid, t1["cpp"])
    headers = ["model", "dataset", "baseline mIoU", "with CPP mIoU", "gain (paired)"]
    headers += ["paper baseline", "paper CPP", "paper gain"]
    headers += ["Δ baseline vs paper", "Δ CPP vs paper", "Δ gain vs paper"]
    headers += ["seeds (b/c)", "per seed: baseline / CPP", "notes"]
    rows = []
    for model in grid["models"]:
        for dataset in grid["datasets"]:
            rb = _select(records, model, dataset, b_loss, b_n)
            rc = _select(records, model, dataset, c_loss, c_n)
            ob = {r["seed"]: r["mIoU"] for r in rb if r.get("status") == "ok"}
            oc = {r["seed"]: r["mIoU"] for r in rc if r.get("status") == "ok"}
            mb, sb = _mean_std(list(ob.values()))
            mc, sc = _mean_std(list(oc.values()))
            paired = [oc[s] - ob[s] for s in ob if s in oc]
            mg, sg = _mean_std(paired)
            note = "; ".join(
                f"{who} {_status_note(rs)}"
                for who, rs in (("baseline", rb), ("CPP", rc))
                if _status_note(rs)
            )
            gain = fmt_mean_std(mg, sg, 2, sign=True)
            per_seed = " / ".join(
                ", ".join(f"{d[k]:.1f}" for k in sorted(d)) or "-" for d in (ob, oc)
            )
            vs_paper = _paper_table1_cells(model, dataset, (mb, mc, mg))
            rows.append(
                [model, dataset, _fmt(mb, sb), _fmt(mc, sc), gain, *vs_paper]
                + [f"{len(ob)}/{len(oc)}", per_seed, note]
            )
    return markdown_table(headers, rows) + "\n\n" + _paper_note(grid)


def _paper_note(grid: dict) -> str:
    """Where the paper columns come from, and why a dataset of the grid has none."""
    none = [d for d in grid["datasets"] if paper_numbers.table1_dataset(d) is None]
    why = "".join(f" {d}: {paper_numbers.no_paper_reason(d)}." for d in none)
    return (
        f"Paper columns: {paper_numbers.cite('table1')} (seethroughnet/paper_numbers.yaml); "
        "Δ = measured mean (over seeds) - paper; n/a: no paper number for that model / "
        f"dataset.{why}"
    )


def _paper_table1_cells(model: str, dataset: str, measured) -> List[str]:
    """``[paper baseline, paper CPP, paper gain, Δ baseline, Δ CPP, Δ gain]`` (Δ = measured
    mean - paper)."""
    paper = paper_numbers.table1(model, dataset)
    if paper is None:
        return ["n/a"] * 6
    pb, pc, pg = paper
    measured = [None if m != m else m for m in measured]  # NaN: no finished run
    cells = [paper_numbers.fmt(pb), paper_numbers.fmt(pc), paper_numbers.fmt(pg, sign=True)]
    cells += [paper_numbers.fmt_diff(m, p) for m, p in zip(measured, paper)]
    return cells


def table2(grid: dict, records: List[dict]) -> str:
    """Class-wise IoU (mean over seeds) of baseline and CPP, their difference, and the averages over
    instance ("thing") classes vs the rest, per model and dataset."""
    t1 = grid.get("table1", {"baseline": "baseline", "cpp": "cpp"})
    b_loss, b_n = _variant_spec(grid, t1["baseline"])
    c_loss, c_n = _variant_spec(grid, t1["cpp"])
    out = []
    for dataset, dcfg in grid["datasets"].items():
        inst = set(dcfg.get("instance_classes", []))
        for model in grid["models"]:
            all_b = _select(records, model, dataset, b_loss, b_n)
            all_c = _select(records, model, dataset, c_loss, c_n)
            rb = [r for r in all_b if r.get("status") == "ok"]
            rc = [r for r in all_c if r.get("status") == "ok"]
            title = (
                f"**{model} / {dataset}** (baseline n={len(rb)}, CPP n={len(rc)}; "
                f"instance classes: {', '.join(sorted(inst)) or 'none'})"
            )
            if not rb or not rc:
                missing = _status_note(all_b + all_c)
                out.append(title + f"\n\nno complete pair of runs ({missing or 'no cells'})\n")
                continue
            classes = list(rb[0]["IoU"])
            rows = []
            diffs = {}
            for c in classes:
                mb = _mean_std([r["IoU"].get(c, float("nan")) for r in rb])[0]
                mc = _mean_std([r["IoU"].get(c, float("nan")) for r in rc])[0]
                diffs[c] = mc - mb
                rows.append(
                    [c, "yes" if c in inst else "", f"{mb:.2f}", f"{mc:.2f}", f"{mc - mb:+.2f}"]
                )
            di = [d for c, d in diffs.items() if c in inst and d == d]
            dn = [d for c, d in diffs.items() if c not in inst and d == d]
            avg_i, avg_n = _mean_std(di)[0], _mean_std(dn)[0]
            rows.append(["**instance avg**", "", "", "", f"{avg_i:+.2f}"])
            rows.append(["**non-instance avg**", "", "", "", f"{avg_n:+.2f}"])
            table = markdown_table(["class", "instance", "baseline IoU", "CPP IoU", "diff"], rows)
            vs = _paper_table2(model, dataset, avg_i, avg_n)
            out.append(title + "\n\n" + table + "\n\n" + vs + "\n")
    return "\n".join(out)


def _paper_table2(model: str, dataset: str, avg_i: float, avg_n: float) -> str:
    """The group averages beside the paper's Table 2 (Cityscapes only)."""
    paper = paper_numbers.table2(model, dataset)
    rows = []
    for label, key, m in (("instance", "instance", avg_i), ("non-instance", "non_instance", avg_n)):
        m = None if m != m else m
        ms = "n/a" if m is None else f"{m:+.2f}"
        if paper is None:
            rows.append([label, ms, "n/a", "n/a"])
        else:
            p = paper[key]
            rows.append([label, ms, paper_numbers.fmt(p, sign=True), paper_numbers.fmt_diff(m, p)])
    where = (
        f"paper: {paper_numbers.cite('table2')}"
        + ("; `?`: unreadable in the paper's text" if None in paper.values() else "")
        if paper is not None
        else f"paper: n/a ({paper_numbers.cite('table2')} has Cityscapes and the seven models only)"
    )
    headers = ["class group", "measured avg gain", "paper avg gain", "Δ vs paper"]
    return markdown_table(headers, rows) + f"\n\n({where}; Δ = measured - paper)"


def figure5_models(grid: dict) -> List[str]:
    """The models of the Figure 5 sweep: ``figure5.models`` (a list) or ``figure5.model``."""
    fig = grid.get("figure5") or {}
    if fig.get("models"):
        return [str(m) for m in fig["models"]]
    return [str(fig["model"])] if fig.get("model") else []


def figure5_features(
    grid: dict, records: List[dict], model: Optional[str] = None
) -> Dict[int, List[str]]:
    """``{num_heads: features}`` as the finished Figure 5 cells of ``model`` (default: the first
    Figure 5 model) recorded them (``aux_features`` of ``result.json``): which stages the heads sat
    on for each point of the x axis."""
    fig = grid.get("figure5") or {}
    model = model or next(iter(figure5_models(grid)), None)
    out: Dict[int, List[str]] = {}
    for r in records:
        if (
            r.get("model") == model
            and r.get("dataset") == fig.get("dataset")
            and r.get("status") == "ok"
            and "aux_features" in r
        ):
            out.setdefault(int(r["num_heads"]), list(r["aux_features"]))
    return out


def figure5_data(
    grid: dict, records: List[dict], model: Optional[str] = None
) -> Dict[str, List[tuple]]:
    """``{loss name: [(num_heads, mean, std, n_ok, n_failed), ...]}`` of ``model`` (default: the
    first Figure 5 model); 0 heads is the shared no-aux point."""
    fig = grid.get("figure5")
    if not fig:
        return {}
    model = model or figure5_models(grid)[0]
    seeds = set(fig.get("seeds", grid.get("seeds", [0])))
    data = {}
    for lname, loss in fig.get("losses", {"upsample": "upsample_ce", "cpp": "cpp_kl"}).items():
        pts = []
        for n in fig.get("num_heads", [0, 1, 2, 3, 4]):
            rs = _select(records, model, fig["dataset"], "none" if n == 0 else loss, n)
            rs = [r for r in rs if r["seed"] in seeds]
            ok = [r["mIoU"] for r in rs if r.get("status") == "ok"]
            m, s = _mean_std(ok)
            pts.append((n, m, s, len(ok), sum(r.get("status") == "failed" for r in rs)))
        data[lname] = pts
    return data


def figure5_markdown(grid: dict, records: List[dict]) -> str:
    """One table per Figure 5 model: mIoU per number of auxiliary heads and loss."""
    if not grid.get("figure5"):
        return "(no figure5 section in the grid)"
    return "\n\n".join(
        _figure5_model_markdown(grid, records, model) for model in figure5_models(grid)
    )


def _figure5_model_markdown(grid: dict, records: List[dict], model: str) -> str:
    data = figure5_data(grid, records, model)
    fig = grid["figure5"]
    names = list(data)
    heads = [p[0] for p in data[names[0]]]
    feats = figure5_features(grid, records, model)
    lines = [
        f"mIoU of {model} on {fig['dataset']} vs number of auxiliary heads "
        "(mean ± std over seeds; n heads = the first n of MODEL.CPP_AUX.ADD_ORDER, default "
        "res4, res5, res3, res2; the stages each point used, as its cells recorded them, in "
        "brackets)",
        "",
    ]
    rows = []
    for i, n in enumerate(heads):
        cells = []
        for name in names:
            _, m, s, k, nf = data[name][i]
            cells.append(_fmt(m, s, k) + (f" FAILED x{nf}" if nf else ""))
        where = f" ({', '.join(feats[n]) or 'none'})" if n in feats else ""
        rows.append([f"{n}{where}", *cells])
    return "\n".join(lines + [markdown_table(["auxiliary heads", *names], rows)])


def figure5_png(grid: dict, records: List[dict], path: str) -> Optional[str]:
    """Figure 5 as a PNG: one panel per model (mIoU vs number of auxiliary heads, one curve per
    loss, error bars = std over seeds), up to 4 panels a row."""
    models = figure5_models(grid) if grid.get("figure5") else []
    if not models:
        return None
    cols = min(4, len(models))
    rows = (len(models) + cols - 1) // cols
    with figure(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False) as (fig, axes):
        for i, model in enumerate(models):
            _figure5_panel(
                axes[i // cols][i % cols], grid, figure5_data(grid, records, model), model
            )
        for j in range(len(models), rows * cols):  # empty panels of the last row
            axes[j // cols][j % cols].axis("off")
        fig.tight_layout()
        return save_png(fig, path)


def _figure5_panel(ax, grid: dict, data: Dict[str, List[tuple]], model: str) -> None:
    for (name, pts), marker in zip(data.items(), "os^dv"):
        pts_ok = [p for p in pts if p[1] == p[1]]
        if pts_ok:  # no error bar for a single seed
            ax.errorbar(
                [p[0] for p in pts_ok],
                [p[1] for p in pts_ok],
                yerr=[p[2] if p[2] == p[2] else 0.0 for p in pts_ok],
                marker=marker,
                capsize=3,
                label=name,
            )
        for p in pts:
            if p[4]:
                ax.annotate("failed", (p[0], ax.get_ylim()[0]), color="red", fontsize=7)
    ax.set_xlabel("number of auxiliary heads")
    ax.set_ylabel("mIoU (%)")
    ax.set_title(f"{model} / {grid['figure5']['dataset']}")
    ax.set_xticks(sorted({p[0] for pts in data.values() for p in pts}))
    ax.grid(alpha=0.3)
    if any(p[1] == p[1] for pts in data.values() for p in pts):
        ax.legend()
