"""One grid runner for every study (the CPP plug-in study, Table 5).

A grid is a list of :class:`Cell` s. Each cell runs in its own folder ``<out>/<cell.name>/``,
usually as one subprocess (:func:`run_command`, its output appended to ``log.txt``), and ends in
one result file, ``result.json`` (:data:`RESULT_FILE`), written atomically:

* ``{"status": "ok", ...}`` with what the cell's function returned (metrics), or
* ``{"status": "failed", "error": ..., "traceback": ...}`` (+ ``returncode`` and ``log_tail``
  for a subprocess that failed), and the grid goes on with the next cell.

Running the grid again resumes it: a cell whose ``result.json`` says ``ok`` is skipped, and so is
a failed one unless ``retry_failed`` (the ``--retry-failed`` flag of every study's command
line). A cell without a readable ``result.json`` (never run, interrupted) runs.

Result folders written before this runner existed hold ``results.json`` (CPP study) or
``cell.json`` (Table 5): they are read as the cell's result (migration, :data:`LEGACY_FILES`),
and the next write of that cell goes to ``result.json``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from seethroughnet.utils.atomic import write_json_atomic

__all__ = [
    "RESULT_FILE",
    "LOG_FILE",
    "LEGACY_FILES",
    "Cell",
    "CellError",
    "read_result",
    "write_json",
    "needs_run",
    "run_command",
    "run_grid",
]

logger = logging.getLogger("seethroughnet.experiments.grid")

#: The one result file of a cell.
RESULT_FILE = "result.json"
#: The log of a cell's subprocess (every attempt appended).
LOG_FILE = "log.txt"
#: Result files of the runners this one replaced, read when ``result.json`` is absent.
LEGACY_FILES = ("results.json", "cell.json")


@dataclass
class Cell:
    """One run of a grid.

    ``name``: its folder below the grid's output folder (may contain ``/``); ``record``: fields
    copied into its ``result.json`` (what the cell is, e.g. detector / init / seed); ``info``:
    anything the study's cell function needs (a config, overrides, a command)."""

    name: str
    record: Dict[str, object] = field(default_factory=dict)
    info: Dict[str, object] = field(default_factory=dict)

    def dir(self, out_dir: str) -> str:
        return os.path.join(out_dir, self.name)


class CellError(RuntimeError):
    """A cell could not run; the message says why. ``returncode`` / ``log_tail``: of its
    subprocess, when there was one."""

    def __init__(self, message: str, returncode=None, log_tail: str = ""):
        super().__init__(message)
        self.returncode = returncode
        self.log_tail = log_tail


def write_json(path: str, obj) -> None:
    """A cell's record: ``obj`` as indented, key-sorted JSON at ``path``, atomically."""
    write_json_atomic(path, obj, indent=1, sort_keys=True)


def read_result(cell_dir: str) -> Optional[dict]:
    """The cell's ``result.json`` (or a legacy ``results.json`` / ``cell.json``); ``None`` if
    there is none or it cannot be read (the cell then runs again)."""
    for name in (RESULT_FILE,) + LEGACY_FILES:
        path = os.path.join(cell_dir, name)
        if os.path.isfile(path):
            try:
                with open(path) as f:
                    rec = json.load(f)
            except (OSError, ValueError):
                logger.warning("%s cannot be read; the cell runs again", path)
                return None
            return rec if isinstance(rec, dict) else None
    return None


def needs_run(record: Optional[dict], retry_failed: bool = False) -> bool:
    """Whether a cell with this result runs: no result, or a failed one with ``retry_failed``."""
    if record is None:
        return True
    if record.get("status") == "ok":
        return False
    return retry_failed or record.get("status") not in ("failed",)


def _tail(path: str, n: int = 25, start: int = 0) -> str:
    try:
        with open(path, errors="replace") as f:
            f.seek(start)
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def last_exception(path: str, start: int = 0) -> str:
    """The last ``SomeError: message`` line of a log from byte ``start`` on (the exception that
    ended this attempt)."""
    pat = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.*)$")
    found = ""
    for line in _tail(path, 400, start).splitlines():
        m = pat.match(line.strip())
        if m:
            found = m.group(1)
    return found[:500] or "no exception found in the log"


def run_command(
    cmd: Sequence[str],
    cell_dir: str,
    *,
    timeout: Optional[float] = None,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    notes: Sequence[str] = (),
    what: str = "the cell",
) -> None:
    """Run ``cmd`` as the cell's subprocess, its output appended to ``cell_dir/log.txt`` (an
    earlier attempt's log is kept above this one, after a ``$ command`` line and ``# notes``).
    Raises :class:`CellError` ("``what`` exited with N: <the last exception line of this
    attempt>", with the return code and the log's tail) if it exits non-zero or runs past
    ``timeout`` seconds."""
    os.makedirs(cell_dir, exist_ok=True)
    log_path = os.path.join(cell_dir, LOG_FILE)
    start = os.path.getsize(log_path) if os.path.isfile(log_path) else 0
    with open(log_path, "a") as log:
        log.write(("\n" if start else "") + "$ " + " ".join(str(c) for c in cmd) + "\n")
        for note in notes:
            log.write(f"# {note}\n")
        log.flush()
        try:
            rc = subprocess.run(
                list(cmd),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                timeout=timeout,
            ).returncode
        except subprocess.TimeoutExpired:
            raise CellError(
                f"{what} timed out after {timeout} s (log: {log_path})",
                "timeout",
                _tail(log_path, 25, start),
            ) from None
    if rc != 0:
        raise CellError(
            f"{what} exited with {rc}: {last_exception(log_path, start)} " f"(log: {log_path})",
            rc,
            _tail(log_path, 25, start),
        )


def _failure(e: BaseException) -> dict:
    rec = {
        "status": "failed",
        "error": f"{type(e).__name__}: {e}",
        "traceback": traceback.format_exc(limit=5),
    }
    if isinstance(e, CellError):
        rec["error"] = str(e)
        if e.returncode is not None:
            rec["returncode"] = e.returncode
        if e.log_tail:
            rec["log_tail"] = e.log_tail[-4000:]
    return rec


def run_grid(
    cells: Sequence[Cell],
    out_dir: str,
    run_cell: Callable[[Cell, str], Optional[dict]],
    *,
    retry_failed: bool = False,
    parallel: int = 1,
    dry_run: bool = False,
    after_cell: Optional[Callable[[Dict[str, dict]], None]] = None,
    describe: Optional[Callable[[Cell], str]] = None,
    on_interrupt: Optional[Callable[[], None]] = None,
) -> Dict[str, dict]:
    """Run the cells that :func:`needs_run` says to, in the given order, ``parallel`` at a time.

    ``run_cell(cell, cell_dir)`` returns the cell's results (a dict, merged into the record) or
    raises; either way ``result.json`` is written (``seconds``: its wall time) and the grid goes
    on. ``KeyboardInterrupt`` stops the grid (the interrupted cell has no result and runs next
    time). ``after_cell(records)`` is called after every cell (e.g. to re-render the tables);
    ``dry_run`` only logs what would run (``describe(cell)``). ``on_interrupt()`` is called on
    ``KeyboardInterrupt`` before waiting for the cells in flight (an executor's ``stop``: cells
    waiting for a cluster job stop waiting, unrecorded). Returns ``{cell.name: record}`` for
    every cell with a result."""
    records: Dict[str, dict] = {}
    todo: List[Cell] = []
    for cell in cells:
        old = read_result(cell.dir(out_dir))
        if needs_run(old, retry_failed):
            todo.append(cell)
        else:
            records[cell.name] = old
    logger.info("%d cells, %d done, %d to run", len(cells), len(cells) - len(todo), len(todo))
    if dry_run:
        for cell in todo:
            logger.info("  would run %s%s", cell.name, f": {describe(cell)}" if describe else "")
        return records
    lock = threading.Lock()
    count = iter(range(1, len(todo) + 1))

    def one(cell: Cell) -> None:
        cell_dir = cell.dir(out_dir)
        os.makedirs(cell_dir, exist_ok=True)
        with lock:
            logger.info("[%d/%d] %s: running in %s", next(count), len(todo), cell.name, cell_dir)
        t0 = time.time()
        try:
            out = run_cell(cell, cell_dir) or {}
            rec = {**cell.record, "status": "ok", **out}
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 -- a failing cell is recorded, the grid goes on
            rec = {**cell.record, **_failure(e)}
        rec["seconds"] = round(time.time() - t0, 1)
        write_json(os.path.join(cell_dir, RESULT_FILE), rec)
        with lock:
            records[cell.name] = rec
            if rec.get("status") == "ok":
                logger.info("%s: ok (%s s)", cell.name, rec["seconds"])
            else:
                logger.error("%s: failed: %s", cell.name, rec.get("error"))
            if after_cell is not None:
                after_cell(records)

    if parallel <= 1:
        for cell in todo:
            one(cell)
    else:
        pool = ThreadPoolExecutor(parallel)
        try:
            list(pool.map(one, todo))
        except KeyboardInterrupt:
            if on_interrupt is not None:
                on_interrupt()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return records
