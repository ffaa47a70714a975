"""Reports of the studies: markdown tables, mean +- std over seeds, PNG charts, all written
atomically (:func:`seethroughnet.utils.atomic.atomic_path`)."""

from __future__ import annotations

import contextlib
import math
from typing import Iterable, Optional, Sequence, Tuple

from seethroughnet.utils.atomic import atomic_path

__all__ = ["markdown_table", "mean_std", "fmt_mean_std", "figure", "save_png"]


def markdown_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    colalign: Optional[Sequence[str]] = None,
) -> str:
    """A GitHub markdown table (header, separator, one line per row) rendered by ``tabulate``
    (``tablefmt="github"``; with ``colalign``, e.g. ``("right", "left")``, ``"pipe"``, whose
    separator carries the ``:`` alignment marks). Cells are written as ``str(cell)``, never
    re-parsed as numbers (``"1.50"`` stays ``1.50``, ``None`` stays ``None``)."""
    from tabulate import tabulate

    cells = [[str(c) for c in r] for r in rows]
    headers = [str(h) for h in headers]
    if colalign is None:
        return tabulate(cells, headers, tablefmt="github", disable_numparse=True)
    return tabulate(
        cells, headers, tablefmt="pipe", disable_numparse=True, colalign=tuple(colalign)
    )


def mean_std(values: Sequence[float]) -> Tuple[Optional[float], Optional[float]]:
    """``(mean, sample standard deviation)`` over seeds; ``(None, None)`` without values and
    ``std None`` for a single value."""
    xs = list(values)
    if not xs:
        return None, None
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def fmt_mean_std(
    mean: Optional[float],
    std: Optional[float] = None,
    digits: int = 2,
    missing: str = "n/a",
    sign: bool = False,
) -> str:
    """``"m ± s"`` (``"m"`` without a std, ``missing`` without a mean; NaN counts as missing),
    ``digits`` decimals, ``sign``: always show the sign of the mean."""
    if mean is None or mean != mean:
        return missing
    out = f"{mean:+.{digits}f}" if sign else f"{mean:.{digits}f}"
    return out if std is None or std != std else f"{out} ± {std:.{digits}f}"


@contextlib.contextmanager
def figure(*args, **kwargs):
    """``(fig, axes)`` of ``matplotlib.pyplot.subplots(*args, **kwargs)`` on the Agg backend (no
    display needed), closed on exit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(*args, **kwargs)
    try:
        yield fig, axes
    finally:
        plt.close(fig)


def save_png(fig, path: str, dpi: Optional[float] = 120, **savefig_kwargs) -> str:
    """Save a matplotlib figure as PNG at ``path``, atomically; returns ``path``. ``dpi=None``:
    matplotlib's ``savefig.dpi`` setting; other keywords go to ``fig.savefig``."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", **savefig_kwargs)
    return path
