"""Cluster runs through submitit (issue #18), end to end on CPU with submitit's local executor:
a grid's cells as jobs (failure recorded with its job, retried, resumed), a real 2-cell CPP grid
gathered, one tiny training job submitted by ``tools/submit.py``'s code path, and a training job
killed mid-run, resubmitted and resumed from its checkpoint, and one preempted (USR2), requeued
and resumed. Plus the pieces that need a cluster
checked without one: the distributed launch options, the requeue hook, the sbatch parameters and
the errors without submitit / sbatch."""

import argparse
import json
import os
import re
import signal
import sys
import time

import pytest

submitit = pytest.importorskip("submitit")

from seethroughnet.experiments import cpp_study, executors, grid, slurm  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_CONFIG = os.path.join(REPO, "tests/configs/seethroughnet_tiny.yaml")
CPP_CONFIG = "projects/SeeThroughNet/configs/CPP-Plugin/CamVid-CPU/pspnet_R18_camvid.yaml"

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


def _local_executor(**kw):
    kw.setdefault("gpus_per_node", 0)
    kw.setdefault("time_min", 10)
    kw.setdefault("poll_s", 0.2)
    return executors.SubmititExecutor("local", **kw)


# ------------------------------------------------------------------------------ without a cluster
def test_dist_arguments_from_the_job_environment():
    assert slurm.dist_arguments(1, 0, ["n1"], "123") == [
        "--num-machines",
        "1",
        "--machine-rank",
        "0",
        "--dist-url",
        "auto",
    ]
    a = slurm.dist_arguments(2, 1, ["gpu-a", "gpu-b"], "4242_0")
    assert a[:4] == ["--num-machines", "2", "--machine-rank", "1"]
    assert a[5].startswith("tcp://gpu-a:") and a == slurm.dist_arguments(
        2, 1, ["gpu-a", "gpu-b"], "4242_0"
    )  # the same port on every node and after a requeue


def test_train_job_argv_and_requeue_with_resume():
    job = slurm.TrainJob(TINY_CONFIG, ["--config-file", "c.yaml", "OUTPUT_DIR", "o"], 8)
    argv = job.argv(2, 0, ["h0", "h1"], "77")
    assert argv[:2] == ["--num-gpus", "8"] and "--resume" not in argv
    assert argv[-4:] == ["--config-file", "c.yaml", "OUTPUT_DIR", "o"]  # flags before overrides
    delayed = job.checkpoint()
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    again = delayed.function
    assert again.resume and again.train_args == job.train_args and again.gpus_per_node == 8
    assert "--resume" in again.argv(1, 0, ["h0"], "77")
    with pytest.raises(ValueError, match="OUTPUT_DIR"):
        slurm.output_dir_of(["--config-file", "c.yaml"])
    with pytest.raises(ValueError, match="set by tools/submit.py"):
        slurm.check_train_args(["--num-gpus", "2", "OUTPUT_DIR", "o"])


@pytest.mark.parametrize("nodes", [1, 2])
def test_sbatch_file_for_one_8_gpu_node_and_for_2_nodes(monkeypatch, tmp_path, nodes):
    """The documented resources reach the sbatch file (docs/cluster.md)."""
    monkeypatch.setattr(executors.shutil, "which", lambda name: "/usr/bin/" + name)
    ex = executors.SubmititExecutor(
        "slurm",
        nodes=nodes,
        gpus_per_node=8,
        cpus_per_task=64,
        mem_gb=480,
        partition="gpu",
        time_min=1440,
    )
    auto = ex.make_executor(str(tmp_path), "stn_w48")
    text = auto._executor._make_submission_file_text("python -m x", "%j")
    for line in (
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --cpus-per-task=64",
        "#SBATCH --mem=480GB",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=1440",
        "#SBATCH --job-name=stn_w48",
        "--signal=USR2",
    ):
        assert line in text, (line, text)
    assert "export PYTHONPATH=" in text  # the job imports the project without pip install -e


def test_a_cell_job_asks_for_the_cells_gpus_at_most_a_nodes(monkeypatch, tmp_path):
    """Grid cells on SLURM: each job's sbatch file asks for its cell's GPUs (the dataset's
    ``gpus``), not the node's; a grid whose cells ask for more than ``--gpus-per-node`` stops
    before submitting anything, naming both numbers."""
    monkeypatch.setattr(executors.shutil, "which", lambda name: "/usr/bin/" + name)
    ex = executors.SubmititExecutor("slurm", gpus_per_node=8, time_min=60)
    auto = ex.make_executor(str(tmp_path), "cpp_cell", gpus=4)
    text = auto._executor._make_submission_file_text("python -m x", "%j")
    assert "#SBATCH --gpus-per-node=4" in text
    assert ex.parameters("cpp_cell")["gpus_per_node"] == 8  # a job without a cell's GPUs
    grid_file = os.path.join(
        REPO, "projects/SeeThroughNet/configs/CPP-Plugin/grids/table1_full.yaml"
    )
    cells = cpp_study.expand_grid(cpp_study.load_grid(grid_file))
    assert {c["gpus"] for c in cells} == {4}
    cpp_study.check_gpus(cells, ex)
    small = executors.SubmititExecutor("slurm", gpus_per_node=2, time_min=60)
    with pytest.raises(ValueError, match=r"up to 4 GPUs each .* \(--gpus-per-node 2\) has 2"):
        cpp_study.check_gpus(cells, small)
    with pytest.raises(ValueError):  # also before a dry run lists the cells
        cpp_study.run_grid(cpp_study.load_grid(grid_file), str(tmp_path), executor=small)
    assert os.listdir(tmp_path) == []


def test_slurm_without_sbatch_or_submitit_says_what_to_do(monkeypatch):
    args = argparse.Namespace(
        executor="slurm",
        nodes=1,
        gpus_per_node=1,
        cpus_per_task=None,
        mem_gb=None,
        partition=None,
        time_min=None,
        max_concurrent=None,
        submitit_folder=None,
    )
    monkeypatch.setattr(executors.shutil, "which", lambda name: "/usr/bin/" + name)
    with pytest.raises(ValueError, match="needs --time-min"):
        executors.executor_from_args(args)
    with pytest.raises(ValueError, match="tools/submit.py"):
        executors.executor_from_args(
            argparse.Namespace(**{**vars(args), "nodes": 2, "time_min": 60}), 1
        )
    monkeypatch.setattr(executors.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="no `sbatch`.*--executor submitit-local"):
        executors.executor_from_args(args)
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    with pytest.raises(RuntimeError, match="pip install submitit==1.5.4"):
        executors.executor_from_args(args)
    assert isinstance(
        executors.executor_from_args(argparse.Namespace(executor="local")),
        executors.LocalExecutor,
    )


def test_study_command_lines_take_the_executor_options(monkeypatch, capsys):
    monkeypatch.setattr(executors.shutil, "which", lambda name: None)
    grid_file = os.path.join(
        REPO, "projects/SeeThroughNet/configs/CPP-Plugin/grids/table1_full.yaml"
    )
    rc = cpp_study.main(["run", grid_file, "--executor", "slurm", "--dry-run"])
    assert rc == 2 and "no `sbatch`" in capsys.readouterr().err
    from transfer import table5

    args = table5.build_parser().parse_args(
        ["--executor", "slurm", "--gpus-per-node", "8", "--max-concurrent", "18"]
    )
    assert (args.executor, args.gpus_per_node, args.max_concurrent) == ("slurm", 8, 18)


# ----------------------------------------------------------------- submitit's local executor
class JobRunner:
    """A grid cell function that runs FLAKY as a submitted job."""

    def __init__(self, executor):
        self.executor = executor
        self.calls = []

    def __call__(self, cell, cell_dir):
        self.calls.append(cell.name)
        where = self.executor.run(
            [sys.executable, "-c", FLAKY, cell_dir], cell_dir, what="flaky", name=cell.name
        )
        with open(os.path.join(cell_dir, "metrics.json")) as f:
            return {**json.load(f), **where}


def test_grid_cells_as_jobs_failures_recorded_retried_and_resumed(tmp_path):
    """A 2-cell grid, both cells submitted at once: the failed attempts are recorded with their
    job, --retry-failed resubmits them, and a finished grid submits nothing."""
    ex = _local_executor(max_concurrent=2)
    cells = [grid.Cell("a/s0", record={"seed": 0}), grid.Cell("a/s1", record={"seed": 1})]
    run = JobRunner(ex)
    recs = grid.run_grid(cells, str(tmp_path), run, parallel=ex.max_concurrent)
    for name in ("a/s0", "a/s1"):
        rec = json.loads((tmp_path / name / grid.RESULT_FILE).read_text())
        assert rec["status"] == "failed" and rec["returncode"] == 1, rec
        assert rec["error"].startswith("flaky exited with 1: ValueError: first attempt fails")
        assert "[job " in rec["error"] and "working..." in rec["log_tail"]
        job = json.loads((tmp_path / name / executors.JOB_FILE).read_text())
        assert job["executor"] == "submitit-local" and os.path.isfile(job["job_stdout"])
    run.calls.clear()
    assert grid.run_grid(cells, str(tmp_path), run) and run.calls == []  # failed cells are kept
    recs = grid.run_grid(cells, str(tmp_path), run, retry_failed=True, parallel=2)
    assert sorted(run.calls) == ["a/s0", "a/s1"]
    for name, rec in recs.items():
        assert rec["status"] == "ok" and rec["mIoU"] == 42.0
        assert rec["executor"] == "submitit-local" and rec["host"]
        job = json.loads((tmp_path / name / executors.JOB_FILE).read_text())
        assert rec["job_id"] == job["job_id"]
        log = (tmp_path / name / grid.LOG_FILE).read_text()
        assert f"# job {rec['job_id']} on " in log and log.count("$ ") == 2  # both attempts
    run.calls.clear()
    grid.run_grid(cells, str(tmp_path), run)
    assert run.calls == []


@pytest.fixture(scope="module")
def datasets(make_synthetic_cityscapes):
    return str(make_synthetic_cityscapes(register=False))  # the jobs register it themselves


@pytest.mark.slow
def test_cpp_study_two_cell_grid_as_jobs_is_gathered(datasets, tmp_path, monkeypatch):
    """The CPP study's own cells (``run_cpp_study.py cell``), each a job, gathered into
    results.jsonl with where they ran."""
    monkeypatch.setenv("DETECTRON2_DATASETS", datasets)
    opts = ["SOLVER.MAX_ITER", 2, "SOLVER.IMS_PER_BATCH", 2, "INPUT.MIN_SIZE_TRAIN", "(64,)"]
    opts += ["INPUT.CROP.SIZE", "(64, 64)", "INPUT.MIN_SIZE_TEST", 64, "DATALOADER.NUM_WORKERS", 0]
    opts += ["MODEL.DECODE_HEAD.CHANNELS", 16, "MODEL.CPP_AUX.HIDDEN_CHANNELS", 8]
    g = {
        "models": {
            "psp": {
                "config": CPP_CONFIG,
                "opts": opts,
            }
        },
        "datasets": {
            "cs": {
                "train": "cityscapes_fine_sem_seg_train",
                "test": "cityscapes_fine_sem_seg_val",
                "num_classes": 19,
            }
        },
        "variants": {
            "baseline": {"loss": "upsample_ce", "num_heads": 1},
            "cpp": {"loss": "cpp_kl", "num_heads": 1},
        },
        "seeds": [0],
        "table1": {"baseline": "baseline", "cpp": "cpp"},
    }
    ex = _local_executor(max_concurrent=2)
    records = cpp_study.run_grid(g, str(tmp_path), executor=ex)
    assert len(records) == 2
    for r in records:
        assert r["status"] == "ok", r.get("error")
        assert r["executor"] == "submitit-local" and r["job_id"] and r["host"]
        assert 0.0 <= r["mIoU"] <= 100.0
        # each job asked for its cell's GPUs (the dataset's `gpus`, default 1)
        job = json.loads((tmp_path / r["id"] / executors.JOB_FILE).read_text())
        assert job["parameters"]["gpus_per_node"] == 1
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["job_id"] for x in lines) == sorted(r["job_id"] for r in records)


def _wait_for_first_checkpoint(job, out):
    """Poll until the training job has written its first checkpoint (``last_checkpoint``)."""
    deadline = time.time() + 300
    while not (out / "last_checkpoint").is_file():
        assert not job.done(), open(job.paths.stderr).read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.05)


def _training_pid(job) -> int:
    """The pid of the job's training process, from the line ``TrainJob`` prints first."""
    m = re.search(r"\[submit\] job \S+ node \S+ on \S+ pid (\d+):", job.stdout() or "")
    assert m, (job.stdout() or "")[-3000:]
    return int(m.group(1))


def _train_args(out, *opts):
    return ["--config-file", TINY_CONFIG, "SEED", "5", *map(str, opts), "OUTPUT_DIR", str(out)]


def test_one_training_job_submitted_completes(datasets, tmp_path, monkeypatch):
    """tools/submit.py's path: a tiny SeeThroughNet run as one job; job.json beside the output."""
    monkeypatch.setenv("DETECTRON2_DATASETS", datasets)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "run"
    job = slurm.submit_training(
        "seethroughnet", _train_args(out, "SOLVER.MAX_ITER", 2), _local_executor()
    )
    res = job.result()
    assert res["job_id"] == str(job.job_id) and res["host"] and not res["resumed"]
    assert (out / "model_final.pth").is_file()
    rec = json.loads((out / executors.JOB_FILE).read_text())
    assert rec["job_id"] == str(job.job_id) and rec["executor"] == "submitit-local"
    assert rec["job_stdout"].startswith(str(out / "submitit")) and os.path.isfile(rec["job_stdout"])
    assert "--dist-url auto" in open(rec["job_stdout"]).read()


def test_submit_command_line(tmp_path, capsys):
    assert slurm.main(["--executor", "local", "--", "--config-file", "x"]) == 2
    assert "submits jobs" in capsys.readouterr().err
    rc = slurm.main(["--executor", "submitit-local", "--", "--config-file", TINY_CONFIG])
    assert rc == 2 and "OUTPUT_DIR" in capsys.readouterr().err


@pytest.mark.slow
def test_training_job_killed_mid_run_is_resubmitted_and_resumes(
    datasets, tmp_path, monkeypatch, assert_same_final_weights
):
    """Kill the job's training process once its first checkpoint is on disk, resubmit with
    --resume: training goes
    on from that checkpoint's iteration (not from 0) to the weights of an uninterrupted run."""

    monkeypatch.setenv("DETECTRON2_DATASETS", datasets)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "run"
    args = _train_args(out, "SOLVER.MAX_ITER", 20, "SOLVER.CHECKPOINT_PERIOD", 2)
    job = slurm.submit_training("seethroughnet", args, _local_executor())
    _wait_for_first_checkpoint(job, out)
    # kill the training process as a node failure would (SIGKILL: nothing can catch or ignore it;
    # a cancel's SIGINT is ignored where the test runs in a background shell without job control)
    os.kill(_training_pid(job), signal.SIGKILL)
    while not job.done():
        time.sleep(0.1)
    assert not (out / "model_final.pth").exists(), "the job ended before it could be killed"
    killed_at = (out / "last_checkpoint").read_text().strip()
    done_iter = int(killed_at[len("model_") : -len(".pth")])
    assert 0 < done_iter + 1 < 20

    job2 = slurm.submit_training("seethroughnet", args, _local_executor(), resume=True)
    res = job2.result()
    assert res["resumed"] and job2.job_id != job.job_id
    assert (out / "model_final.pth").is_file()
    rec = json.loads((out / executors.JOB_FILE).read_text())
    assert [j["job_id"] for j in rec["jobs"]] == [str(job.job_id), str(job2.job_id)]
    log2 = open(job2.paths.stdout).read() + open(job2.paths.stderr).read()
    assert "--resume" in log2 and killed_at in log2, log2[-3000:]
    # the second job continues after the checkpoint's iteration instead of starting over
    assert f"Starting training from iteration {done_iter + 1}" in log2, log2[-3000:]
    assert "Starting training from iteration 0" not in log2

    # and ends where an uninterrupted run ends (the project's exact resume)
    straight = tmp_path / "straight"
    args = _train_args(straight, "SOLVER.MAX_ITER", 20, "SOLVER.CHECKPOINT_PERIOD", 2)
    slurm.submit_training("seethroughnet", args, _local_executor()).result()
    assert_same_final_weights(straight, out)


def test_a_stopped_grid_runner_waits_for_its_queued_slurm_job_instead_of_resubmitting(
    monkeypatch, tmp_path
):
    """job.json of a cell whose job was queued by an earlier (stopped) run: the next run waits for
    that job; once it is over, a later run submits a new one."""
    monkeypatch.setattr(executors.shutil, "which", lambda name: "/usr/bin/" + name)
    ex = executors.SubmititExecutor("slurm", poll_s=0)
    cell = tmp_path / "cell"
    cell.mkdir()
    folder = tmp_path / "jobs"
    (cell / executors.JOB_FILE).write_text(
        json.dumps({"executor": "slurm", "job_id": "123", "submitit_folder": str(folder)})
    )

    class FakeJob:
        def __init__(self, folder, job_id):
            self.job_id = job_id
            self.paths = submitit.core.utils.JobPaths(folder, job_id)
            self.state = "RUNNING"

        def done(self):
            return True

        def result(self):
            return {"host": "node7", "job_id": self.job_id}

    ex.submitit = argparse.Namespace(SlurmJob=FakeJob)
    submitted = []
    monkeypatch.setattr(ex, "make_executor", lambda *a: "executor")
    monkeypatch.setattr(ex, "submit", lambda *a: submitted.append(a) or 1 / 0)
    where = ex.run(["true"], str(cell))
    assert where["job_id"] == "123" and where["host"] == "node7" and not submitted
    assert json.loads((cell / executors.JOB_FILE).read_text())["finished"] is True
    with pytest.raises(ZeroDivisionError):  # over: the next run submits a new job
        ex.run(["true"], str(cell))
    assert submitted


@pytest.mark.slow
def test_preempted_training_job_is_requeued_and_resumes(datasets, tmp_path, monkeypatch):
    """SLURM's preemption / time-out signal (USR2) to a running training job: submitit calls
    TrainJob.checkpoint, the job is requeued (same job id) with --resume and ends the training
    from the last checkpoint."""
    monkeypatch.setenv("DETECTRON2_DATASETS", datasets)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "run"
    args = _train_args(out, "SOLVER.MAX_ITER", 20, "SOLVER.CHECKPOINT_PERIOD", 2)
    job = slurm.submit_training("seethroughnet", args, _local_executor())
    _wait_for_first_checkpoint(job, out)
    os.kill(_training_pid(job), signal.SIGUSR2)
    res = job.result()
    assert res["resumed"] and res["job_id"] == str(job.job_id)  # the same job, requeued
    assert (out / "model_final.pth").is_file()
    log = job.stdout() + job.stderr()
    assert "preempted" in log and log.count("[submit] job") == 2
    m = re.search(
        r"Starting training from iteration (\d+)\D.*Starting training from iteration (\d+)",
        (out / "log.txt").read_text(),
        re.S,
    )
    assert m and m.group(1) == "0" and int(m.group(2)) > 0, "the requeued job started over"


def test_interrupted_grid_runner_stops_waiting_and_records_nothing(tmp_path):
    """Ctrl-C of a grid runner whose cells are jobs: it returns at once, the cells stay
    unrecorded (their jobs are not over: the next run waits for them)."""
    import threading

    ex = _local_executor(max_concurrent=2)
    cells = [grid.Cell("a"), grid.Cell("b")]

    def run_cell(cell, cell_dir):
        return ex.run([sys.executable, "-c", "import time; time.sleep(10)"], cell_dir)

    def interrupt_when_queued():
        while not all((tmp_path / c.name / executors.JOB_FILE).is_file() for c in cells):
            time.sleep(0.05)
        interrupted.append(time.time())
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # Ctrl-C

    interrupted = []
    # Python leaves SIGINT ignored when it starts with SIGINT ignored (a background job of a shell
    # without job control, as CI may run it): give it the usual Ctrl-C handler for this test
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=interrupt_when_queued, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            grid.run_grid(cells, str(tmp_path), run_cell, parallel=2, on_interrupt=ex.stop)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.time() - interrupted[0] < 3  # not the jobs' 10 s
    for c in cells:
        assert grid.read_result(str(tmp_path / c.name)) is None
        job = json.loads((tmp_path / c.name / executors.JOB_FILE).read_text())
        assert "finished" not in job
        os.kill(int(job["job_id"]), signal.SIGTERM)  # a local job's id is its controller's pid
