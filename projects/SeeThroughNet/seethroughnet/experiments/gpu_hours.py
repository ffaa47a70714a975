"""GPU-hours of the paper's training runs, from a training step measured on this machine.

For every run of a table (a grid's cells, or a list of configs), the training cost is

    GPU-hours = runs x MAX_ITER x IMS_PER_BATCH x t_image(crop) / speedup / 3600

* ``t_image(crop)``: seconds of one training image (forward, losses, backward, SGD step) at the
  config's ``INPUT.CROP.SIZE``, on one CPU thread. It is *measured* at a small crop
  (``measure_size``, process CPU time, after warm-up steps) and scaled to the config's crop by the
  model's **FLOP ratio** ``flops(crop) / flops(measure_size)``, where ``flops = a*H*W + b`` is
  fitted through two fvcore counts of single-image inference (``fit_sizes``); the training step's
  cost (two resolutions, auxiliary heads, backward) is taken to scale like the inference count,
  which holds where every op is linear in the pixel count (docs/seethroughnet_benchmark.md
  shows it for SeeThroughNet).
* ``speedup``: how much faster the stated GPU runs the same step than one CPU thread here, taken
  as the ratio of their FP32 matrix-multiply rates: the GPU's stated peak (its datasheet) over
  the single-thread SGEMM rate *measured* here (:func:`sgemm_gflops`). Both sides run convolutions
  at a similar fraction of their matmul rate only approximately, so the result is an estimate;
  where a GPU step time has been measured (``make gpu-check``), use it instead of this.

Runs with several GPUs cost the same GPU-hours (per-GPU batch x GPUs = IMS_PER_BATCH), ignoring
communication. Paper-scale configs with SyncBN are measured with BN (one process; same flops;
the trainers' :func:`~seethroughnet.utils.norm.convert_sync_batchnorm_to_bn`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from seethroughnet.utils.norm import convert_sync_batchnorm_to_bn

__all__ = [
    "sgemm_gflops",
    "training_inputs",
    "measure_image_seconds",
    "inference_flops",
    "fit_flops",
    "ModelCost",
    "measure_model",
    "run_rows",
    "estimate",
]

#: measuring overrides: one CPU process, random init, no weight files
MEASURE_OPTS = (
    "MODEL.DEVICE",
    "cpu",
    "MODEL.WEIGHTS",
    "",
    "MODEL.REQUIRES_PRETRAINED",
    "False",
    "DATALOADER.NUM_WORKERS",
    "0",
)


def sgemm_gflops(n: int = 1024, reps: int = 5) -> float:
    """Measured FP32 matrix-multiply rate of this process's threads (GFLOP/s, 2*n^3 per product;
    process CPU time, best of ``reps``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.process_time()
        a @ b
        best = min(best, time.process_time() - t0)
    return 2 * n**3 / max(best, 1e-9) / 1e9


def training_inputs(
    batch: int, size: Tuple[int, int], num_classes: int, seed: int = 0
) -> List[dict]:
    """``batch`` detectron2 training inputs of ``size``: uint8 CHW images and int64 label maps
    with every class present (random blocks), as a dataset mapper gives them."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    out = []
    for _ in range(batch):
        image = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
        blocks = torch.randint(0, num_classes, ((h + 7) // 8, (w + 7) // 8), generator=g)
        sem_seg = blocks.repeat_interleave(8, 0).repeat_interleave(8, 1)[:h, :w].contiguous()
        out.append({"image": image, "sem_seg": sem_seg.long(), "height": h, "width": w})
    return out


DETECTORS = ("GeneralizedRCNN", "TransferFCOS")


def is_detector(cfg) -> bool:
    """Whether ``cfg`` builds one of Table 5's detectors (else a semantic segmentor)."""
    return cfg.MODEL.META_ARCHITECTURE in DETECTORS


def train_size(cfg) -> Tuple[int, int]:
    """The training input size of ``cfg``: its crop for a semantic segmentor; for a detector
    (no crop) the mean of ``MIN_SIZE_TRAIN`` as the short side and twice that, at most
    ``MAX_SIZE_TRAIN``, as the long side (Cityscapes' 1:2 images)."""
    if not is_detector(cfg):
        return tuple(int(x) for x in cfg.INPUT.CROP.SIZE)
    short = int(round(float(np.mean(cfg.INPUT.MIN_SIZE_TRAIN))))
    return short, min(2 * short, int(cfg.INPUT.MAX_SIZE_TRAIN))


def detection_inputs(
    batch: int, size: Tuple[int, int], num_classes: int, boxes: int = 10, seed: int = 0
) -> List[dict]:
    """``batch`` detectron2 detection training inputs of ``size``: uint8 images with ``boxes``
    random boxes each (classes, boxes, and rectangle polygons as masks)."""
    from detectron2.structures import Boxes, Instances, PolygonMasks

    g = torch.Generator().manual_seed(seed)
    h, w = size
    out = []
    for _ in range(batch):
        xy = torch.rand(boxes, 2, generator=g) * torch.tensor([w * 0.8, h * 0.8])
        wh = (torch.rand(boxes, 2, generator=g) * 0.15 + 0.02) * torch.tensor([w, h])
        xyxy = torch.cat([xy, xy + wh], 1)
        inst = Instances((h, w))
        inst.gt_boxes = Boxes(xyxy)
        inst.gt_classes = torch.randint(0, num_classes, (boxes,), generator=g)
        inst.gt_masks = PolygonMasks(
            [[[x0, y0, x1, y0, x1, y1, x0, y1]] for x0, y0, x1, y1 in xyxy.tolist()]
        )
        image = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
        out.append({"image": image, "instances": inst, "height": h, "width": w})
    return out


def _train_step(model, optimizer, inputs) -> None:
    from detectron2.utils.events import EventStorage

    with EventStorage():  # detectors log training statistics
        losses = model(inputs)
    total = sum(losses.values())
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()


def measure_image_seconds(model, inputs: List[dict], warmup: int = 1, steps: int = 2) -> float:
    """Process CPU seconds of one training image: the median over ``steps`` measured SGD steps
    (after ``warmup``) on the batch ``inputs`` (:func:`training_inputs` or
    :func:`detection_inputs`), divided by its length."""
    model.train()
    # lr 0: the same work per step, and random-init detectors cannot diverge while measured
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    for _ in range(warmup):
        _train_step(model, opt, inputs)
    times = []
    for _ in range(steps):
        t0 = time.process_time()
        _train_step(model, opt, inputs)
        times.append(time.process_time() - t0)
    return float(np.median(times)) / len(inputs)


class _ImageToLogits(torch.nn.Module):
    """``model`` (a detectron2 semantic segmentor) as a tensor -> tensor function, for tracing."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        h, w = image.shape[-2:]
        return self.model([{"image": image, "height": h, "width": w}])[0]["sem_seg"]


def inference_flops(model, size: Tuple[int, int]) -> float:
    """fvcore flops of single-image inference at ``size``. SeeThroughNet's ``inference`` rounds
    Python sizes, which tracing rejects: its network is counted by the benchmark's traceable
    single-scale pass (:func:`benchmark_flops.count_flops`, normalisation excluded)."""
    from fvcore.nn import FlopCountAnalysis

    from seethroughnet.nn.seethroughnet import SeeThroughNet

    from .benchmark_flops import count_flops

    model.eval()
    if isinstance(getattr(model, "net", None), SeeThroughNet):
        return count_flops(model.net, size)["total"]
    image = torch.zeros(3, *size, dtype=torch.uint8)
    with torch.no_grad():
        counter = FlopCountAnalysis(_ImageToLogits(model), (image,))
        counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        counter.tracer_warnings("none")
        return float(counter.total())


def fit_flops(model, sizes: Sequence[Tuple[int, int]]) -> Tuple[float, float]:
    """``(a, b)`` of ``flops = a*H*W + b`` through fvcore counts of single-image inference at the
    two ``sizes`` (one multiply-add = one flop, fvcore's convention)."""
    (h1, w1), (h2, w2) = sizes
    f1, f2 = inference_flops(model, (h1, w1)), inference_flops(model, (h2, w2))
    a = (f2 - f1) / (h2 * w2 - h1 * w1)
    return a, f1 - a * h1 * w1


@dataclass
class ModelCost:
    """A model's measured cost: seconds per training image at ``measure_size`` (one CPU thread)
    and its inference flop line ``a*H*W + b``; :meth:`image_seconds` scales to any crop by the
    line (``a=None``, a detector measured at its own training size: by the pixel count)."""

    name: str
    seconds: float
    measure_size: Tuple[int, int]
    a: Optional[float]
    b: Optional[float]

    def flops(self, size: Tuple[int, int]) -> float:
        return self.a * size[0] * size[1] + self.b

    def image_seconds(self, size: Tuple[int, int]) -> float:
        if self.a is None:  # a detector, measured at its training size: scaled by pixels
            return self.seconds * size[0] * size[1] / (self.measure_size[0] * self.measure_size[1])
        return self.seconds * self.flops(size) / self.flops(self.measure_size)


def measure_model(
    name: str,
    config_file: str,
    opts: Sequence[str] = (),
    measure_size: Tuple[int, int] = (128, 256),
    fit_sizes: Optional[Sequence[Tuple[int, int]]] = None,
    warmup: int = 1,
    steps: int = 2,
    extra_config: Sequence = (),
) -> ModelCost:
    """Build ``config_file`` + ``opts`` (random init, CPU, BN) and measure it (:class:`ModelCost`);
    the FLOP line is fitted at ``fit_sizes`` (default ``measure_size`` and twice its sides).
    ``extra_config``: key adders for configs of another project (Table 5's detectors:
    ``transfer.config.add_transfer_config``, whose caller also imports ``transfer.modeling`` to
    register the detectors' backbones; this package does not import ``transfer``)."""
    from detectron2.modeling import build_model

    from .models import load_config

    cfg = load_config(config_file, list(opts) + list(MEASURE_OPTS), extra_config=extra_config)
    torch.manual_seed(0)
    if is_detector(cfg):
        return _measure_detector(name, cfg, warmup, steps)
    model = convert_sync_batchnorm_to_bn(build_model(cfg))
    h, w = measure_size
    fit = fit_sizes or [(h, w), (2 * h, 2 * w)]
    a, b = fit_flops(model, fit)
    # batch 2: BatchNorm after a global pooling (PSP's) needs two images
    inputs = training_inputs(2, measure_size, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES)
    secs = measure_image_seconds(model, inputs, warmup=warmup, steps=steps)
    return ModelCost(name, secs, measure_size, a, b)


def _measure_detector(name: str, cfg, warmup: int, steps: int) -> "ModelCost":
    """A detector is measured at its own training size (:func:`train_size`), its encoder from
    random init (the cost of a step does not depend on the weights), batch 1: no FLOP scaling."""
    from detectron2.modeling import build_model

    if "TRANSFER" in cfg.MODEL:  # Table 5's detectors (transfer/config.py): no encoder weights
        cfg.MODEL.TRANSFER.ENCODER_INIT = "random"
        cfg.MODEL.TRANSFER.ENCODER_WEIGHTS = ""
    model = convert_sync_batchnorm_to_bn(build_model(cfg))
    size = train_size(cfg)
    inputs = detection_inputs(1, size, cfg.MODEL.ROI_HEADS.NUM_CLASSES)
    secs = measure_image_seconds(model, inputs, warmup=warmup, steps=steps)
    return ModelCost(name, secs, size, a=None, b=None)


def run_rows(
    runs: Iterable[Mapping],
    costs: Mapping[str, ModelCost],
    speedup: float,
    extra_config: Sequence = (),
) -> List[Dict[str, object]]:
    """One row per run group ``{"table", "name", "model", "config", "opts", "runs"}``: its crop,
    batch and iterations read from the built config, CPU seconds per step, estimated GPU seconds
    per step, GPU-hours of one run and of all ``runs``."""
    from .models import load_config

    rows = []
    for r in runs:
        cfg = load_config(
            r["config"], list(r.get("opts", ())) + list(MEASURE_OPTS), extra_config=extra_config
        )
        crop = train_size(cfg)
        batch, iters = int(cfg.SOLVER.IMS_PER_BATCH), int(cfg.SOLVER.MAX_ITER)
        cpu_step = costs[r["model"]].image_seconds(crop) * batch
        gpu_step = cpu_step / speedup
        one = gpu_step * iters / 3600
        rows.append(
            {
                "table": r["table"],
                "name": r["name"],
                "model": r["model"],
                "crop": crop,
                "batch": batch,
                "iters": iters,
                "runs": int(r["runs"]),
                "cpu_step_s": cpu_step,
                "gpu_step_s": gpu_step,
                "gpu_hours_per_run": one,
                "gpu_hours": one * int(r["runs"]),
            }
        )
    return rows


def estimate(
    models: Mapping[str, Mapping],
    runs: Sequence[Mapping],
    gpu_peak_tflops: float,
    measure_size: Tuple[int, int] = (128, 256),
    warmup: int = 1,
    steps: int = 2,
    progress: bool = True,
    extra_config: Sequence = (),
) -> Tuple[List[Dict[str, object]], Dict[str, ModelCost], float]:
    """Measure every model that ``runs`` name (``models[name] = {"config", "opts"}``), the SGEMM
    rate, and return ``(rows, costs, cpu_sgemm_gflops)`` (:func:`run_rows`)."""
    from tqdm import tqdm

    needed = sorted({r["model"] for r in runs})
    unknown = [m for m in needed if m not in models]
    if unknown:
        raise KeyError(f"runs name models that the cost file does not define: {unknown}")
    costs = {}
    for name in tqdm(needed, desc="measuring models", disable=not progress):
        m = models[name]
        costs[name] = measure_model(
            name,
            m["config"],
            m.get("opts", ()),
            measure_size,
            warmup=warmup,
            steps=steps,
            extra_config=extra_config,
        )
    cpu = sgemm_gflops()
    speedup = gpu_peak_tflops * 1000 / cpu
    return run_rows(runs, costs, speedup, extra_config), costs, cpu


def runs_from_grid(table: str, grid_file: str) -> Tuple[Dict[str, dict], List[dict]]:
    """``(models, runs)`` of a CPP-study grid: its models (name -> the config of its cells on the
    grid's first dataset) and one run group per (model, dataset) with the number of its cells
    (variants x seeds x sweep points). A group's crop, batch and schedule are those of its first
    cell; the cells of a group differ only in their auxiliary heads (Figure 5's 0-4), whose cost
    the measured model's setting stands for."""
    from .cpp_study import cell_config, expand_grid, load_grid

    grid = load_grid(grid_file)
    first = next(iter(grid["datasets"]))
    models = {
        name: {"config": cell_config(grid, name, first), "opts": m.get("opts", [])}
        for name, m in grid["models"].items()
    }
    groups: Dict[Tuple[str, str], dict] = {}
    for cell in expand_grid(grid):
        key = (cell["model"], cell["dataset"])
        if key not in groups:
            groups[key] = {
                "table": table,
                "name": f"{cell['model']} / {cell['dataset']}",
                "model": cell["model"],
                "config": cell["config"],
                "opts": cell["opts"],
                "runs": 0,
            }
        groups[key]["runs"] += 1
    return models, list(groups.values())


def load_cost_file(path: str) -> dict:
    """The cost file (``projects/SeeThroughNet/configs/gpu_hours.yaml``): ``gpu`` (``name``,
    ``peak_tflops``), ``measure_size``, ``models`` and ``tables``, each table either a ``grid``
    file or a list of ``runs`` (``name``, ``config``, ``opts``, ``runs``, and ``model``, a name in
    ``models``, where not the run's own config). Returns
    ``{"gpu", "measure_size", "models", "runs"}`` with the grids expanded."""
    from seethroughnet.utils.safe_load import load_yaml_file

    spec = load_yaml_file(path, what="GPU-hours cost file")
    for key in ("gpu", "tables"):
        if key not in spec:
            raise ValueError(f"{path}: the cost file needs a {key!r} entry")
    models = dict(spec.get("models") or {})
    runs: List[dict] = []
    for t in spec["tables"]:
        if "grid" in t:
            gm, gr = runs_from_grid(t["table"], t["grid"])
            for name, m in gm.items():
                models.setdefault(name, m)
            runs += gr
        else:
            for r in t["runs"]:
                # a run without a ``model`` is measured with its own config and opts
                model = r.get("model") or " ".join([r["config"], *map(str, r.get("opts", []))])
                models.setdefault(model, {"config": r["config"], "opts": r.get("opts", [])})
                runs.append({"table": t["table"], **r, "model": model})
    return {
        "gpu": spec["gpu"],
        "measure_size": tuple(spec.get("measure_size", (128, 256))),
        "models": models,
        "runs": runs,
    }


ROW_HEADERS = [
    "table",
    "runs of",
    "crop",
    "batch",
    "iterations",
    "runs",
    "CPU s/step (1 thread, est.)",
    "GPU s/step (est.)",
    "GPU-h per run",
    "GPU-h",
]


def markdown(rows, costs, cpu_gflops, gpu: Mapping) -> str:
    """The estimate as markdown: the per-model measurements, the per-run-group rows, the totals
    per table."""
    from .report import markdown_table

    speedup = float(gpu["peak_tflops"]) * 1000 / cpu_gflops
    out = [
        f"CPU: one thread, SGEMM {cpu_gflops:.1f} GFLOP/s (measured). GPU: {gpu['name']}, "
        f"{float(gpu['peak_tflops']):g} TFLOP/s FP32 peak (stated) -> speedup {speedup:.0f}x.",
        "",
        markdown_table(
            ["model", "CPU s / training image", "at", "GFLOPs (inference) at that size"],
            [
                [
                    os.path.basename(c.name),
                    f"{c.seconds:.2f}",
                    "x".join(map(str, c.measure_size)),
                    f"{c.flops(c.measure_size) / 1e9:.1f}" if c.a is not None else "not counted",
                ]
                for c in costs.values()
            ],
        ),
        "",
        markdown_table(
            ROW_HEADERS,
            [
                [
                    r["table"],
                    r["name"],
                    "x".join(map(str, r["crop"])),
                    r["batch"],
                    r["iters"],
                    r["runs"],
                    f"{r['cpu_step_s']:.1f}",
                    f"{r['gpu_step_s']:.2f}",
                    f"{r['gpu_hours_per_run']:.1f}",
                    f"{r['gpu_hours']:.0f}",
                ]
                for r in rows
            ],
        ),
        "",
    ]
    totals: Dict[str, float] = {}
    for r in rows:
        totals[r["table"]] = totals.get(r["table"], 0.0) + r["gpu_hours"]
    out.append(
        markdown_table(["table", "GPU-hours (est.)"], [[t, f"{h:.0f}"] for t, h in totals.items()])
    )
    return "\n".join(out) + "\n"


def main(argv=None, extra_config: Sequence = ()) -> int:
    """The command line; ``extra_config`` as in :func:`measure_model` (tools/estimate_gpu_hours.py
    passes the transfer keys for Table 5's detector configs)."""
    import argparse

    from seethroughnet.utils.atomic import write_json_atomic, write_text_atomic

    p = argparse.ArgumentParser(
        description="Estimated GPU-hours of the paper's training runs from a training step "
        "measured on one CPU thread (REPRODUCE.md).",
    )
    p.add_argument("--cost-file", default="projects/SeeThroughNet/configs/gpu_hours.yaml")
    p.add_argument("--out", required=True, help="folder for gpu_hours.md and gpu_hours.json")
    p.add_argument("--table", action="append", help="only these tables (repeatable)")
    p.add_argument("--steps", type=int, default=2, help="measured steps per model")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--measure-size", nargs=2, type=int, metavar=("H", "W"))
    p.add_argument("--opts", nargs="*", default=[], help="KEY VALUE overrides for every model")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    spec = load_cost_file(a.cost_file)
    runs = [r for r in spec["runs"] if not a.table or r["table"] in a.table]
    if not runs:
        raise SystemExit(f"{a.cost_file}: no runs of the tables {a.table}")
    models = {k: {**m, "opts": list(m.get("opts", [])) + a.opts} for k, m in spec["models"].items()}
    runs = [{**r, "opts": list(r.get("opts", [])) + a.opts} for r in runs]
    size = tuple(a.measure_size) if a.measure_size else spec["measure_size"]
    rows, costs, cpu = estimate(
        models,
        runs,
        float(spec["gpu"]["peak_tflops"]),
        size,
        a.warmup,
        a.steps,
        extra_config=extra_config,
    )
    text = markdown(rows, costs, cpu, spec["gpu"])
    os.makedirs(a.out, exist_ok=True)
    write_text_atomic(os.path.join(a.out, "gpu_hours.md"), text)
    write_json_atomic(
        os.path.join(a.out, "gpu_hours.json"),
        {
            "gpu": spec["gpu"],
            "cpu_sgemm_gflops": cpu,
            "models": {k: vars(c) for k, c in costs.items()},
            "rows": rows,
        },
        indent=1,
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
