"""Markdown tables read cell by cell, so that tests compare what a table says, not how its columns
are padded (``seethroughnet.experiments.report.markdown_table`` pads every cell to its column)."""

from typing import List


def cells(line: str) -> List[str]:
    """The stripped cells of one table line: ``"| a  | b |"`` -> ``["a", "b"]``."""
    line = line.strip()
    return [c.strip() for c in line[1:-1].split("|")]


def _separator(row: List[str]) -> bool:
    return all(c and set(c) <= set(":-") for c in row)


def table_rows(text: str) -> List[List[str]]:
    """The cells of every table line of ``text`` (header lines included, separator lines not)."""
    rows = [cells(li) for li in text.splitlines() if li.strip().startswith("|")]
    return [r for r in rows if not _separator(r)]


def has_row(text: str, *expected: str) -> bool:
    """Whether a table line of ``text`` holds the cells ``expected`` next to each other."""
    n, want = len(expected), [str(e) for e in expected]
    return any(r[i : i + n] == want for r in table_rows(text) for i in range(len(r) - n + 1))


def rows_starting(text: str, *first: str) -> List[List[str]]:
    """The table lines of ``text`` whose first cells are ``first``."""
    return [r for r in table_rows(text) if r[: len(first)] == list(first)]


def row_starting(text: str, *first: str) -> List[str]:
    """The one table line of ``text`` whose first cells are ``first`` (asserted unique)."""
    hits = rows_starting(text, *first)
    assert len(hits) == 1, (first, hits)
    return hits[0]
