"""Where a grid cell's command runs: here, or as a cluster job through ``submitit``.

Both study runners (``tools/run_cpp_study.py run``, ``python -m transfer.run_table5``) build one
command line per cell and hand it to an executor's :meth:`run`; the grid runner
(:mod:`seethroughnet.experiments.grid`) does the rest the same way whatever the executor:
``result.json`` per cell, resume, ``--retry-failed``, gathering.

* :class:`LocalExecutor` (``--executor local``, the default): the command runs as a subprocess of
  this process (:func:`~seethroughnet.experiments.grid.run_command`); a command that asks for
  ``gpus`` GPUs gets that many of the node's GPUs to itself (``CUDA_VISIBLE_DEVICES``), and waits
  while cells running in parallel hold them;
* :class:`SubmititExecutor` (``--executor slurm``): one SLURM job per cell, submitted through
  submitit, ``--max-concurrent`` jobs in flight at a time (the grid's ``parallel``); the job runs
  the same command on its node (:class:`CommandJob`), its output appended to the cell's
  ``log.txt``; on preemption or time-out the job is requeued and the command runs again (the
  cells resume from their last checkpoint);
* ``--executor submitit-local``: the same code path with submitit's local executor (jobs are local
  processes), for tests and for a machine without SLURM.

Every executor returns ``{"executor", "job_id", "host"}`` (+ ``job_stdout`` / ``job_stderr`` for
submitit), merged into the cell's ``result.json``; a submitted job is also recorded in
``<cell>/job.json`` as soon as it is queued. :func:`add_executor_arguments` /
:func:`executor_from_args` are the one command-line helper both studies use.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import shlex
import shutil
import socket
import threading
import time
from typing import Dict, List, Mapping, Optional, Sequence

from seethroughnet.experiments import grid as grid_runner

__all__ = [
    "EXECUTORS",
    "JOB_FILE",
    "LocalExecutor",
    "GPUPool",
    "visible_gpus",
    "SubmititExecutor",
    "CommandJob",
    "require_submitit",
    "add_executor_arguments",
    "executor_from_args",
]

logger = logging.getLogger("seethroughnet.experiments.executors")

#: The folder that holds the ``seethroughnet`` package, and the repository root (``transfer``).
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPO = os.path.dirname(os.path.dirname(PACKAGE_ROOT))
_ENV_LOCK = threading.Lock()
#: SLURM states of a job that is not over (an earlier grid run's job is waited for, not repeated).
SLURM_ACTIVE_STATES = frozenset(
    ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "SUSPENDED")
)
#: The ``--executor`` choices.
EXECUTORS = ("local", "slurm", "submitit-local")
#: A submitted cell's job record (job id, log paths), written when the job is queued.
JOB_FILE = "job.json"


def require_submitit(kind: str = "slurm"):
    """``import submitit``, or a clear error saying how to install it; for ``kind="slurm"`` also
    check that this machine can submit SLURM jobs (``sbatch`` on the PATH)."""
    try:
        import submitit
    except ImportError:
        raise RuntimeError(
            f"--executor {kind} needs the submitit package: pip install submitit==1.5.4 "
            "(pinned in requirements.txt; `make install` installs it)"
        ) from None
    if kind == "slurm" and shutil.which("sbatch") is None:
        raise RuntimeError(
            "--executor slurm: no `sbatch` on this machine's PATH; run the command on a SLURM "
            "login node, or use --executor local (subprocesses here) or --executor submitit-local "
            "(submitit's local executor)"
        )
    return submitit


def visible_gpus() -> List[str]:
    """This node's GPUs as ``CUDA_VISIBLE_DEVICES`` lists them (where set: its entries as given,
    indices or UUIDs; an empty value: none), else ``0 .. torch.cuda.device_count() - 1``."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is not None:
        return [v.strip() for v in value.split(",") if v.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


class GPUPool:
    """The node's GPUs, handed out to concurrent cells: :meth:`acquire` blocks until ``n`` are
    free and returns them (the lowest ids first), :meth:`release` gives them back."""

    def __init__(self, devices: Sequence[str]):
        self.devices = list(devices)
        self._free = list(self.devices)
        self._cond = threading.Condition()

    def acquire(self, n: int) -> List[str]:
        if n > len(self.devices):
            raise ValueError(f"{n} GPUs asked for, the node has {len(self.devices)}")
        with self._cond:
            while len(self._free) < n:
                self._cond.wait()
            got = sorted(self._free, key=self.devices.index)[:n]
            for d in got:
                self._free.remove(d)
            return got

    def release(self, devices: Sequence[str]) -> None:
        with self._cond:
            self._free.extend(devices)
            self._cond.notify_all()


class LocalExecutor:
    """The cell's command runs as a subprocess of this process, on GPUs of its own.

    ``devices``: the node's GPU ids (default :func:`visible_gpus`); a command asking for ``gpus``
    GPUs waits until that many are free and runs with ``CUDA_VISIBLE_DEVICES`` set to them, so
    cells in parallel never share a GPU. ``cpu_gpus=N``: a CPU stand-in for an N-GPU node (tests):
    N pretend GPUs are handed out the same way, and the command runs with
    ``CUDA_VISIBLE_DEVICES=""`` (no CUDA: detectron2's launch uses gloo, one process per pretend
    GPU). A 1-GPU command on a node without GPUs runs on the CPU without an assignment."""

    name = "local"

    def __init__(self, devices: Optional[Sequence[str]] = None, cpu_gpus: Optional[int] = None):
        self.cpu_gpus = int(cpu_gpus) if cpu_gpus else None
        if self.cpu_gpus:
            devices = [str(i) for i in range(self.cpu_gpus)]
        self._devices = None if devices is None else [str(d) for d in devices]
        self._pool: Optional[GPUPool] = None
        self._pool_lock = threading.Lock()

    def devices(self) -> List[str]:
        if self._devices is None:
            self._devices = visible_gpus()
        return list(self._devices)

    def gpus_available(self) -> int:
        """How many GPUs this node has (or the CPU stand-in pretends to have)."""
        return len(self.devices())

    def describe_gpus(self) -> str:
        if self.cpu_gpus:
            return f"the CPU stand-in (--cpu-gpus {self.cpu_gpus})"
        return f"this node ({socket.gethostname()}, CUDA_VISIBLE_DEVICES / torch.cuda)"

    def pool(self) -> GPUPool:
        with self._pool_lock:
            if self._pool is None:
                self._pool = GPUPool(self.devices())
            return self._pool

    def run(
        self,
        cmd: Sequence[str],
        cell_dir: str,
        *,
        timeout: Optional[float] = None,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        notes: Sequence[str] = (),
        what: str = "the cell",
        name: Optional[str] = None,
        gpus: Optional[int] = None,
    ) -> dict:
        """Run ``cmd`` (see :func:`~seethroughnet.experiments.grid.run_command`, which raises
        :class:`~seethroughnet.experiments.grid.CellError` on failure) on ``gpus`` GPUs of its own;
        returns where it ran (``devices``: the GPU ids it had, ``cpu_standin`` for the CPU
        stand-in). ``gpus=None``: no assignment, the command sees every GPU of the node (a
        command that starts its own processes on them, e.g. Table 5's ``--num-gpus``)."""
        if gpus is None or (not self.devices() and int(gpus) <= 1):
            # no assignment, or no GPU here: the command runs as it is (on the CPU without GPUs)
            grid_runner.run_command(
                cmd, cell_dir, timeout=timeout, env=env, cwd=cwd, notes=notes, what=what
            )
            return {"executor": self.name, "job_id": None, "host": socket.gethostname()}
        pool = self.pool()
        got = pool.acquire(max(1, int(gpus)))
        try:
            run_env = dict(os.environ if env is None else env)
            visible = "" if self.cpu_gpus else ",".join(got)
            run_env["CUDA_VISIBLE_DEVICES"] = visible
            where = f"GPUs {got}" + (
                " of the CPU stand-in (gloo on the CPU)" if self.cpu_gpus else ""
            )
            grid_runner.run_command(
                cmd,
                cell_dir,
                timeout=timeout,
                env=run_env,
                cwd=cwd,
                notes=list(notes) + [f"{where}: CUDA_VISIBLE_DEVICES={visible!r}"],
                what=what,
            )
        finally:
            pool.release(got)
        out = {"executor": self.name, "job_id": None, "host": socket.gethostname()}
        out["devices"] = got
        if self.cpu_gpus:
            out["cpu_standin"] = True
        return out


class CommandJob:
    """What a submitted cell's job runs on its node: ``cmd`` in ``cwd`` with this node's
    environment plus ``env_updates``, its output appended to ``<cell_dir>/log.txt`` (as
    :func:`~seethroughnet.experiments.grid.run_command` does locally). Returns ``{"host",
    "job_id"}``; raises :class:`~seethroughnet.experiments.grid.CellError` if the command fails.

    :meth:`checkpoint` is submitit's requeue hook (preemption, time-out): the same command runs
    again in the requeued job; the cells' commands resume from their last checkpoint."""

    def __init__(
        self,
        cmd: Sequence[str],
        cell_dir: str,
        *,
        env_updates: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        timeout: Optional[float] = None,
        notes: Sequence[str] = (),
        what: str = "the cell",
    ):
        self.cmd = [str(c) for c in cmd]
        self.cell_dir = cell_dir
        self.env_updates = dict(env_updates or {})
        self.cwd = cwd
        self.timeout = timeout
        self.notes = list(notes)
        self.what = what

    def __call__(self) -> dict:
        import submitit

        job_env = submitit.JobEnvironment()
        host = socket.gethostname()
        notes = self.notes + [f"job {job_env.job_id} on {host}"]
        env = dict(os.environ, **self.env_updates)
        # the command's own child: stopped with the job (a cancelled local job gets SIGINT)
        grid_runner.run_command(
            self.cmd,
            self.cell_dir,
            timeout=self.timeout,
            env=env,
            cwd=self.cwd,
            notes=notes,
            what=self.what,
        )
        return {"host": host, "job_id": str(job_env.job_id)}

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def _env_updates(env: Optional[Mapping[str, str]]) -> Dict[str, str]:
    """The variables of ``env`` that differ from this process's: only these travel to the job
    (the node keeps its own ``CUDA_VISIBLE_DEVICES``, ``SLURM_*``, ``PATH``...)."""
    if env is None:
        return {}
    return {k: str(v) for k, v in env.items() if os.environ.get(k) != v}


class SubmititExecutor:
    """One submitit job per cell: ``kind="slurm"`` (SLURM) or ``kind="local"`` (submitit's local
    executor: a local process per job, the same code path without a cluster).

    Resources per cell job: ``nodes``, ``gpus_per_node`` (the GPUs of a node; a command that
    asks for ``gpus`` in :meth:`run` gets a job with that many, at most these), ``cpus_per_task``,
    ``mem_gb``,
    ``partition``, ``time_min`` (SLURM time limit, minutes; default: the cell's timeout, else
    submitit's default), ``max_concurrent`` (jobs in flight at a time; the grid's ``parallel``),
    ``slurm_extra`` (more ``AutoExecutor.update_parameters`` keys, e.g. ``slurm_account``).
    ``folder``: where submitit keeps the jobs' pickles and logs; default ``<cell>/submitit``."""

    def __init__(
        self,
        kind: str = "slurm",
        *,
        nodes: int = 1,
        gpus_per_node: int = 1,
        cpus_per_task: Optional[int] = None,
        mem_gb: Optional[float] = None,
        partition: Optional[str] = None,
        time_min: Optional[int] = None,
        max_concurrent: int = 8,
        folder: Optional[str] = None,
        slurm_extra: Optional[Mapping[str, object]] = None,
        poll_s: float = 1.0,
    ):
        if kind not in ("slurm", "local"):
            raise ValueError(f"unknown submitit executor kind {kind!r}; valid: slurm, local")
        self.submitit = require_submitit("slurm" if kind == "slurm" else "submitit-local")
        self.kind = kind
        self.name = "slurm" if kind == "slurm" else "submitit-local"
        self.nodes = int(nodes)
        self.gpus_per_node = int(gpus_per_node)
        self.cpus_per_task = cpus_per_task
        self.mem_gb = mem_gb
        self.partition = partition
        self.time_min = time_min
        self.max_concurrent = max(1, int(max_concurrent))
        self.folder = folder
        self.slurm_extra = dict(slurm_extra or {})
        self.poll_s = poll_s
        self._stop = threading.Event()

    def stop(self) -> None:
        """Stop waiting (the grid runner was interrupted): every :meth:`run` in flight raises
        ``KeyboardInterrupt`` and its cell stays unrecorded; the jobs themselves go on (cancel
        them with ``scancel``), and the next run of the grid waits for them again."""
        self._stop.set()

    def gpus_available(self) -> int:
        """The GPUs of one node (``--gpus-per-node``): the most a cell's job may ask for."""
        return self.gpus_per_node

    def describe_gpus(self) -> str:
        return f"a {self.name} node (--gpus-per-node {self.gpus_per_node})"

    def parameters(
        self, name: str, timeout: Optional[float] = None, gpus: Optional[int] = None
    ) -> dict:
        """The ``AutoExecutor.update_parameters`` of one cell's job (``gpus``: the job's GPUs,
        default ``gpus_per_node``)."""
        time_min = self.time_min
        if time_min is None and timeout:
            time_min = int(math.ceil(timeout / 60.0)) + 1
        params = {
            "name": name,
            "nodes": self.nodes,
            "tasks_per_node": 1,  # one task per node: the command starts its own processes
            "gpus_per_node": self.gpus_per_node if gpus is None else int(gpus),
            "cpus_per_task": self.cpus_per_task,
            "mem_gb": self.mem_gb,
            "timeout_min": time_min,
        }
        if self.kind == "slurm":
            # the job's Python imports the pickled callable: the project on its PYTHONPATH also
            # without `pip install -e .` (local jobs inherit it from :meth:`submit`)
            params["slurm_setup"] = [
                f"export PYTHONPATH={shlex.quote(PACKAGE_ROOT)}:{shlex.quote(REPO)}"
                "${PYTHONPATH:+:$PYTHONPATH}"
            ]
            params["slurm_partition"] = self.partition
            params.update(self.slurm_extra)
        return {k: v for k, v in params.items() if v is not None}

    def make_executor(
        self, folder: str, name: str, timeout: Optional[float] = None, gpus: Optional[int] = None
    ):
        """A configured ``submitit.AutoExecutor`` writing its files to ``folder``."""
        ex = self.submitit.AutoExecutor(
            folder=folder, cluster="slurm" if self.kind == "slurm" else "local"
        )
        ex.update_parameters(**self.parameters(name, timeout, gpus))
        return ex

    def submit(self, ex, fn):
        """``ex.submit(fn)``; a local job (started from this process's environment) gets the
        project on its ``PYTHONPATH`` (a shell ``setup`` line would keep ``job.cancel()``'s
        SIGINT from reaching it)."""
        if self.kind == "slurm":
            return ex.submit(fn)
        with _ENV_LOCK:
            old = os.environ.get("PYTHONPATH")
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, REPO, old) if p)
            try:
                return ex.submit(fn)
            finally:
                if old is None:
                    os.environ.pop("PYTHONPATH", None)
                else:
                    os.environ["PYTHONPATH"] = old

    def run(
        self,
        cmd: Sequence[str],
        cell_dir: str,
        *,
        timeout: Optional[float] = None,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        notes: Sequence[str] = (),
        what: str = "the cell",
        name: Optional[str] = None,
        gpus: Optional[int] = None,
    ) -> dict:
        """Submit ``cmd`` as one job (``gpus``: its GPUs, default ``gpus_per_node``), record it in
        ``<cell_dir>/job.json`` and wait for it; returns ``{"executor", "job_id", "host",
        "job_stdout", "job_stderr"}`` or raises :class:`~seethroughnet.experiments.grid.CellError`
        (the error of the command, else the job's)."""
        os.makedirs(cell_dir, exist_ok=True)
        folder = self.folder or os.path.join(cell_dir, "submitit")
        job_name = name or os.path.basename(os.path.normpath(cell_dir))
        task = CommandJob(
            cmd,
            os.path.abspath(cell_dir),
            env_updates=_env_updates(env),
            cwd=cwd,
            timeout=timeout,
            notes=notes,
            what=what,
        )
        job_path = os.path.join(cell_dir, JOB_FILE)
        job, rec = self._reattach(job_path)
        if job is not None:
            logger.info(
                "%s: waiting for %s job %s (queued earlier)", job_name, self.name, job.job_id
            )
        else:
            job = self.submit(self.make_executor(folder, job_name, timeout, gpus), task)
            rec = {
                "executor": self.name,
                "job_id": str(job.job_id),
                "job_stdout": str(job.paths.stdout),
                "job_stderr": str(job.paths.stderr),
                "submitit_folder": os.path.abspath(folder),
                "submitted": time.strftime("%Y-%m-%d %H:%M:%S"),
                "parameters": self.parameters(job_name, timeout, gpus),
            }
            grid_runner.write_json(job_path, rec)
            logger.info("%s: submitted as %s job %s", job_name, self.name, job.job_id)
        try:
            while not job.done():
                if self._stop.is_set():
                    raise KeyboardInterrupt(f"stopped waiting for job {job.job_id}")
                time.sleep(self.poll_s)
            out = job.result()
        except (grid_runner.CellError, KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001 -- submitit's FailedJobError / UncompletedJobError
            raise self._job_error(job, cell_dir, what, e) from None
        finally:
            if job.done():  # the job is over: a later run of the grid submits a new one
                grid_runner.write_json(job_path, {**rec, "finished": True})
        return {
            "executor": self.name,
            "job_id": str(job.job_id),
            "host": (out or {}).get("host"),
            "job_stdout": str(job.paths.stdout),
            "job_stderr": str(job.paths.stderr),
        }

    def _reattach(self, job_path: str):
        """``(job, record)`` of the cell's SLURM job that an earlier run of the grid queued and
        did not see finish (the runner was stopped): still queued or running, or ended with a
        result; ``(None, None)`` if there is none (then a new job is submitted)."""
        if self.kind != "slurm":
            return None, None
        rec = _read_json(job_path)
        if not rec or rec.get("finished") or rec.get("executor") != self.name:
            return None, None
        if not rec.get("job_id") or not rec.get("submitit_folder"):
            return None, None
        job = self.submitit.SlurmJob(folder=rec["submitit_folder"], job_id=str(rec["job_id"]))
        if job.paths.result_pickle.exists() or job.state in SLURM_ACTIVE_STATES:
            return job, rec
        return None, None

    def _job_error(self, job, cell_dir: str, what: str, e: BaseException):
        """A :class:`CellError` for a failed job: the command's last exception from the cell's
        log if it got that far, else submitit's message; with the job id and its log paths."""
        log_path = os.path.join(cell_dir, grid_runner.LOG_FILE)
        text = str(e)
        command_failed = f"{what} exited with" in text or f"{what} timed out" in text
        first = ""
        for line in text.splitlines():
            if f"{what} exited with" in line or f"{what} timed out" in line:
                first = line.strip()
                break
        if command_failed:
            msg = first.split("CellError: ", 1)[-1] if first else text.strip().splitlines()[-1]
        else:
            msg = f"{self.name} job {job.job_id} failed: {text.strip().splitlines()[-1:]}"
        msg += f" [job {job.job_id}, stdout {job.paths.stdout}, stderr {job.paths.stderr}]"
        tail = grid_runner._tail(log_path, 25) or grid_runner._tail(str(job.paths.stderr), 25)
        m = re.search(rf"{re.escape(what)} exited with (-?\d+)", text)
        return grid_runner.CellError(msg, int(m.group(1)) if m else "job failed", tail)


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


# ----------------------------------------------------------------------------------- command line
def add_executor_arguments(
    p: argparse.ArgumentParser, grid: bool = True
) -> argparse.ArgumentParser:
    """``--executor local|slurm|submitit-local`` and the resources of one job (``grid``: of one
    cell's job, plus ``--max-concurrent``)."""
    if grid:
        g = p.add_argument_group(
            "executor (where the cells run; docs/cluster.md)",
            "local: subprocesses here (default); slurm: one SLURM job per cell through "
            "submitit; submitit-local: submitit's local executor (tests, no cluster)",
        )
    else:
        g = p.add_argument_group(
            "job (docs/cluster.md)",
            "slurm (default): a SLURM job through submitit; submitit-local: submitit's local "
            "executor (a local process, no cluster)",
        )
    g.add_argument("--executor", choices=EXECUTORS, default="local")
    g.add_argument("--nodes", type=int, default=1, help="nodes per job (default 1)")
    g.add_argument("--gpus-per-node", type=int, default=1, help="GPUs per node (default 1)")
    g.add_argument(
        "--cpus-per-task", type=int, default=None, help="CPUs per node (one task per node)"
    )
    g.add_argument("--mem-gb", type=float, default=None, help="memory per node, GB")
    g.add_argument("--partition", default=None, help="SLURM partition")
    g.add_argument(
        "--time-min", type=int, default=None, help="time limit per job, minutes (slurm: required)"
    )
    if grid:
        g.add_argument(
            "--max-concurrent",
            type=int,
            default=None,
            help="cell jobs in flight at a time (slurm / submitit-local; default 8)",
        )
    g.add_argument(
        "--submitit-folder",
        default=None,
        help="submitit's job files and logs (default: <cell or OUTPUT_DIR>/submitit)",
    )
    return p


def check_time_limit(kind: str, time_min: Optional[int]) -> None:
    """SLURM jobs need ``--time-min`` (submitit's default limit is 5 minutes)."""
    if kind == "slurm" and not time_min:
        raise ValueError(
            "--executor slurm needs --time-min MINUTES, the SLURM time limit of each job "
            "(submitit's default would be 5 minutes); a job that reaches it is requeued and "
            "resumes from its last checkpoint"
        )


def executor_from_args(args: argparse.Namespace, max_nodes: Optional[int] = None):
    """The executor the parsed :func:`add_executor_arguments` options ask for. ``max_nodes``:
    the most nodes a job may have (grid cells: 1, their commands start one node's processes).
    Raises ``RuntimeError`` (no submitit, no ``sbatch``) or ``ValueError`` with what to do."""
    kind = getattr(args, "executor", "local") or "local"
    if kind == "local":
        return LocalExecutor()
    require_submitit(kind)  # first: what to install / where to run
    check_time_limit(kind, args.time_min)
    if max_nodes is not None and args.nodes > max_nodes:
        raise ValueError(
            f"--nodes {args.nodes}: a grid cell runs on one node (--nodes 1, up to "
            "--gpus-per-node GPUs); submit a multi-node training with tools/submit.py"
        )
    return SubmititExecutor(
        "slurm" if kind == "slurm" else "local",
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        cpus_per_task=args.cpus_per_task,
        mem_gb=args.mem_gb,
        partition=args.partition,
        time_min=args.time_min,
        max_concurrent=args.max_concurrent or 8,
        folder=args.submitit_folder,
    )


def grid_parallel(executor, parallel: Optional[int]) -> int:
    """Cells at a time: ``parallel`` for local subprocesses, ``max_concurrent`` for jobs."""
    if isinstance(executor, SubmititExecutor):
        return executor.max_concurrent
    return max(1, int(parallel or 1))
