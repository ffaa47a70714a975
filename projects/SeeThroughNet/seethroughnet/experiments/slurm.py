"""One ``train_net.py`` run as a cluster job through submitit (``tools/submit.py``).

:func:`submit_training` submits :class:`TrainJob`: on every node of the job (one task per node)
it runs the training script in-process with detectron2's distributed launch set up from the SLURM
environment (:func:`dist_arguments`: ``--num-gpus`` = GPUs per node, ``--num-machines`` = nodes,
``--machine-rank`` = this node's index, ``--dist-url tcp://<first node>:<port>``, the port
derived from the job id; one node: ``--dist-url auto``). On preemption or time-out submitit
calls :meth:`TrainJob.checkpoint`: the job is requeued with ``--resume``, and training continues
exactly from the last checkpoint (``seethroughnet/resumable.py``, ``checkpoint.py``).
``<OUTPUT_DIR>/job.json`` records the job id and its log paths (every submission of the run is
kept in ``jobs``); submitit's own files are in ``<OUTPUT_DIR>/submitit/`` unless
``--submitit-folder``.

Scripts (``--script``): ``seethroughnet`` (``projects/SeeThroughNet/train_net.py``: SeeThroughNet
and the CPP plug-in models), ``transfer`` (``transfer/train_net.py``: the Table 5 detectors), or a
path. Command line (:func:`main`)::

    python tools/submit.py [--executor slurm|submitit-local] [--nodes N] [--gpus-per-node G] \
        [--cpus-per-task C] [--mem-gb M] [--partition P] [--time-min T] [--job-name NAME] \
        [--script seethroughnet|transfer|PATH] [--resume] [--wait] \
        -- --config-file CFG [KEY VALUE ...] OUTPUT_DIR DIR
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import runpy
import socket
import sys
import time
from typing import List, Optional, Sequence

from seethroughnet.experiments import grid as grid_runner
from seethroughnet.experiments.executors import (
    JOB_FILE,
    SubmititExecutor,
    _read_json,
    add_executor_arguments,
    check_time_limit,
    require_submitit,
)

logger = logging.getLogger("seethroughnet.experiments.slurm")

#: The repository root and the folder that holds the ``seethroughnet`` package.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPO = os.path.dirname(os.path.dirname(PACKAGE_ROOT))
#: ``--script`` names -> training scripts.
SCRIPTS = {
    "seethroughnet": os.path.join(PACKAGE_ROOT, "train_net.py"),
    "transfer": os.path.join(REPO, "transfer", "train_net.py"),
}
#: Options of detectron2's launcher that the job sets from SLURM's environment.
LAUNCH_FLAGS = ("--num-gpus", "--num-machines", "--machine-rank", "--dist-url")


def dist_arguments(num_nodes: int, node: int, hostnames: Sequence[str], job_id: str) -> List[str]:
    """detectron2's launch options for node ``node`` of a ``num_nodes``-node job: one node gets
    ``--dist-url auto`` (a free local port), several rendezvous at the first node on a port
    derived from the job id (the same on every node and after a requeue)."""
    if num_nodes <= 1:
        return ["--num-machines", "1", "--machine-rank", "0", "--dist-url", "auto"]
    digits = re.sub(r"\D", "", str(job_id)) or "0"
    port = 20000 + int(digits) % 20000
    return [
        "--num-machines",
        str(num_nodes),
        "--machine-rank",
        str(node),
        "--dist-url",
        f"tcp://{hostnames[0]}:{port}",
    ]


class TrainJob:
    """The callable a training job runs on each node: ``script`` with ``train_args`` (flags and
    ``KEY VALUE`` overrides of detectron2's ``default_argument_parser``), ``--num-gpus
    gpus_per_node`` and the distributed options of :func:`dist_arguments`, ``--resume`` if
    ``resume``. :meth:`checkpoint` (submitit's requeue hook) resubmits it with ``resume=True``."""

    def __init__(
        self, script: str, train_args: Sequence[str], gpus_per_node: int = 1, resume: bool = False
    ):
        self.script = os.path.abspath(script)
        self.train_args = [str(a) for a in train_args]
        self.gpus_per_node = max(1, int(gpus_per_node))
        self.resume = bool(resume)

    def argv(self, num_nodes: int, node: int, hostnames: Sequence[str], job_id: str) -> List[str]:
        """The script's command-line arguments on this node (flags before the overrides)."""
        flags = ["--num-gpus", str(self.gpus_per_node)]
        flags += dist_arguments(num_nodes, node, hostnames, job_id)
        if self.resume and "--resume" not in self.train_args:
            flags.append("--resume")
        return flags + self.train_args

    def __call__(self) -> dict:
        import submitit

        env = submitit.JobEnvironment()
        argv = self.argv(env.num_nodes, env.node, env.hostnames, str(env.job_id))
        print(
            f"[submit] job {env.job_id} node {env.node}/{env.num_nodes} on {socket.gethostname()}"
            f" pid {os.getpid()}: {self.script} {' '.join(argv)}",
            flush=True,
        )
        old_argv = sys.argv
        sys.argv = [self.script] + argv
        try:
            runpy.run_path(self.script, run_name="__main__")
        finally:
            sys.argv = old_argv
        return {
            "host": socket.gethostname(),
            "job_id": str(env.job_id),
            "node": env.node,
            "resumed": self.resume,
        }

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(
            TrainJob(self.script, self.train_args, self.gpus_per_node, resume=True)
        )


def output_dir_of(train_args: Sequence[str]) -> str:
    """The run's ``OUTPUT_DIR`` (the last ``OUTPUT_DIR DIR`` override)."""
    args = list(train_args)
    idx = [i for i, a in enumerate(args) if a == "OUTPUT_DIR" and i + 1 < len(args)]
    if not idx:
        raise ValueError(
            "tools/submit.py needs the run's output folder among the overrides: "
            "... -- --config-file CFG OUTPUT_DIR output/my_run (job.json and the job's logs "
            "are written there)"
        )
    return os.path.abspath(args[idx[-1] + 1])


def check_train_args(train_args: Sequence[str]) -> None:
    """The launch options are the job's: refuse them in the training arguments."""
    bad = [a for a in train_args if a.split("=")[0] in LAUNCH_FLAGS]
    if bad:
        raise ValueError(
            f"{' '.join(bad)}: set by tools/submit.py from the job (--gpus-per-node, --nodes); "
            "leave them out of the training arguments"
        )


def submit_training(
    script: str,
    train_args: Sequence[str],
    executor: SubmititExecutor,
    *,
    resume: bool = False,
    job_name: Optional[str] = None,
):
    """Submit one training run; returns the submitit job. ``script``: a :data:`SCRIPTS` name or
    a path. Writes ``<OUTPUT_DIR>/job.json`` (this job's id, log paths, resources; earlier
    submissions of the same run under ``jobs``)."""
    script = SCRIPTS.get(script, script)
    if not os.path.isfile(script):
        raise ValueError(f"training script {script} not found (--script: {', '.join(SCRIPTS)})")
    check_train_args(train_args)
    out = output_dir_of(train_args)
    os.makedirs(out, exist_ok=True)
    name = job_name or os.path.basename(out)
    folder = executor.folder or os.path.join(out, "submitit")
    ex = executor.make_executor(folder, name)
    job = executor.submit(ex, TrainJob(script, train_args, executor.gpus_per_node, resume=resume))
    path = os.path.join(out, JOB_FILE)
    old = _read_json(path)
    rec = {
        "executor": executor.name,
        "job_id": str(job.job_id),
        "job_stdout": str(job.paths.stdout),
        "job_stderr": str(job.paths.stderr),
        "submitit_folder": os.path.abspath(folder),
        "submitted": time.strftime("%Y-%m-%d %H:%M:%S"),
        "script": script,
        "train_args": list(train_args),
        "resume": resume,
        "parameters": executor.parameters(name),
    }
    rec["jobs"] = list((old or {}).get("jobs", [])) + [
        {k: rec[k] for k in ("job_id", "executor", "job_stdout", "job_stderr", "submitted")}
    ]
    grid_runner.write_json(path, rec)
    logger.info("submitted %s job %s (logs: %s)", executor.name, job.job_id, job.paths.stdout)
    return job


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Submit one train_net.py run to SLURM through submitit (docs/cluster.md)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument(
        "--script",
        default="seethroughnet",
        help="seethroughnet (projects/SeeThroughNet/train_net.py, default), transfer "
        "(transfer/train_net.py) or a path",
    )
    p.add_argument("--job-name", default=None, help="default: the name of OUTPUT_DIR")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--wait", action="store_true", help="wait for the job and print its result")
    add_executor_arguments(p, grid=False)
    p.set_defaults(executor="slurm")
    p.add_argument("train_args", nargs=argparse.REMAINDER, help="-- train_net.py arguments")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    train_args = [a for a in args.train_args]
    if train_args[:1] == ["--"]:
        train_args = train_args[1:]
    if args.executor == "local":
        print(
            "error: tools/submit.py submits jobs: --executor slurm (default) or submitit-local; "
            "to train here, run train_net.py directly",
            file=sys.stderr,
        )
        return 2
    try:
        require_submitit(args.executor)
        check_time_limit(args.executor, args.time_min)
        executor = SubmititExecutor(
            "slurm" if args.executor == "slurm" else "local",
            nodes=args.nodes,
            gpus_per_node=args.gpus_per_node,
            cpus_per_task=args.cpus_per_task,
            mem_gb=args.mem_gb,
            partition=args.partition,
            time_min=args.time_min,
            folder=args.submitit_folder,
        )
        job = submit_training(
            args.script, train_args, executor, resume=args.resume, job_name=args.job_name
        )
    except (RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"job {job.job_id}: stdout {job.paths.stdout}, stderr {job.paths.stderr}")
    print(f"record: {os.path.join(output_dir_of(train_args), JOB_FILE)}")
    if args.wait:
        print(job.result())
    return 0
