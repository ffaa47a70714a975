"""Table 5 of the paper: the HRNetV2 encoder of SeeThroughNet in three detectors.

Grid: {Mask R-CNN, Faster R-CNN, FCOS} x {ImageNet, SeeThroughNet w/o CPP, SeeThroughNet w/ CPP}
x {fine-tuned, frozen encoder} = 18 cells, times ``--seeds N`` repeats (``SEED`` 0..N-1). Each
cell is one ``transfer/train_net.py`` run in a subprocess (its log in ``<cell>/log.txt``) and
ends in ``<cell>/result.json`` (``status`` ``ok`` with the metrics, or ``failed`` with the error,
the return code and the log's tail); ``<cell>`` is ``<out>/<detector>/<init>_<mode>`` (seed 0)
or ``..._seed<k>``. The cells run on :func:`seethroughnet.experiments.grid.run_grid`: re-running
skips the ``ok`` and the failed cells, and ``--retry-failed`` runs the failed ones again; a
failed or interrupted cell resumes from its last checkpoint (``train_net --resume``). After every
cell ``<out>/table5.md`` (mean +- std over seeds) and ``<out>/table5.png`` are re-rendered
(:mod:`seethroughnet.experiments.report`). Folders of the earlier runner (``cell.json`` per
cell) are read as they are. Command line: ``python -m transfer.run_table5`` (:func:`main`).

Before anything runs, the two SeeThroughNet checkpoints are checked against the
``config.yaml`` that ``projects/SeeThroughNet/train_net.py`` writes beside them:
``--stn-weights`` must have been trained with CPP off (``MODEL.SEE_THROUGH.AUX_LOSS``
``upsample_ce`` / ``nearest_ce``), ``--stn-cpp-weights`` with CPP on (``cpp_kl``); a swapped,
unknown or unverifiable checkpoint is refused, naming the file. Every cell records the sha256 of
its encoder file, and a cell is not resumed with a different encoder file than it started with.

Paper setting (8 GPUs, HRNetV2-W48, the Cityscapes schedule of the configs):

    python -m transfer.run_table5 --out-dir output/table5 --num-gpus 8 --seeds 3 \
        --imagenet-weights weights/hrnetv2_w48_imagenet.pth \
        --stn-weights output/seethroughnet_wo_cpp/model_final.pth \
        --stn-cpp-weights output/seethroughnet_cpp/model_final.pth

On a SLURM cluster, one job per cell (8 GPUs each, 18 jobs at a time; docs/cluster.md): add
``--executor slurm --gpus-per-node 8 --cpus-per-task 64 --mem-gb 480 --partition gpu
--time-min 1440 --max-concurrent 18``.

CPU smoke run (a few iterations on small images; see transfer/README.md):

    python -m transfer.run_table5 --smoke --iters 4 --variant hrnet_w18_small_v2 ...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from seethroughnet.experiments import grid as grid_runner
from seethroughnet.experiments.executors import (
    LocalExecutor,
    add_executor_arguments,
    executor_from_args,
    grid_parallel,
)
from seethroughnet.experiments.grid import CellError

from .table5_grid import DETECTORS, INITS, MODES, NECKS, Cell, plan
from .table5_report import render_outputs

logger = logging.getLogger("transfer.table5")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

#: The SeeThroughNet config key that says whether CPP was on, and its values. These are the
#: values of projects/SeeThroughNet/seethroughnet/config.py (MODEL.SEE_THROUGH.AUX_LOSS).
AUX_LOSS_KEY = ("MODEL", "SEE_THROUGH", "AUX_LOSS")
CPP_ON = ("cpp_kl",)
CPP_OFF = ("upsample_ce", "nearest_ce")
#: init key -> the CPP setting its checkpoint must have been trained with
EXPECTED_CPP = {"stn_wo_cpp": False, "stn_cpp": True}
ENCODER_FILE = "encoder.json"

# A CPU smoke run: tiny images, few proposals, no data-loader workers, one final evaluation.
# fmt: off
SMOKE_OPTS = [
    "MODEL.DEVICE", "cpu",
    "SOLVER.IMS_PER_BATCH", "2",
    "SOLVER.BASE_LR", "0.0025",
    "SOLVER.WARMUP_ITERS", "0",
    "SOLVER.CHECKPOINT_PERIOD", "100000",
    "TEST.EVAL_PERIOD", "0",
    "INPUT.MIN_SIZE_TRAIN", "(128,)",
    "INPUT.MAX_SIZE_TRAIN", "256",
    "INPUT.MIN_SIZE_TEST", "128",
    "INPUT.MAX_SIZE_TEST", "256",
    "DATALOADER.NUM_WORKERS", "0",
    "MODEL.FPN.OUT_CHANNELS", "64",
    "MODEL.HRFPN.OUT_CHANNELS", "64",
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN", "500",
    "MODEL.RPN.POST_NMS_TOPK_TRAIN", "100",
    "MODEL.RPN.PRE_NMS_TOPK_TEST", "500",
    "MODEL.RPN.POST_NMS_TOPK_TEST", "100",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "64",
    # A few iterations from barely trained encoders: clip gradients so that the randomly
    # initialised FPN and heads do not diverge, and keep every scored detection (the model-zoo
    # COCO thresholds, 0.05 for every detector, would leave nothing to evaluate).
    "SOLVER.CLIP_GRADIENTS.ENABLED", "True",
    "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "norm",
    "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", "1.0",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
    "MODEL.FCOS.SCORE_THRESH_TEST", "0.0",
]
# fmt: on


class EncoderCheckError(ValueError):
    """A SeeThroughNet checkpoint is not the one its option asks for (or cannot be verified)."""


# --------------------------------------------------------------------------------- encoder checks
def sha256_file(path: str, _cache: Dict[Tuple[str, int, float], str] = {}) -> str:  # noqa: B006 - memo
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime)
    if key not in _cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _cache[key] = h.hexdigest()
    return _cache[key]


def read_aux_loss(checkpoint: str) -> Tuple[str, Optional[str]]:
    """``(config_path, MODEL.SEE_THROUGH.AUX_LOSS)`` from the ``config.yaml`` beside a
    SeeThroughNet checkpoint (``None`` if the key is absent). Raises :class:`EncoderCheckError`
    when the file is missing or unreadable."""
    import yaml

    cfg_path = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "config.yaml")
    if not os.path.isfile(cfg_path):
        raise EncoderCheckError(
            f"{checkpoint}: no config.yaml beside it ({cfg_path}), so whether it was trained with "
            "CPP cannot be checked; keep the checkpoint in the OUTPUT_DIR that "
            "projects/SeeThroughNet/train_net.py wrote (config.yaml included)"
        )
    try:
        with open(cfg_path) as f:
            node = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise EncoderCheckError(
            f"{cfg_path} (config of {checkpoint}) cannot be read: {e}"
        ) from None
    for k in AUX_LOSS_KEY:
        node = node.get(k) if isinstance(node, dict) else None
    return cfg_path, node


def check_encoder(init: str, checkpoint: str) -> dict:
    """The CPP setting of the SeeThroughNet checkpoint for ``init`` (``stn_wo_cpp``/``stn_cpp``)
    must be the one the row is about; returns ``{"config", "aux_loss", "cpp"}``."""
    option = INITS[init][2]
    cfg_path, aux = read_aux_loss(checkpoint)
    key = ".".join(AUX_LOSS_KEY)
    if aux in CPP_ON:
        cpp = True
    elif aux in CPP_OFF:
        cpp = False
    else:
        raise EncoderCheckError(
            f"{option} {checkpoint}: {cfg_path} has {key} {aux!r}, which is neither CPP on "
            f"{list(CPP_ON)} nor CPP off {list(CPP_OFF)}; pass a checkpoint trained by "
            "projects/SeeThroughNet/train_net.py"
        )
    if cpp != EXPECTED_CPP[init]:
        want = "WITH CPP" if EXPECTED_CPP[init] else "WITHOUT CPP"
        raise EncoderCheckError(
            f"{option} {checkpoint}: {cfg_path} has {key} {aux!r} (CPP {'on' if cpp else 'off'}), "
            f"but {option} "
            f"takes the encoder trained {want}; swapped --stn-weights and --stn-cpp-weights?"
        )
    return {"config": cfg_path, "aux_loss": aux, "cpp": cpp}


def check_encoders(weights: Dict[str, str], inits: Iterable[str]) -> Dict[str, dict]:
    """:func:`check_encoder` for every SeeThroughNet init in ``inits`` that has a file; the two
    SeeThroughNet rows may not share a file."""
    out = {}
    for init in inits:
        path = weights.get(init) or ""
        if init in EXPECTED_CPP and path and os.path.isfile(path):
            out[init] = check_encoder(init, path)
    a, b = weights.get("stn_wo_cpp"), weights.get("stn_cpp")
    if a and b and os.path.isfile(a) and os.path.isfile(b) and os.path.samefile(a, b):
        raise EncoderCheckError(f"--stn-weights and --stn-cpp-weights are the same file {a}")
    return out


def run_grid(
    cells: Sequence[Cell],
    out_dir: str,
    run_cell: Callable[[Cell, str], dict],
    *,
    retry_failed: bool = False,
    render: bool = True,
    parallel: int = 1,
    on_interrupt: Optional[Callable[[], None]] = None,
) -> Dict[str, dict]:
    """Run the cells not finished yet (failed ones too with ``retry_failed``) on
    :func:`seethroughnet.experiments.grid.run_grid`. ``run_cell(cell, cell_dir)`` returns a
    dict with ``metrics`` (``{"bbox": {...}, "segm": {...}}``) or raises; either way a
    ``result.json`` is written and the grid goes on; with ``render`` the table and the chart are
    re-rendered after every cell; ``parallel`` cells at a time (submitted jobs: the executor's
    ``max_concurrent``). Returns ``{cell.key: record}`` for all ``cells``."""
    by_key = {c.key: c for c in cells}
    jobs = [
        grid_runner.Cell(
            c.key, record={"detector": c.detector, "init": c.init, "mode": c.mode, "seed": c.seed}
        )
        for c in cells
    ]
    after = (lambda _records: render_outputs(out_dir)) if render else None
    return grid_runner.run_grid(
        jobs,
        out_dir,
        lambda job, d: run_cell(by_key[job.name], d),
        retry_failed=retry_failed,
        after_cell=after,
        parallel=parallel,
        on_interrupt=on_interrupt,
    )


def cell_command(
    cell: Cell,
    cell_dir: str,
    *,
    weights: Dict[str, str],
    num_gpus: int = 1,
    extra_opts: Sequence[str] = (),
    config_dir: str = os.path.join(HERE, "configs"),
    cell_opts: Optional[Callable[[Cell], Sequence[str]]] = None,
) -> List[str]:
    """The ``transfer/train_net.py`` command line of a cell. ``--resume``: a cell whose folder
    holds a checkpoint (an earlier, failed or interrupted attempt) continues from it."""
    label, encoder_init, option = INITS[cell.init]
    path = weights.get(cell.init) or ""
    if not path:
        raise CellError(f"no encoder weights for {label!r}: pass {option} PATH")
    if not os.path.isfile(path):
        raise CellError(f"{option} {path}: file not found")
    config = os.path.join(config_dir, DETECTORS[cell.detector][1])
    return [
        sys.executable,
        "-m",
        "transfer.train_net",
        "--config-file",
        config,
        "--num-gpus",
        str(num_gpus),
        "--resume",
        *extra_opts,  # user/smoke options first, so that the cell's own keys win
        *(cell_opts(cell) if cell_opts else ()),
        "MODEL.TRANSFER.ENCODER_INIT",
        encoder_init,
        "MODEL.TRANSFER.ENCODER_WEIGHTS",
        os.path.abspath(path),
        "MODEL.TRANSFER.FREEZE_ENCODER",
        str(cell.mode == "frozen"),
        "SEED",
        str(cell.seed),
        "OUTPUT_DIR",
        os.path.abspath(cell_dir),
    ]


def _guard_encoder(cell: Cell, cell_dir: str, path: str) -> dict:
    """Record the encoder file of the cell (``encoder.json``); refuse to resume a cell whose
    checkpoint was trained from a different encoder file."""
    info = {"file": os.path.abspath(path), "sha256": sha256_file(path)}
    if cell.init in EXPECTED_CPP:
        info.update(check_encoder(cell.init, path))
    rec_path = os.path.join(cell_dir, ENCODER_FILE)
    if os.path.isfile(rec_path) and os.path.isfile(os.path.join(cell_dir, "last_checkpoint")):
        with open(rec_path) as f:
            old = json.load(f)
        if old.get("sha256") != info["sha256"]:
            raise CellError(
                f"{cell.key}: its checkpoint in {cell_dir} was trained from {old.get('file')} "
                f"(sha256 {str(old.get('sha256'))[:12]}...), not from {path} (sha256 "
                f"{info['sha256'][:12]}...); "
                f"delete {cell_dir} to start the cell again with the new encoder"
            )
    grid_runner.write_json(rec_path, info)
    return info


def subprocess_runner(
    *,
    weights: Dict[str, str],
    num_gpus: int = 1,
    extra_opts: Sequence[str] = (),
    timeout: Optional[float] = None,
    cell_opts: Optional[Callable[[Cell], Sequence[str]]] = None,
    executor=None,
) -> Callable[[Cell, str], dict]:
    """A ``run_cell`` that launches ``transfer/train_net.py`` and reads its results file.
    ``executor``: where the command runs (:mod:`seethroughnet.experiments.executors`; default a
    local subprocess, else one submitit job per cell); the record says where (``executor``,
    ``job_id``, ``host``)."""
    if executor is None:
        executor = LocalExecutor()

    def run(cell: Cell, cell_dir: str) -> dict:
        cmd = cell_command(
            cell,
            cell_dir,
            weights=weights,
            num_gpus=num_gpus,
            extra_opts=extra_opts,
            cell_opts=cell_opts,
        )
        encoder = _guard_encoder(cell, cell_dir, weights[cell.init])
        last = os.path.join(cell_dir, "last_checkpoint")
        resumed_from = None
        if os.path.isfile(last):
            with open(last) as f:
                resumed_from = f.read().strip() or None
        log_path = os.path.join(cell_dir, grid_runner.LOG_FILE)
        results_path = os.path.join(cell_dir, "transfer_results.json")
        if os.path.exists(results_path):
            os.unlink(results_path)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
        where = executor.run(
            cmd,
            cell_dir,
            timeout=timeout,
            env=env,
            cwd=REPO,
            what="train_net",
            notes=[f"resuming from {resumed_from}"] if resumed_from else (),
            name=f"table5_{cell.key.replace('/', '_')}",
        )
        if not os.path.isfile(results_path):
            raise CellError(f"train_net finished but wrote no {results_path} (log: {log_path})")
        with open(results_path) as f:
            res = json.load(f)
        return {
            "metrics": res.get("metrics", {}),
            "encoder_init": res.get("encoder_init"),
            "max_iter": res.get("max_iter"),
            "command": cmd,
            "log": log_path,
            "resumed_from": resumed_from,
            "encoder_file": encoder["file"],
            "encoder_sha256": encoder["sha256"],
            **({"aux_loss": encoder["aux_loss"]} if "aux_loss" in encoder else {}),
            **where,
        }

    return run


# ---------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out-dir", default="output/table5")
    p.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=list(DETECTORS))
    p.add_argument("--inits", nargs="+", default=list(INITS), choices=list(INITS))
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument(
        "--imagenet-weights", default="", help="HRNetV2 ImageNet checkpoint (timm/official layout)"
    )
    p.add_argument("--stn-weights", default="", help="SeeThroughNet checkpoint trained WITHOUT CPP")
    p.add_argument(
        "--stn-cpp-weights", default="", help="SeeThroughNet checkpoint trained WITH CPP"
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="repeats per cell (SEED 0..N-1); the table shows mean ± std",
    )
    p.add_argument(
        "--neck",
        choices=list(NECKS),
        default="hrfpn",
        help="hrfpn (HRNet's pyramid, default) or fpn (detectron2's FPN; FCOS over res3-res5)",
    )
    p.add_argument(
        "--recompute-bn-imagenet",
        type=int,
        default=0,
        metavar="ITERS",
        help="ImageNet rows: re-estimate the encoder's BatchNorm statistics on ITERS training "
        "batches before training (MODEL.TRANSFER.ENCODER_BN_RECOMPUTE_ITERS); 0 = keep ImageNet's",
    )
    p.add_argument(
        "--variant",
        default=None,
        help="MODEL.HRNET.VARIANT (must match the checkpoints; configs: hrnet_w48)",
    )
    p.add_argument(
        "--dataset-root",
        default=None,
        help="DATASETS.CITYSCAPES_ROOT (converted with convert_cityscapes_to_coco)",
    )
    p.add_argument("--num-gpus", type=int, default=1)
    p.add_argument(
        "--iters", type=int, default=None, help="SOLVER.MAX_ITER (STEPS scaled to 3/4 of it)"
    )
    p.add_argument("--ims-per-batch", type=int, default=None, help="SOLVER.IMS_PER_BATCH")
    p.add_argument(
        "--min-size", type=int, default=None, help="INPUT.MIN_SIZE_TRAIN/TEST (single value)"
    )
    p.add_argument("--max-size", type=int, default=None, help="INPUT.MAX_SIZE_TRAIN/TEST")
    p.add_argument(
        "--smoke", action="store_true", help="CPU smoke preset (tiny images, few proposals)"
    )
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="run the cells that failed before again (by default they are kept)",
    )
    p.add_argument("--keep-failed", action="store_true", help=argparse.SUPPRESS)  # removed flag
    p.add_argument(
        "--render-only", action="store_true", help="only re-render table5.md / table5.png"
    )
    p.add_argument("--timeout", type=float, default=None, help="seconds per cell")
    p.add_argument("--title", default=None)
    add_executor_arguments(p)
    p.add_argument(
        "opts", nargs=argparse.REMAINDER, help="more KEY VALUE config overrides for every cell"
    )
    return p


def extra_opts_from_args(args) -> List[str]:
    opts: List[str] = list(SMOKE_OPTS) if args.smoke else []
    opts += ["MODEL.BACKBONE.NAME", NECKS[args.neck]]
    if args.variant:
        opts += ["MODEL.HRNET.VARIANT", args.variant]
    if args.dataset_root:
        opts += ["DATASETS.CITYSCAPES_ROOT", os.path.abspath(args.dataset_root)]
    if args.iters is not None:
        opts += [
            "SOLVER.MAX_ITER",
            str(args.iters),
            "SOLVER.STEPS",
            f"({max(1, args.iters * 3 // 4)},)",
        ]
    if args.ims_per_batch is not None:
        opts += ["SOLVER.IMS_PER_BATCH", str(args.ims_per_batch)]
    if args.min_size is not None:
        opts += [
            "INPUT.MIN_SIZE_TRAIN",
            f"({args.min_size},)",
            "INPUT.MIN_SIZE_TEST",
            str(args.min_size),
        ]
    if args.max_size is not None:
        opts += [
            "INPUT.MAX_SIZE_TRAIN",
            str(args.max_size),
            "INPUT.MAX_SIZE_TEST",
            str(args.max_size),
        ]
    rest = [o for o in args.opts if o != "--"]
    if len(rest) % 2:
        raise SystemExit(f"config overrides must be KEY VALUE pairs, got {rest}")
    return opts + rest


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.keep_failed:
        print(
            "error: --keep-failed is gone: failed cells are kept by default now (as in "
            "tools/run_cpp_study.py); pass --retry-failed to run them again",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s] %(name)s %(levelname)s: %(message)s"
    )
    weights = {
        "imagenet": args.imagenet_weights,
        "stn_wo_cpp": args.stn_weights,
        "stn_cpp": args.stn_cpp_weights,
    }
    if not args.render_only:
        try:
            cells = plan(args.detectors, args.inits, args.modes, args.seeds)
            checked = check_encoders(weights, args.inits)
        except (EncoderCheckError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        for init, c in checked.items():
            logger.info(
                "%s %s: %s %s in %s",
                INITS[init][2],
                weights[init],
                ".".join(AUX_LOSS_KEY),
                c["aux_loss"],
                c["config"],
            )
    os.makedirs(args.out_dir, exist_ok=True)
    if args.title is not None:
        grid_runner.write_json(os.path.join(args.out_dir, "grid.json"), {"title": args.title})
    if args.render_only:
        md, png = render_outputs(args.out_dir)
        print(open(md).read())
        print(f"wrote {md} and {png}")
        return 0
    bn_iters = args.recompute_bn_imagenet
    try:
        executor = executor_from_args(args, max_nodes=1)
    except (RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # a cell job's train_net uses the GPUs of its node
    num_gpus = args.num_gpus if args.executor == "local" else max(1, args.gpus_per_node)

    def cell_opts(cell: Cell) -> List[str]:
        if cell.init == "imagenet" and bn_iters > 0:
            return ["MODEL.TRANSFER.ENCODER_BN_RECOMPUTE_ITERS", str(bn_iters)]
        return []

    runner = subprocess_runner(
        weights=weights,
        num_gpus=num_gpus,
        extra_opts=extra_opts_from_args(args),
        timeout=args.timeout,
        cell_opts=cell_opts,
        executor=executor,
    )
    records = run_grid(
        cells,
        args.out_dir,
        runner,
        retry_failed=args.retry_failed,
        parallel=grid_parallel(executor, 1),
        on_interrupt=getattr(executor, "stop", None),
    )
    md, png = render_outputs(args.out_dir)
    print(open(md).read())
    n_ok = sum(r.get("status") == "ok" for r in records.values())
    print(f"{n_ok}/{len(records)} cells ok; wrote {md} and {png}")
    return 0 if n_ok == len(records) else 1
