"""seethroughnet.experiments.grid: one subprocess per cell, result.json, resume, retry of failed
cells, failed-cell records (return code, log tail), legacy result files."""

import json
import sys

import pytest

from seethroughnet.experiments import grid
from seethroughnet.experiments.report import fmt_mean_std, markdown_table, mean_std

# fails on its first attempt (leaves a marker), succeeds on the next one
FLAKY = """
import json, os, sys
out = sys.argv[1]
marker = os.path.join(out, "attempted")
if not os.path.exists(marker):
    open(marker, "w").close()
    print("working...")
    raise ValueError("first attempt fails")
json.dump({"mIoU": 42.0}, open(os.path.join(out, "metrics.json"), "w"))
"""


class Runner:
    """A cell function that runs FLAKY as the cell's subprocess and counts the runs."""

    def __init__(self):
        self.calls = []

    def __call__(self, cell, cell_dir):
        self.calls.append(cell.name)
        grid.run_command([sys.executable, "-c", FLAKY, cell_dir], cell_dir, what="flaky")
        with open(f"{cell_dir}/metrics.json") as f:
            return json.load(f)


def _cells():
    return [grid.Cell("a/s0", record={"seed": 0}), grid.Cell("a/s1", record={"seed": 1})]


def test_failed_cell_is_recorded_then_retried_and_finished_cells_are_not_rerun(tmp_path):
    out = str(tmp_path)
    run = Runner()
    recs = grid.run_grid(_cells(), out, run)
    assert run.calls == ["a/s0", "a/s1"]
    rec = json.loads((tmp_path / "a" / "s0" / grid.RESULT_FILE).read_text())
    assert rec == recs["a/s0"]
    assert rec["status"] == "failed" and rec["seed"] == 0 and rec["returncode"] == 1
    assert rec["error"].startswith("flaky exited with 1: ValueError: first attempt fails")
    assert "working..." in rec["log_tail"] and "seconds" in rec
    # resume without --retry-failed: the failed cells stay failed, nothing runs
    run.calls.clear()
    recs = grid.run_grid(_cells(), out, run)
    assert run.calls == [] and all(r["status"] == "failed" for r in recs.values())
    # --retry-failed: both run again and now succeed; both attempts are in the log
    recs = grid.run_grid(_cells(), out, run, retry_failed=True)
    assert run.calls == ["a/s0", "a/s1"]
    seconds = recs["a/s1"]["seconds"]
    assert recs["a/s1"] == {"seed": 1, "status": "ok", "mIoU": 42.0, "seconds": seconds}
    assert (tmp_path / "a" / "s0" / grid.LOG_FILE).read_text().count("$ ") == 2
    # finished cells are never run again, not even with --retry-failed
    run.calls.clear()
    grid.run_grid(_cells(), out, run, retry_failed=True)
    assert run.calls == []
    assert not list(tmp_path.glob("**/*.part*"))  # atomic writes leave no temporary files


def test_interrupted_cell_has_no_result_and_runs_next_time(tmp_path):
    calls = []

    def run(cell, cell_dir):
        calls.append(cell.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return {"x": 1}

    with pytest.raises(KeyboardInterrupt):
        grid.run_grid(_cells(), str(tmp_path), run)
    assert grid.read_result(str(tmp_path / "a" / "s0"))["status"] == "ok"
    assert grid.read_result(str(tmp_path / "a" / "s1")) is None
    calls.clear()
    recs = grid.run_grid(_cells(), str(tmp_path), lambda c, d: calls.append(c.name) or {})
    assert calls == ["a/s1"] and set(recs) == {"a/s0", "a/s1"}


def test_timeout_parallel_dry_run_and_after_cell(tmp_path):
    slow = [sys.executable, "-c", "import time; time.sleep(30)"]
    rendered = []

    def run(cell, cell_dir):
        if cell.name == "a/s0":
            grid.run_command(slow, cell_dir, timeout=0.5)
        return {}

    grid.run_grid(_cells(), str(tmp_path), run, dry_run=True)
    assert not (tmp_path / "a").exists()
    recs = grid.run_grid(
        _cells(),
        str(tmp_path),
        run,
        parallel=2,
        after_cell=lambda records: rendered.append(len(records)),
    )
    assert recs["a/s0"]["status"] == "failed" and recs["a/s0"]["returncode"] == "timeout"
    assert "timed out after 0.5 s" in recs["a/s0"]["error"] and recs["a/s1"]["status"] == "ok"
    assert sorted(rendered) == [1, 2]


def test_result_files_of_the_earlier_runners_are_read(tmp_path):
    for name, legacy in (("cpp", "results.json"), ("t5", "cell.json")):
        (tmp_path / name).mkdir()
        (tmp_path / name / legacy).write_text(json.dumps({"status": "ok", "mIoU": 1.0}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / grid.RESULT_FILE).write_text("{not json")
    cells = [grid.Cell("cpp"), grid.Cell("t5"), grid.Cell("broken")]
    calls = []
    recs = grid.run_grid(cells, str(tmp_path), lambda c, d: calls.append(c.name) or {"mIoU": 2.0})
    assert calls == ["broken"]  # unreadable: runs again
    assert recs["cpp"]["mIoU"] == 1.0 and recs["t5"]["mIoU"] == 1.0
    assert recs["broken"]["mIoU"] == 2.0


def test_report_helpers():
    assert mean_std([]) == (None, None) and mean_std([2.0]) == (2.0, None)
    m, s = mean_std([1.0, 2.0, 3.0])
    assert m == 2.0 and s == pytest.approx(1.0)
    assert fmt_mean_std(m, s) == "2.00 ± 1.00" and fmt_mean_std(None) == "n/a"
    assert fmt_mean_std(float("nan"), 1.0) == "n/a" and fmt_mean_std(1.0, float("nan"), 1) == "1.0"
    assert fmt_mean_std(0.5, None, 2, sign=True) == "+0.50"
    table = markdown_table(["a", "b"], [[1, 2]])
    assert table.splitlines() == ["| a   | b   |", "|-----|-----|", "| 1   | 2   |"]


# ------------------------------------------------------------------ GPUs of the local executor
# records the GPUs it was given and when it ran
HOLD = """
import json, os, sys, time
t0 = time.time()
time.sleep(0.6)
json.dump({"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": t0, "end": time.time()},
          open(os.path.join(sys.argv[1], "gpus.json"), "w"))
"""


def test_local_executor_gives_concurrent_cells_disjoint_gpus(tmp_path):
    """4 cells of 2 GPUs each, 3 at a time, on a 4-GPU node: never more than 2 cells run at once,
    and cells that overlap in time hold disjoint GPUs (CUDA_VISIBLE_DEVICES)."""
    from seethroughnet.experiments.executors import LocalExecutor

    ex = LocalExecutor(devices=["0", "1", "2", "3"])

    def run(cell, cell_dir):
        where = ex.run([sys.executable, "-c", HOLD, cell_dir], cell_dir, gpus=2)
        with open(f"{cell_dir}/gpus.json") as f:
            return {**json.load(f), **where}

    cells = [grid.Cell(f"c{i}") for i in range(4)]
    recs = grid.run_grid(cells, str(tmp_path), run, parallel=3)
    assert all(r["status"] == "ok" for r in recs.values())
    spans = [(r["start"], r["end"], set(r["visible"].split(","))) for r in recs.values()]
    for r in recs.values():
        assert r["visible"] == ",".join(r["devices"]) and len(r["devices"]) == 2
    for i, (s1, e1, g1) in enumerate(spans):
        for s2, e2, g2 in spans[i + 1 :]:
            if s1 < e2 and s2 < e1:  # ran at the same time
                assert not g1 & g2, spans
    # the pool is whole again
    assert sorted(ex.pool().acquire(4)) == ["0", "1", "2", "3"]


def test_gpu_pool_waits_for_free_gpus_and_refuses_more_than_the_node_has():
    import threading

    from seethroughnet.experiments.executors import GPUPool

    pool = GPUPool(["3", "5"])
    first = pool.acquire(2)
    assert first == ["3", "5"]
    got = []
    t = threading.Thread(target=lambda: got.append(pool.acquire(1)))
    t.start()
    t.join(0.3)
    assert t.is_alive() and not got  # waits while both are taken
    pool.release(first)
    t.join(5)
    assert got == [["3"]]
    with pytest.raises(ValueError, match="3 GPUs asked for, the node has 2"):
        pool.acquire(3)


def test_local_executor_without_gpus_runs_one_process_cells_as_before(tmp_path, monkeypatch):
    """No GPU (CUDA_VISIBLE_DEVICES empty): a 1-GPU cell runs on the CPU with the environment it
    was given; ``gpus=None`` (Table 5's commands) never gets an assignment."""
    from seethroughnet.experiments.executors import LocalExecutor, visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aa, GPU-bb")
    assert visible_gpus() == ["GPU-aa", "GPU-bb"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    ex = LocalExecutor()
    where = ex.run([sys.executable, "-c", HOLD, str(tmp_path)], str(tmp_path), gpus=1)
    assert "devices" not in where
    assert json.loads((tmp_path / "gpus.json").read_text())["visible"] == ""
    where = LocalExecutor(devices=["0"]).run(
        [sys.executable, "-c", HOLD, str(tmp_path)], str(tmp_path), env={"A": "1"}
    )
    assert "devices" not in where
    assert json.loads((tmp_path / "gpus.json").read_text())["visible"] is None
