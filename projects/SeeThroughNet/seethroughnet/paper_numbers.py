"""The paper's numbers (Han, Yoo, Oh, SeeThroughNet, CVPR 2022, Tables 1, 2, 4, 5, 6), read from
the one data file ``paper_numbers.yaml`` beside this module, under this repository's names.

A cell the paper's text does not let us read is ``"?"`` in the file and ``None`` here; a
dataset, model or run the paper has no number for gives ``None`` too (see each function).
Plain Python and PyYAML: no torch, no detectron2.

``python -m seethroughnet.paper_numbers --markdown table1`` prints a table as REPRODUCE.md shows
it (``table1``, ``table2``, ``table4``, ``table5``, ``table6``); ``--update REPRODUCE.md`` rewrites
every block between ``<!-- paper:NAME -->`` and ``<!-- /paper:NAME -->`` in that file with it.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from typing import Dict, List, Optional, Tuple

import yaml

from seethroughnet.experiments.report import markdown_table

DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "paper_numbers.yaml")
SOURCE = "Han, Yoo, Oh, SeeThroughNet, CVPR 2022"

#: dataset keys of the grids -> the paper's Table 1 column (``None``: not in the paper)
DATASET_ALIASES = {"context": "context60"}
#: why a dataset key of this repository has no paper number
NO_PAPER_NUMBER = {
    "context59": "the paper's Pascal Context is the 60-class setting; no 59-class number",
}
TABLE5_METRICS = ("AP", "AP50", "APs", "APm", "APl")

Number = Optional[float]


class PaperNumbersError(ValueError):
    """The data file is missing or does not have the layout this module reads."""


def _num(v, where: str) -> Number:
    if v is None or v == "?":
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise PaperNumbersError(f"{DATA_FILE}: {where}: {v!r} is neither a number nor '?'")
    return float(v)


@functools.lru_cache(maxsize=None)
def data() -> dict:
    """The parsed data file (cached)."""
    try:
        with open(DATA_FILE) as f:
            d = yaml.safe_load(f)
    except OSError as e:
        raise PaperNumbersError(
            f"{DATA_FILE} cannot be read ({e.strerror}); reinstall the package "
            "(`pip install -e .`): the file ships as package data"
        ) from None
    for t in ("table1", "table2", "table4", "table5", "table6"):
        if not isinstance(d, dict) or not isinstance(d.get(t), dict) or "rows" not in d[t]:
            raise PaperNumbersError(f"{DATA_FILE}: no '{t}.rows' section")
    return d


def cite(table: str) -> str:
    """``"Han, Yoo, Oh, SeeThroughNet, CVPR 2022, Table N"``."""
    return data()[table]["cite"]


# ------------------------------------------------------------------------------------- Table 1
def table1_dataset(dataset: str) -> Optional[str]:
    """The paper's Table 1 dataset key for a grid's dataset key (``None``: not in the paper)."""
    key = DATASET_ALIASES.get(dataset, dataset)
    return key if key in data()["table1"]["datasets"] else None


def table1(model: str, dataset: str) -> Optional[Tuple[Number, Number, Number]]:
    """``(baseline, CPP, gain)`` mIoU of the paper's Table 1, or ``None`` where the paper has no
    such model / dataset (e.g. ``context59``; the paper's Context has 60 classes)."""
    key = table1_dataset(dataset)
    row = data()["table1"]["rows"].get(model, {})
    if key is None or key not in row:
        return None
    b, c, g = (_num(v, f"table1.{model}.{key}") for v in row[key])
    return b, c, g


def no_paper_reason(dataset: str) -> str:
    """Why a dataset has no Table 1 number (for the reports' notes)."""
    return NO_PAPER_NUMBER.get(dataset, f"'{dataset}' is not a dataset of the paper's Table 1")


# ------------------------------------------------------------------------------------- Table 2
def table2(model: str, dataset: str = "cityscapes") -> Optional[Dict[str, Number]]:
    """``{"non_instance": gain, "instance": gain}`` (average IoU gain over the class group) of the
    paper's Table 2; ``None`` for a model or dataset not in it (Table 2 is Cityscapes only)."""
    t = data()["table2"]
    if dataset != t["dataset"] or model not in t["rows"]:
        return None
    return {k: _num(v, f"table2.{model}.{k}") for k, v in t["rows"][model].items()}


# ------------------------------------------------------------------------------------- Table 4
def table4_runs() -> List[str]:
    """The four ablation runs, in the paper's row order."""
    return list(data()["table4"]["rows"])


def table4(run: str) -> Optional[dict]:
    """``{"cpp": bool, "msa": bool, "mIoU": float, "gain": float | None}`` of an ablation run
    (``seethroughnet_W48_cpp-on_msa-on``, a ``.yaml`` suffix and a ``_mapillary`` suffix are
    ignored); ``None`` for another name."""
    name = os.path.basename(run)
    name = name[: -len(".yaml")] if name.endswith(".yaml") else name
    name = name[: -len("_mapillary")] if name.endswith("_mapillary") else name
    r = data()["table4"]["rows"].get(name)
    if r is None:
        return None
    return {
        "cpp": bool(r["cpp"]),
        "msa": bool(r["msa"]),
        "mIoU": _num(r["mIoU"], f"table4.{name}.mIoU"),
        "gain": _num(r["gain"], f"table4.{name}.gain"),
    }


# ------------------------------------------------------------------------------------- Table 5
def table5(detector: str, encoder: str, frozen: bool) -> Optional[Dict[str, Number]]:
    """``{"AP", "AP50", "APs", "APm", "APl"}`` of the paper's Table 5 for a detector
    (``mask_rcnn`` / ``faster_rcnn`` / ``fcos``), encoder (``imagenet`` / ``stn_wo_cpp`` /
    ``stn_cpp``), frozen or fine-tuned; ``None`` for keys not in it."""
    t = data()["table5"]
    mode = "frozen" if frozen else "finetune"
    vals = t["rows"].get(detector, {}).get(encoder, {}).get(mode)
    if vals is None:
        return None
    where = f"table5.{detector}.{encoder}.{mode}"
    return {m: _num(v, where) for m, v in zip(t["metrics"], vals)}


# ------------------------------------------------------------------------------------- Table 6
def table6_classes() -> List[str]:
    """The 19 Cityscapes classes in the paper's Table 6 order."""
    return list(data()["table6"]["classes"])


def table6(method: str = "SeeThroughNet") -> Optional[Dict[str, Number]]:
    """``{class: IoU, ..., "mIoU": mIoU}`` of a row of the paper's Table 6 (Cityscapes TEST set)."""
    t = data()["table6"]
    vals = t["rows"].get(method)
    if vals is None:
        return None
    keys = list(t["classes"]) + ["mIoU"]
    if len(vals) != len(keys):
        raise PaperNumbersError(f"{DATA_FILE}: table6.{method} has {len(vals)} values, not 20")
    return {k: _num(v, f"table6.{method}") for k, v in zip(keys, vals)}


# ------------------------------------------------------------------------------------ markdown
def fmt(v: Number, digits: int = 2, sign: bool = False) -> str:
    """A paper number as printed (``?`` where unreadable)."""
    if v is None:
        return "?"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def fmt_diff(measured: Optional[float], paper: Number, digits: int = 2) -> str:
    """``measured - paper`` with a sign; ``?`` where the paper's number is unreadable, ``n/a``
    without a measurement."""
    if measured is None or measured != measured:
        return "n/a"
    if paper is None:
        return "?"
    return f"{measured - paper:+.{digits}f}"


def _table(headers: List[str], rows: List[List[str]]) -> List[str]:
    return markdown_table(headers, rows).splitlines()


def markdown(name: str) -> str:
    """The paper's table ``name`` (``table1``, ``table2``, ``table4``, ``table5``, ``table6``)
    as markdown, the source cited on its first line."""
    d = data()
    if name not in MARKDOWN:
        raise PaperNumbersError(f"no table '{name}'; valid: {', '.join(MARKDOWN)}")
    t = d[name]
    body = MARKDOWN[name](t)
    unreadable = " (`?`: unreadable in the paper's text)" if any("| ? " in b for b in body) else ""
    return "\n".join([f"{t['cite']}: {t['title']}{unreadable}.", ""] + body) + "\n"


def _md_table1(t) -> List[str]:
    ds = t["datasets"]
    headers = ["model"] + [f"{label} {w}" for label in ds.values() for w in ("base", "CPP", "gain")]
    rows = []
    for model, label in t["models"].items():
        cells = [label]
        for key in ds:
            b, c, g = table1(model, key)
            cells += [fmt(b), fmt(c), fmt(g, sign=True)]
        rows.append(cells)
    return _table(headers, rows)


def _md_table2(t) -> List[str]:
    labels = data()["table1"]["models"]
    rows = [
        [labels.get(m, m), fmt(g["non_instance"], sign=True), fmt(g["instance"], sign=True)]
        for m in t["rows"]
        for g in [table2(m)]
    ]
    return _table(["model", "non-instance avg gain", "instance avg gain"], rows)


def _md_table4(t) -> List[str]:
    rows = []
    for run in t["rows"]:
        r = table4(run)
        mark = lambda b: "✓" if b else "–"  # noqa: E731
        gain = "–" if r["gain"] is None else fmt(r["gain"], sign=True)
        rows.append([mark(r["cpp"]), mark(r["msa"]), fmt(r["mIoU"]), gain, f"`{run}`"])
    return _table(["CPP pooling", "MS attention", "mIoU", "gain", "run (this repository)"], rows)


def _md_table5(t) -> List[str]:
    headers = ["detector", "encoder"] + ["AP", "AP50", "AP_s", "AP_m", "AP_l"]
    rows = []
    for det, det_label in t["detectors"].items():
        for enc, enc_label in t["encoders"].items():
            ft, fr = table5(det, enc, False), table5(det, enc, True)
            rows.append(
                [det_label, enc_label]
                + [f"{fmt(ft[m], 1)} ({fmt(fr[m], 1)})" for m in TABLE5_METRICS]
            )
    return ["Frozen encoder in parentheses.", ""] + _table(headers, rows)


def _md_table6(t) -> List[str]:
    row = table6("SeeThroughNet")
    keys = table6_classes() + ["mIoU"]
    return ["The SeeThroughNet row. " + t["notes"], ""] + _table(
        keys, [[fmt(row[k]) for k in keys]]
    )


MARKDOWN = {
    "table1": _md_table1,
    "table2": _md_table2,
    "table4": _md_table4,
    "table5": _md_table5,
    "table6": _md_table6,
}

_BLOCK = re.compile(r"(<!-- paper:(\w+) -->\n)(.*?)(<!-- /paper:\2 -->)", re.S)


def paper_blocks(text: str) -> Dict[str, str]:
    """``{name: text}`` of the ``<!-- paper:NAME -->`` ... ``<!-- /paper:NAME -->`` blocks."""
    return {m.group(2): m.group(3) for m in _BLOCK.finditer(text)}


def update_blocks(text: str) -> str:
    """``text`` with every paper block replaced by :func:`markdown` of its table."""
    return _BLOCK.sub(lambda m: m.group(1) + markdown(m.group(2)) + m.group(4), text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--markdown", choices=list(MARKDOWN), help="print one table as markdown")
    g.add_argument("--update", metavar="FILE", help="rewrite the paper blocks of FILE")
    args = p.parse_args(argv)
    try:
        if args.markdown:
            sys.stdout.write(markdown(args.markdown))
            return 0
        with open(args.update) as f:
            text = f.read()
        new = update_blocks(text)
        if new != text:
            from seethroughnet.utils.atomic import write_text_atomic

            write_text_atomic(args.update, new)
        print(f"{args.update}: {len(paper_blocks(new))} paper blocks up to date")
        return 0
    except (PaperNumbersError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
