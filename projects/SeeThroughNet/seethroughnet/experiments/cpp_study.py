"""The CPP plug-in study (SeeThroughNet, CVPR 2022, Tables 1-2 and Figure 5) on the grid runner.

A grid file (YAML or JSON) lists models x datasets x variants x seeds (x number of auxiliary
heads x loss kind); every cell is one training run of :class:`seethroughnet.engine.Trainer` on a
``CPPSegmentor`` config (:func:`train_cell`), launched in a subprocess
(``python -m seethroughnet.experiments.cpp_study --config CFG --out DIR [KEY VALUE ...]``, also
``tools/run_cpp_study.py cell``) with its own output folder ``<out>/<cell id>/``. The cells run
on :func:`seethroughnet.experiments.grid.run_grid`: a cell whose ``result.json`` says ``ok`` is
skipped (resume); a crashing cell is recorded in ``result.json`` with ``status: failed`` and its
error, and the grid goes on (``retry_failed`` / ``--retry-failed`` runs failed cells again).
The results of every cell are gathered into ``<out>/results.jsonl`` and rendered as

* Table 1: mIoU of baseline / CPP / gain per model and dataset, mean +- std over seeds;
* Table 2: class-wise IoU difference (CPP - baseline), instance ("thing") vs non-instance class
  averages;
* Figure 5: mIoU vs number of auxiliary heads, up-sampling vs CPP (markdown table + PNG).

Command line (``tools/run_cpp_study.py``, :func:`main`)::

    python tools/run_cpp_study.py run GRID.yaml [--out DIR] [--parallel N] [--retry-failed] \
        [--dry-run] [--executor local|slurm|submitit-local] [--gpus-per-node G] \
        [--cpu-gpus N] \
        [--cpus-per-task C] [--mem-gb M] [--partition P] [--time-min T] [--max-concurrent J]
    python tools/run_cpp_study.py render GRID.yaml [--out DIR] [--md FILE] [--fig FILE]
    python tools/run_cpp_study.py cell --config CFG --out DIR [--num-gpus N] [KEY VALUE ...]

``run`` and ``cell`` take ``--allow-unsafe-config`` and ``--trust-weights-file`` (see
``seethroughnet/utils/safe_load.py``; off by default: configs are read with safe YAML only and
weight files without unpickling Python objects). Output folders of the earlier runner (one
``results.json`` per cell) are read as they are; a cell run again writes ``result.json``.

Grid file::

    out_dir: output/cpp_study/camvid          # optional (--out overrides)
    timeout_s: 3600                            # optional, per cell
    parallel: 2                                # optional, cells at a time
    threads: 1                                 # optional, OMP/torch threads per cell
    config_dir: projects/SeeThroughNet/configs/CPP-Plugin   # optional, for the config templates
    datasets:
      voc: {config: "VOC/{stem}_voc.yaml",     # the cell's config: this template, {stem} = the
            gpus: 4,                           #   model's stem; gpus: processes per cell
            instance_classes: [aeroplane, ...]}
      camvid: {train: camvid_train, test: camvid_val, num_classes: 11,   # optional overrides
               instance_classes: [car, pedestrian, bicyclist]}
    models:
      pspnet: {stem: pspnet_R101}              # with the datasets' config templates
      psp18: {config: projects/.../pspnet_R18_camvid.yaml, opts: [SOLVER.MAX_ITER, 160]}
    variants:                                  # name -> auxiliary-head setting
      baseline: {loss: upsample_ce, num_heads: 4}
      cpp: {loss: cpp_kl, num_heads: 4}
    seeds: [0, 1, 2]
    table1: {baseline: baseline, cpp: cpp}     # which variants Table 1 compares
    figure5:                                   # optional: extra cells
      models: [pspnet]                         # or model: pspnet; one panel per model
      dataset: camvid
      num_heads: [0, 1, 2, 3, 4]
      losses: {upsample: upsample_ce, cpp: cpp_kl}
      seeds: [0]
    opts: [...]                                # optional, appended to every cell

A cell's config is its dataset's ``config`` template with the model's ``stem`` (the per-dataset,
per-model file, e.g. ``VOC/pspnet_R101_voc.yaml``), or the model's own ``config`` where the
dataset has no template (:func:`cell_config`). The dataset's ``train`` / ``test`` /
``num_classes`` / ``opts``, where given, are overrides on top of that file; the shipped Table 1 and
Figure 5 grids give none (the values and their sources are the files').

GPUs: a cell trains on its dataset's ``gpus`` (default 1) as that many processes of detectron2's
``launch`` (``cell --num-gpus N``; the config's ``SOLVER.IMS_PER_BATCH`` is the total batch, so
each process takes ``IMS_PER_BATCH / N`` images). The local executor gives concurrent cells
disjoint GPUs (``CUDA_VISIBLE_DEVICES``); a SLURM job asks for the cell's GPUs. A grid whose cells
ask for more GPUs than the node has stops before any cell starts (:func:`check_gpus`). ``--cpu-gpus
N`` makes a CPU machine a stand-in N-GPU node: a cell asking for G GPUs runs G gloo processes on
the CPU (tests; detectron2's launch uses gloo where CUDA is not available).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from typing import Callable, Dict, List, Optional

from seethroughnet.experiments import grid as grid_runner
from seethroughnet.experiments.cpp_study_report import (
    figure5_markdown,
    figure5_models,
    figure5_png,
    table1,
    table2,
)
from seethroughnet.experiments.executors import (
    LocalExecutor,
    SubmititExecutor,
    add_executor_arguments,
    executor_from_args,
)
from seethroughnet.utils.atomic import write_text_atomic

logger = logging.getLogger("seethroughnet.experiments.cpp_study")

#: The repository root (cell configs are relative to it).
REPO = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
)
#: The folder that holds the ``seethroughnet`` package (put first on a cell's PYTHONPATH).
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# ----------------------------------------------------------------------------------------- cells


def train_cell(
    config: str, out_dir: str, opts: List[str], allow_unsafe_config: bool = False
) -> dict:
    """Train + evaluate one config in this process; returns the cell's results. In a
    multi-process cell (:func:`_cell_worker`, detectron2's ``launch``) every rank trains its share
    of the batch (DistributedDataParallel averages the gradients) and the results also hold
    ``world_size``, ``backend`` and ``ranks``: per rank its pid, device and a checksum of the
    trained weights (equal on every rank when the gradients were averaged); the metrics are rank
    0's (the evaluator gathers every rank's predictions there)."""
    import torch
    from detectron2.utils import comm
    from detectron2.utils.env import seed_all_rng
    from detectron2.utils.logger import setup_logger

    import seethroughnet.modeling.segmentors  # noqa: F401  (registers CPPSegmentor)
    from seethroughnet.engine import Trainer
    from seethroughnet.experiments.models import load_config

    os.makedirs(out_dir, exist_ok=True)
    rank, world = comm.get_rank(), comm.get_world_size()
    setup_logger(out_dir, distributed_rank=rank, name="detectron2")
    setup_logger(out_dir, distributed_rank=rank, name="seethroughnet")
    cfg = load_config(
        config, list(opts) + ["OUTPUT_DIR", out_dir], allow_unsafe_config=allow_unsafe_config
    )
    cfg.freeze()
    if rank == 0:
        write_text_atomic(os.path.join(out_dir, "config.yaml"), cfg.dump())
    backend = torch.distributed.get_backend() if world > 1 else None
    if world > 1:  # one line per rank in the cell's log (rank > 0 logs to log.txt.rank<k> only)
        print(
            f"[cell] rank {rank}/{world} ({backend}) pid {os.getpid()}: "
            f"{world} processes train this cell, {cfg.SOLVER.IMS_PER_BATCH // world} images each",
            flush=True,
        )
    # python, numpy, torch (+ the data sampler's seed)
    seed_all_rng(cfg.SEED if cfg.SEED >= 0 else None)
    t0 = time.time()
    trainer = Trainer(cfg)
    # an interrupted attempt (a requeued cluster job, a killed cell) continues from its checkpoint
    resumed_from = _last_checkpoint(out_dir)
    trainer.resume_or_load(resume=resumed_from is not None)
    res = trainer.train()  # the results of the EvalHook's evaluation after the last iteration
    train_s = time.time() - t0
    model = trainer.model
    # test only if there was no evaluation (on every rank alike: evaluation is collective, and
    # ranks > 0 hold {} as their results)
    if res is None:
        res = Trainer.test(cfg, model)
    model = getattr(model, "module", model)  # DistributedDataParallel's wrapped model
    ranks = comm.all_gather(
        {
            "rank": rank,
            "pid": os.getpid(),
            "device": str(next(model.parameters()).device),
            "weights_sha1": _weights_checksum(model),
            "iterations": trainer.iter,  # max_iter once training finished (detectron2)
        }
    )
    if rank != 0:  # the metrics are gathered on rank 0 (inference_on_dataset returns {} here)
        return {"status": "ok", "rank": rank}
    sem = dict(res["sem_seg"]) if "sem_seg" in res else dict(next(iter(res.values())))
    iou = {k[4:]: float(v) for k, v in sem.items() if k.startswith("IoU-")}
    n_params = sum(p.numel() for p in model.parameters())
    aux = getattr(model, "aux_heads", None)
    n_aux = sum(p.numel() for p in aux.parameters()) if aux is not None else 0
    return {
        "status": "ok",
        "mIoU": float(sem["mIoU"]),
        "pACC": float(sem.get("pACC", float("nan"))),
        "IoU": iou,
        "train_seconds": round(train_s, 1),
        "params_inference": n_params - n_aux,
        "params_aux": n_aux,
        # the features that carried an auxiliary head (NUM_HEADS picks them in
        # MODEL.CPP_AUX.ADD_ORDER)
        "aux_features": list(getattr(aux, "features", [])),
        "world_size": world,
        "ims_per_gpu": cfg.SOLVER.IMS_PER_BATCH // world,
        **({"backend": backend, "ranks": ranks} if world > 1 else {}),
        **({"resumed_from": resumed_from} if resumed_from else {}),
    }


def _weights_checksum(model) -> str:
    """SHA-1 of the model's parameters (names and bytes, in order): equal on two ranks exactly
    when their weights are bit-identical."""
    import hashlib

    h = hashlib.sha1()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _last_checkpoint(out_dir: str) -> Optional[str]:
    """The checkpoint named in ``out_dir/last_checkpoint`` (detectron2's marker), if any."""
    try:
        with open(os.path.join(out_dir, "last_checkpoint")) as f:
            return f.read().strip() or None
    except OSError:
        return None


def _cell_worker(config: str, out_dir: str, opts: List[str], allow_unsafe_config: bool) -> None:
    """One process of a multi-process cell (detectron2's ``launch`` calls it on every rank):
    :func:`train_cell`; rank 0 writes ``result.json``. A failing rank raises, and ``launch``
    (``torch.multiprocessing.spawn``) ends the cell with that error."""
    from detectron2.utils import comm

    res = train_cell(config, out_dir, opts, allow_unsafe_config)
    if comm.get_rank() == 0:
        grid_runner.write_json(os.path.join(out_dir, grid_runner.RESULT_FILE), res)


def cell_main(argv=None) -> int:
    """One training run (the cell's subprocess): ``--config CFG --out DIR [--num-gpus N] [KEY
    VALUE ...]``; writes ``DIR/result.json`` (``ok`` with the metrics, or ``failed`` with the
    error). ``--num-gpus N > 1``: N processes through detectron2's ``launch`` (NCCL on GPUs, gloo
    on the CPU), one GPU each; 1 (default): this process."""
    from seethroughnet.utils.safe_load import add_safety_arguments, apply_safety_arguments

    p = argparse.ArgumentParser(description="one training run of the CPP study")
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--num-gpus", type=int, default=1, help="processes (one GPU each); default 1")
    add_safety_arguments(p)
    p.add_argument("opts", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    path = os.path.join(args.out, grid_runner.RESULT_FILE)
    try:
        opts = apply_safety_arguments(args, args.opts)
        if args.num_gpus > 1:
            from detectron2.engine import launch

            if os.path.exists(path):  # an earlier attempt's record: rank 0 writes the new one
                os.remove(path)
            # the importable module's function (this file may run as __main__)
            from seethroughnet.experiments.cpp_study import _cell_worker as worker

            launch(
                worker,
                args.num_gpus,
                dist_url="auto",
                args=(args.config, args.out, opts, args.allow_unsafe_config),
            )
            if grid_runner.read_result(args.out) is None:
                raise RuntimeError(f"rank 0 of {args.num_gpus} wrote no {path}")
            return 0
        res = train_cell(args.config, args.out, opts, args.allow_unsafe_config)
    except BaseException as e:  # noqa: BLE001 -- recorded, not hidden
        res = {
            "status": "failed",
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc()[-4000:],
        }
        grid_runner.write_json(path, res)
        print(res["traceback"], file=sys.stderr)
        return 1
    grid_runner.write_json(path, res)
    return 0


# ------------------------------------------------------------------------------------------ grid


def load_grid(path: str, allow_unsafe: bool = False) -> dict:
    if path.endswith(".json"):
        with open(path) as f:
            grid = json.load(f)
    else:
        from seethroughnet.utils.safe_load import load_yaml_file

        grid = load_yaml_file(path, allow_unsafe=allow_unsafe, what="grid file")  # safe YAML only
    return check_grid(grid, path)


def check_grid(grid, path: str = "the grid") -> dict:
    """``grid`` if it is a mapping with models and datasets where every (model, dataset) pair
    names a config (:func:`cell_config`); else ``ValueError`` naming ``path`` and the entry."""
    if not isinstance(grid, dict):
        raise ValueError(f"{path}: the grid file must hold a mapping")
    for key in ("models", "datasets"):
        if not grid.get(key):
            raise ValueError(f"{path}: the grid needs a non-empty {key!r} mapping")
    for model in grid["models"]:  # every (model, dataset) pair names a config
        for dataset in grid["datasets"]:
            try:
                cell_config(grid, model, dataset)
                cell_gpus(grid, dataset)
            except ValueError as e:
                raise ValueError(f"{path}: {e}") from None
    return grid


def cell_config(grid: dict, model: str, dataset: str) -> str:
    """The config file of the (model, dataset) cells, relative to the repository (or absolute):
    the dataset's ``config`` template with ``{stem}`` = the model's ``stem``, under the grid's
    ``config_dir``; else the model's own ``config``."""
    m, d = grid["models"][model], grid["datasets"][dataset]
    template = d.get("config")
    if template and m.get("stem"):
        try:
            name = str(template).format(stem=m["stem"])
        except (KeyError, IndexError):
            raise ValueError(
                f"dataset {dataset!r}: config template {template!r} may only use {{stem}}"
            ) from None
        return os.path.normpath(os.path.join(grid.get("config_dir") or "", name))
    if m.get("config"):
        return str(m["config"])
    raise ValueError(
        f"model {model!r} on dataset {dataset!r}: no config (give the model a 'config' file, or a "
        f"'stem' and the dataset a 'config' template such as \"VOC/{{stem}}_voc.yaml\")"
    )


def cell_gpus(grid: dict, dataset: str) -> int:
    """The GPUs (processes) of a cell on ``dataset``: its ``gpus`` (default 1)."""
    n = grid["datasets"][dataset].get("gpus", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"dataset {dataset!r}: gpus must be a positive integer, got {n!r}")
    return n


def _aux_opts(loss: str, num_heads: int) -> List[str]:
    if num_heads == 0:
        return ["MODEL.CPP_AUX.ENABLED", "False"]
    return [
        "MODEL.CPP_AUX.ENABLED",
        "True",
        "MODEL.CPP_AUX.NUM_HEADS",
        str(num_heads),
        "MODEL.CPP_AUX.LOSS",
        loss,
    ]


def cell_id(model: str, dataset: str, loss: str, num_heads: int, seed: int) -> str:
    aux = "noaux_h0" if num_heads == 0 else f"{loss}_h{num_heads}"
    return f"{model}__{dataset}__{aux}__s{seed}"


def expand_grid(grid: dict) -> List[dict]:
    """All cells of the grid (Table 1 variants + Figure 5 sweep), deduplicated, in a stable
    order."""
    from seethroughnet.nn.aux_losses import AUX_LOSS_KINDS

    cells: Dict[str, dict] = {}
    variants = grid.get("variants") or {
        "baseline": {"loss": "upsample_ce", "num_heads": 4},
        "cpp": {"loss": "cpp_kl", "num_heads": 4},
    }

    def add(model, dataset, loss, num_heads, seed, tag):
        if loss not in AUX_LOSS_KINDS:
            raise ValueError(
                f"unknown auxiliary loss {loss!r}; " f"valid choices: {', '.join(AUX_LOSS_KINDS)}"
            )
        if model not in grid["models"]:
            raise ValueError(f"unknown model {model!r}; valid choices: {', '.join(grid['models'])}")
        if dataset not in grid["datasets"]:
            raise ValueError(
                f"unknown dataset {dataset!r}; " f"valid choices: {', '.join(grid['datasets'])}"
            )
        cid = cell_id(model, dataset, loss, int(num_heads), int(seed))
        if cid in cells:
            cells[cid]["tags"].append(tag)
            return
        m, d = grid["models"][model], grid["datasets"][dataset]
        opts = [str(o) for o in m.get("opts", [])]
        if d.get("train"):
            opts += ["DATASETS.TRAIN", f"('{d['train']}',)"]
        if d.get("test"):
            opts += ["DATASETS.TEST", f"('{d['test']}',)"]
        if d.get("num_classes"):
            opts += ["MODEL.SEM_SEG_HEAD.NUM_CLASSES", str(d["num_classes"])]
        opts += [str(o) for o in d.get("opts", [])]
        opts += _aux_opts(loss, int(num_heads)) + ["SEED", str(seed)]
        opts += [str(o) for o in grid.get("opts", [])]
        cells[cid] = {
            "id": cid,
            "model": model,
            "dataset": dataset,
            "loss": loss if num_heads else "none",
            "num_heads": int(num_heads),
            "seed": int(seed),
            "config": cell_config(grid, model, dataset),
            "gpus": cell_gpus(grid, dataset),
            "opts": opts,
            "tags": [tag],
        }

    for model in grid["models"]:
        for dataset in grid["datasets"]:
            for vname, v in variants.items():
                for seed in grid.get("seeds", [0]):
                    add(model, dataset, v["loss"], v.get("num_heads", 4), seed, f"variant:{vname}")
    fig = grid.get("figure5")
    if fig:
        for model in figure5_models(grid):
            losses = fig.get("losses", {"upsample": "upsample_ce", "cpp": "cpp_kl"})
            for lname, loss in losses.items():
                for n in fig.get("num_heads", [0, 1, 2, 3, 4]):
                    for seed in fig.get("seeds", grid.get("seeds", [0])):
                        add(model, fig["dataset"], loss, n, seed, f"figure5:{lname}")
    return list(cells.values())


def subprocess_cell(
    timeout_s: Optional[float] = None,
    threads: int = 1,
    allow_unsafe_config: bool = False,
    executor=None,
) -> Callable[[dict, str], dict]:
    """A ``run_cell(cell, cell_dir)`` that trains the cell in a fresh Python (:func:`cell_main`),
    logged to ``cell_dir/log.txt``, and returns its ``result.json`` with where it ran
    (``executor``, ``job_id``, ``host``). ``executor``: where the command runs
    (:mod:`seethroughnet.experiments.executors`; default a local subprocess)."""
    if executor is None:
        executor = LocalExecutor()

    def run(cell: dict, cell_dir: str) -> dict:
        cfg = os.path.join(REPO, cell["config"])  # an absolute path stays as it is
        cmd = [
            sys.executable,
            "-W",
            "ignore",
            "-m",
            "seethroughnet.experiments.cpp_study",
            "--config",
            cfg,
            "--out",
            cell_dir,
            *(["--num-gpus", str(cell["gpus"])] if cell.get("gpus", 1) > 1 else []),
            *(["--allow-unsafe-config"] if allow_unsafe_config else []),
            *cell["opts"],
        ]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        where = executor.run(
            cmd,
            cell_dir,
            timeout=timeout_s,
            env=env,
            cwd=REPO,
            name=f"cpp_{cell['id']}",
            gpus=cell.get("gpus", 1),
        )
        res = grid_runner.read_result(cell_dir)
        if res is None:
            raise grid_runner.CellError(
                f"the cell exited without {grid_runner.RESULT_FILE} "
                f"(see {cell_dir}/{grid_runner.LOG_FILE})"
            )
        return {**res, **where}

    return run


def _order(c: dict):
    """Table 1 cells first, seed by seed (complete baseline/CPP pairs early), then the Figure 5
    sweep by number of heads (up-sampling / CPP points come in pairs)."""
    table1 = any(t.startswith("variant:") for t in c["tags"])
    return (0, c["seed"], 0) if table1 else (1, c["num_heads"], c["seed"])


def run_grid(
    grid: dict,
    out_dir: str,
    run_cell: Optional[Callable[[dict, str], dict]] = None,
    parallel: int = 1,
    retry_failed: bool = False,
    dry_run: bool = False,
    allow_unsafe_config: bool = False,
    executor=None,
) -> List[dict]:
    """Run every cell of the grid that has no ``result.json`` (and failed ones with
    ``retry_failed``) on :func:`seethroughnet.experiments.grid.run_grid`; ``run_cell(cell,
    cell_dir)`` defaults to :func:`subprocess_cell` on ``executor`` (default: local
    subprocesses; a submitit executor runs one job per cell, ``max_concurrent`` at a time).
    Returns the gathered records (also ``results.jsonl``)."""
    if run_cell is None:
        run_cell = subprocess_cell(
            grid.get("timeout_s"), int(grid.get("threads", 1)), allow_unsafe_config, executor
        )
    if isinstance(executor, SubmititExecutor):
        parallel = executor.max_concurrent
    expanded = sorted(expand_grid(grid), key=_order)
    try:
        check_gpus(expanded, executor if executor is not None else LocalExecutor())
    except ValueError as e:
        if not dry_run:
            raise
        logger.warning("%s", e)  # a dry run only lists the cells
    cells = [grid_runner.Cell(c["id"], info=c) for c in expanded]
    grid_runner.run_grid(
        cells,
        out_dir,
        lambda cell, cell_dir: run_cell(cell.info, cell_dir),
        retry_failed=retry_failed,
        parallel=parallel,
        dry_run=dry_run,
        describe=lambda cell: (
            f"{cell.info['config']} on {cell.info.get('gpus', 1)} GPU(s) "
            f"{' '.join(cell.info['opts'])}"
        ),
        on_interrupt=getattr(executor, "stop", None),
    )
    return gather(grid, out_dir)


def check_gpus(cells: List[dict], executor) -> None:
    """Stop before any cell starts where a cell asks for more GPUs than a node has
    (``executor.gpus_available()``: the local node's GPUs, the CPU stand-in's, or SLURM's
    ``--gpus-per-node``), naming both numbers. A 1-GPU cell on a machine without GPUs runs on the
    CPU, in one process (the CPU smoke forms)."""
    if not cells:
        return
    need = max(int(c.get("gpus", 1)) for c in cells)
    have = executor.gpus_available() if hasattr(executor, "gpus_available") else None
    if have is None or need <= max(have, 1):
        return
    first = next(c for c in cells if int(c.get("gpus", 1)) == need)
    fewer = (
        f"set the datasets' `gpus` to at most {have} (each process then takes "
        "SOLVER.IMS_PER_BATCH / gpus images)"
        if have
        else "set the datasets' `gpus` to 1 (one process on the CPU)"
    )
    raise ValueError(
        f"the grid's cells ask for up to {need} GPUs each (e.g. {first['id']}), but "
        f"{executor.describe_gpus()} has {have}: {fewer}, run on a larger node"
        + (" (--gpus-per-node)" if isinstance(executor, SubmititExecutor) else "")
        + ", or use a CPU stand-in (--cpu-gpus N)"
    )


def gather(grid: dict, out_dir: str) -> List[dict]:
    """One record per cell (``status`` ``ok`` / ``failed`` / ``pending``) -> ``results.jsonl``."""
    records = []
    for c in expand_grid(grid):
        res = grid_runner.read_result(os.path.join(out_dir, c["id"])) or {"status": "pending"}
        rec = {k: c[k] for k in ("id", "model", "dataset", "loss", "num_heads", "seed", "tags")}
        rec.update({k: v for k, v in res.items() if k not in ("traceback", "log_tail")})
        records.append(rec)
    write_text_atomic(
        os.path.join(out_dir, "results.jsonl"),
        "".join(json.dumps(r, sort_keys=True) + "\n" for r in records),
    )
    return records


def render(
    grid: dict, out_dir: str, md_path: Optional[str] = None, fig_path: Optional[str] = None
) -> str:
    """Gather the cells and write Tables 1-2 and Figure 5 (``md_path``, default
    ``<out>/tables.md``; ``fig_path``, default ``<out>/figure5.png``); returns the markdown."""
    records = gather(grid, out_dir)
    fig_path = fig_path or os.path.join(out_dir, "figure5.png")
    png = figure5_png(grid, records, fig_path)
    n_ok = sum(r.get("status") == "ok" for r in records)
    n_failed = sum(r.get("status") == "failed" for r in records)
    parts = [
        f"Cells: {len(records)} ({n_ok} ok, {n_failed} failed, "
        f"{len(records) - n_ok - n_failed} pending).",
        "",
        "### Table 1: mIoU without / with CPP auxiliary heads",
        "",
        table1(grid, records),
        "",
        "### Table 2: class-wise IoU, CPP - baseline",
        "",
        table2(grid, records),
        "",
        "### Figure 5: number of auxiliary heads, up-sampling vs CPP",
        "",
        figure5_markdown(grid, records),
    ]
    if png:
        base = os.path.dirname(os.path.abspath(md_path)) if md_path else out_dir
        parts += ["", f"![Figure 5]({os.path.relpath(png, base)})"]
    failed = [r for r in records if r.get("status") == "failed"]
    if failed:
        parts += ["", "### Failed cells", ""] + [
            f"- `{r['id']}`: {r.get('error', '?')}" for r in failed
        ]
    text = "\n".join(parts) + "\n"
    write_text_atomic(md_path or os.path.join(out_dir, "tables.md"), text)
    return text


# ------------------------------------------------------------------------------------------ main


def main(argv=None) -> int:
    from seethroughnet.utils.safe_load import add_safety_arguments

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["cell"]:  # one training run: its own parser (KEY VALUE overrides at the end)
        return cell_main(argv[1:])
    p = argparse.ArgumentParser(
        description="CPP plug-in study runner (Tables 1-2, Figure 5)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser(
        "run",
        help="run / resume every cell of a grid, then render",
        usage="%(prog)s GRID [options] [KEY VALUE ...]",
        description="KEY VALUE pairs after the options are config overrides for every cell, "
        "after the grid's own (e.g. the local ImageNet files: MODEL.RESNETS.IMAGENET_CHECKPOINT "
        "PATH MODEL.HRNET.CHECKPOINT PATH).",
    )
    r.add_argument("grid")
    r.add_argument("--out")
    r.add_argument("--parallel", type=int)
    r.add_argument("--retry-failed", action="store_true", help="run the failed cells again")
    r.add_argument("--dry-run", action="store_true")
    r.add_argument("--md")
    r.add_argument("--fig")
    add_safety_arguments(r)
    add_executor_arguments(r)
    r.add_argument(
        "--cpu-gpus",
        type=int,
        default=None,
        metavar="N",
        help="local executor: a CPU stand-in for an N-GPU node (a cell asking for G GPUs runs G "
        "gloo processes on the CPU; tests)",
    )
    g = sub.add_parser("render", help="gather results.jsonl and render the tables and Figure 5")
    g.add_argument("grid")
    g.add_argument("--out")
    g.add_argument("--md")
    g.add_argument("--fig")
    sub.add_parser(
        "cell",
        help="one training run (used by the grid runner): "
        "cell --config CFG --out DIR [KEY VALUE ...]",
    )
    args, extra = p.parse_known_args(argv)  # run: KEY VALUE overrides wherever they stand
    if extra and (args.cmd != "run" or any(e.startswith("--") for e in extra)):
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    grid = load_grid(args.grid, allow_unsafe=getattr(args, "allow_unsafe_config", False))
    out = args.out or grid.get("out_dir") or os.path.join("output", "cpp_study")
    if args.cmd == "run":
        try:
            executor = executor_from_args(args, max_nodes=1)
            if args.cpu_gpus:
                if not isinstance(executor, LocalExecutor):
                    raise ValueError("--cpu-gpus is a stand-in for the local executor only")
                executor = LocalExecutor(cpu_gpus=args.cpu_gpus)
        except (RuntimeError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if len(extra) % 2:
            print(f"error: config overrides come in KEY VALUE pairs, got {extra}", file=sys.stderr)
            return 2
        if args.trust_weights_file:  # MODEL.WEIGHTS_TRUSTED True for every cell
            extra += ["MODEL.WEIGHTS_TRUSTED", "True"]
        if extra:
            grid = dict(grid, opts=list(grid.get("opts") or []) + extra)
        try:
            records = run_grid(
                grid,
                out,
                parallel=args.parallel or int(grid.get("parallel", 1)),
                retry_failed=args.retry_failed,
                dry_run=args.dry_run,
                allow_unsafe_config=args.allow_unsafe_config,
                executor=executor,
            )
        except ValueError as e:  # check_gpus: before any cell started
            print(f"error: {e}", file=sys.stderr)
            return 2
    print(render(grid, out, args.md, args.fig))
    if args.cmd == "run" and not args.dry_run:
        failed = sorted(r["id"] for r in records if r.get("status") != "ok")
        if failed:  # the tables above leave these cells out: a grid with failures is not done
            print(
                f"error: {len(failed)} of {len(records)} cells failed: {', '.join(failed)} "
                f"(each cell's result.json and log.txt under {out} say why; fix it and run the "
                "same command with --retry-failed)",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":  # a cell's subprocess
    sys.exit(cell_main())
