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

**Memory.** A run's peak GPU memory per GPU is estimated as parameters + gradients + SGD momentum
(the trainable parameters twice more) + the activations its per-GPU images keep for backward:
the bytes of the distinct storages autograd saves during one training forward
(:func:`saved_tensor_bytes`, ``torch.autograd.graph.saved_tensors_hooks``), counted on the CPU at
two sizes and fitted per image as ``a*H*W + b`` (:class:`ModelMemory`), evaluated at the run's
crop (a detector: its largest training size). Workspace and temporaries of the backward pass are
not counted; the calibration against published training memory
(:mod:`~seethroughnet.experiments.gpu_calibration`) measures what that leaves out.

**Calibration.** Both estimates are multiplied by the range of published / estimated ratios of
the calibrators of the run's family (:mod:`~seethroughnet.experiments.gpu_calibration`, the
file ``configs/gpu_hours_calibration.yaml``): the FP32-peak time is a lower bound, not a plan.
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

#: measuring overrides: one CPU process, random init, no weight files, and no padding of the
#: training inputs to the crop inside the model (INPUT.PAD.MODE "normalized", the Table 1 configs):
#: a step is measured at the measured size and scaled to the crop by the FLOP line
MEASURE_OPTS = (
    "INPUT.PAD.MODE",
    "none",
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


def max_train_size(cfg) -> Tuple[int, int]:
    """The largest training input of ``cfg`` (what its peak memory is planned for): the crop of a
    semantic segmentor; for a detector the largest ``MIN_SIZE_TRAIN`` as the short side and twice
    that, at most ``MAX_SIZE_TRAIN``, as the long side."""
    if not is_detector(cfg):
        return train_size(cfg)
    short = int(max(cfg.INPUT.MIN_SIZE_TRAIN))
    return short, min(2 * short, int(cfg.INPUT.MAX_SIZE_TRAIN))


def model_family(cfg) -> str:
    """The calibration family of ``cfg`` (:mod:`gpu_calibration`): ``detector``, ``hrnet`` (an HRNet
    backbone, SeeThroughNet) or ``resnet``."""
    if is_detector(cfg):
        return "detector"
    if (
        "hrnet" in cfg.MODEL.BACKBONE.NAME
        or cfg.MODEL.META_ARCHITECTURE == "SeeThroughNetSegmentor"
    ):
        return "hrnet"
    return "resnet"


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


def _storage_ptr(t) -> Optional[int]:
    try:
        ptr = t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError, TypeError):  # sparse, meta, or no storage
        return None
    return ptr or None


def saved_tensor_bytes(fn, exclude: Iterable[torch.Tensor] = ()) -> Tuple[int, object]:
    """``(bytes, fn())``: the bytes of the distinct storages (shared storages once) that autograd
    saves for backward while ``fn()`` runs, the storages of ``exclude`` (the parameters, counted
    apart) left out."""
    skip = {_storage_ptr(t) for t in exclude}
    storages: Dict[int, int] = {}

    def pack(t):
        ptr = _storage_ptr(t)
        if ptr is not None and ptr not in skip:
            storages[ptr] = max(storages.get(ptr, 0), t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return int(sum(storages.values())), out


@dataclass
class ModelMemory:
    """A model's training memory: parameter bytes (with buffers), trainable parameter bytes, and
    the saved activations of one training image ``a*H*W + b`` bytes (fitted at ``sizes``)."""

    name: str
    a: float
    b: float
    param_bytes: int
    trainable_bytes: int
    sizes: Tuple[Tuple[int, int], Tuple[int, int]]

    def activation_bytes(self, size: Tuple[int, int]) -> float:
        return self.a * size[0] * size[1] + self.b

    def peak_bytes(self, size: Tuple[int, int], images: float) -> float:
        """Parameters + gradients + SGD momentum + ``images`` images' saved activations."""
        return self.param_bytes + 2 * self.trainable_bytes + images * self.activation_bytes(size)


def model_memory(name: str, model, make_inputs, sizes, batch: int) -> ModelMemory:
    """:class:`ModelMemory` of ``model`` (train mode): saved bytes of one training forward of
    ``make_inputs(batch, size)`` at the two ``sizes``, per image, fitted as ``a*H*W + b``."""
    from detectron2.utils.events import EventStorage

    model.train()
    params = list(model.parameters())
    per_image = []
    for size in sizes:
        inputs = make_inputs(batch, size)
        with EventStorage():
            nbytes, losses = saved_tensor_bytes(lambda: model(inputs), exclude=params)
        del losses
        per_image.append(nbytes / batch)
    (h1, w1), (h2, w2) = sizes
    a = (per_image[1] - per_image[0]) / (h2 * w2 - h1 * w1)
    unique = {_storage_ptr(p): p for p in params}.values()
    param_bytes = sum(p.numel() * p.element_size() for p in unique)
    param_bytes += sum(b.numel() * b.element_size() for b in model.buffers())
    trainable = sum(p.numel() * p.element_size() for p in unique if p.requires_grad)
    return ModelMemory(
        name, a, per_image[0] - a * h1 * w1, int(param_bytes), int(trainable), tuple(sizes)
    )


def measure_memory(
    name: str,
    config_file: str,
    opts: Sequence[str] = (),
    measure_size: Tuple[int, int] = (128, 256),
    extra_config: Sequence = (),
) -> ModelMemory:
    """:class:`ModelMemory` of ``config_file`` + ``opts`` built as :func:`measure_model` builds it:
    a segmentor at half ``measure_size``'s sides and at ``measure_size`` (batch 2; the CPU's
    memory for a paper-size model's activations at twice the measured size is more than 20 GB),
    a detector at an eighth and a quarter of its training size's sides (:func:`train_size`; batch
    1; at half of it an HRNet-W48 detector's forward exceeded the 23 GB of a 2-core CPU machine)."""
    from detectron2.modeling import build_model

    from .models import load_config

    cfg = load_config(config_file, list(opts) + list(MEASURE_OPTS), extra_config=extra_config)
    torch.manual_seed(0)
    if is_detector(cfg):
        if "TRANSFER" in cfg.MODEL:  # Table 5's detectors (transfer/config.py): no encoder weights
            cfg.MODEL.TRANSFER.ENCODER_INIT = "random"
            cfg.MODEL.TRANSFER.ENCODER_WEIGHTS = ""
        model = convert_sync_batchnorm_to_bn(build_model(cfg))
        h, w = train_size(cfg)
        n = cfg.MODEL.ROI_HEADS.NUM_CLASSES

        def make(batch, size):
            return detection_inputs(batch, size, n)

        return model_memory(name, model, make, [(h // 8, w // 8), (h // 4, w // 4)], batch=1)
    model = convert_sync_batchnorm_to_bn(build_model(cfg))
    n = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    h, w = measure_size

    def make(batch, size):
        return training_inputs(batch, size, n)

    return model_memory(name, model, make, [(h // 2, w // 2), (h, w)], batch=2)


def run_rows(
    runs: Iterable[Mapping],
    costs: Mapping[str, ModelCost],
    speedup: float,
    memories: Optional[Mapping[str, ModelMemory]] = None,
    extra_config: Sequence = (),
) -> List[Dict[str, object]]:
    """One row per run group ``{"table", "name", "model", "config", "opts", "runs", "gpus"}``: its
    crop, batch and iterations read from the built config, CPU seconds per step, estimated GPU
    seconds per step, GPU-hours of one run and of all ``runs``; its GPUs (default 1), images per
    GPU, calibration family (:func:`model_family`), and, with ``memories``, the estimated peak
    bytes per GPU at its largest training input (:func:`max_train_size`), else ``None``. A run
    whose model is not in ``costs`` has ``None`` step times and GPU-hours."""
    from .models import load_config

    rows = []
    for r in runs:
        cfg = load_config(
            r["config"], list(r.get("opts", ())) + list(MEASURE_OPTS), extra_config=extra_config
        )
        crop = train_size(cfg)
        batch, iters = int(cfg.SOLVER.IMS_PER_BATCH), int(cfg.SOLVER.MAX_ITER)
        cost = costs.get(r["model"])  # None: step time not measured (--skip-step-times)
        cpu_step = cost.image_seconds(crop) * batch if cost else None
        gpu_step = cpu_step / speedup if cost else None
        one = gpu_step * iters / 3600 if cost else None
        gpus = int(r.get("gpus", 1))
        per_gpu = batch / gpus
        mem = (memories or {}).get(r["model"])
        mem_size = max_train_size(cfg)
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
                "gpu_hours": one * int(r["runs"]) if cost else None,
                "gpus": gpus,
                "images_per_gpu": per_gpu,
                "family": model_family(cfg),
                "memory_size": mem_size,
                "peak_bytes": mem.peak_bytes(mem_size, per_gpu) if mem else None,
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
                "gpus": cell.get("gpus", 1),
                "runs": 0,
            }
        groups[key]["runs"] += 1
    return models, list(groups.values())


ZOO_PREFIX = "detectron2-zoo:"


def resolve_config_path(config: str) -> str:
    """``config``, or for ``detectron2-zoo:<path>`` the file of that name under the installed
    detectron2 package's ``model_zoo/configs`` (a stock detectron2 model, e.g. a calibrator)."""
    if not config.startswith(ZOO_PREFIX):
        return config
    import detectron2

    root = os.path.join(os.path.dirname(detectron2.__file__), "model_zoo", "configs")
    path = os.path.join(root, config[len(ZOO_PREFIX) :])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{config}: no such file in the installed detectron2 ({path})")
    return path


def load_cost_file(path: str) -> dict:
    """The cost file (``projects/SeeThroughNet/configs/gpu_hours.yaml``): ``gpu`` (``name``,
    ``peak_tflops``), ``measure_size``, ``models`` and ``tables``, each table either a ``grid``
    file or a list of ``runs`` (``name``, ``config``, ``opts``, ``runs``, ``gpus``, and ``model``, a
    name in ``models``, where not the run's own config). A model's config may be
    ``detectron2-zoo:<path>`` (:func:`resolve_config_path`). Returns
    ``{"gpu", "measure_size", "models", "runs"}`` with the grids expanded."""
    from seethroughnet.utils.safe_load import load_yaml_file

    spec = load_yaml_file(path, what="GPU-hours cost file")
    for key in ("gpu", "tables"):
        if key not in spec:
            raise ValueError(f"{path}: the cost file needs a {key!r} entry")
    models = {
        name: {**m, "config": resolve_config_path(m["config"])}
        for name, m in (spec.get("models") or {}).items()
    }
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
    "GPUs x images/GPU",
    "iterations",
    "runs",
    "GPU s/step (FP32 peak)",
    "GPU-h (FP32 peak)",
    "GPU-h (calibrated)",
    "peak GB/GPU (est., at)",
    "peak GB/GPU (calibrated)",
    "GPU needed",
]


def _range(r, fmt: str = "{:.0f}") -> str:
    return "no calibrator" if r is None else f"{fmt.format(r[0])}-{fmt.format(r[1])}"


def _setting(c) -> str:
    n = c.images_per_gpu
    per = f", {n} image{'s' if n != 1 else ''}/GPU" if n else ""
    return "x".join(map(str, c.size)) + per


def markdown(rows, costs, cpu_gflops, gpu: Mapping, memories=None, calibration=None) -> str:
    """The estimate as markdown: the per-model measurements, the calibrators (with
    ``calibration``: ``{"time", "memory"}`` lists of :func:`gpu_calibration.calibrator_ratios`,
    ``"gpu_choice"``), the per-run-group rows (:func:`gpu_calibration.calibrated_rows`) and the
    totals per table."""
    from .gpu_calibration import GB, totals
    from .report import markdown_table

    memories = memories or {}
    speedup = float(gpu["peak_tflops"]) * 1000 / cpu_gflops
    out = [
        f"CPU: one thread, SGEMM {cpu_gflops:.1f} GFLOP/s (measured). GPU: {gpu['name']}, "
        f"{float(gpu['peak_tflops']):g} TFLOP/s FP32 peak (stated) -> speedup {speedup:.0f}x.",
        "",
        markdown_table(
            [
                "model",
                "CPU s / training image",
                "at",
                "GFLOPs (inference) at that size",
                "saved activations MB / image, at",
                "params + grads + momentum GB",
            ],
            [
                [
                    os.path.basename(c.name),
                    f"{c.seconds:.2f}",
                    "x".join(map(str, c.measure_size)),
                    f"{c.flops(c.measure_size) / 1e9:.1f}" if c.a is not None else "not counted",
                    (
                        f"{memories[k].activation_bytes(memories[k].sizes[1]) / 1e6:.0f}, "
                        + "x".join(map(str, memories[k].sizes[1]))
                        if k in memories
                        else "not measured"
                    ),
                    (
                        f"{(memories[k].param_bytes + 2 * memories[k].trainable_bytes) / GB:.2f}"
                        if k in memories
                        else "not measured"
                    ),
                ]
                for k, c in costs.items()
            ],
        ),
        "",
    ]
    if calibration:
        for kind, unit, pub, est in (
            ("time", "GPU-s / image", lambda x: f"{x:.3f}", lambda x: f"{x:.3f}"),
            ("memory", "GB", lambda x: f"{x / GB:.1f}", lambda x: f"{x / GB:.2f}"),
        ):
            out += [
                markdown_table(
                    [
                        f"{kind} calibrator",
                        "model measured here",
                        "setting",
                        f"published {unit}",
                        f"estimated {unit}",
                        "ratio",
                        "applies to",
                    ],
                    [
                        [
                            r["calibrator"].name,
                            os.path.basename(r["calibrator"].model),
                            _setting(r["calibrator"]),
                            _range(r["published"], "{:.2f}")
                            if r["published"][0] != r["published"][1]
                            else pub(r["published"][0]),
                            "not measured" if r["estimated"] is None else est(r["estimated"]),
                            _range(r["ratio"], "{:.2f}") if r["ratio"] else "not measured",
                            ", ".join(r["calibrator"].applies_to),
                        ]
                        for r in calibration[kind]
                    ],
                ),
                "",
            ]
        out += ["Sources:", ""]
        for kind in ("time", "memory"):
            for r in calibration[kind]:
                out.append(f"- {r['calibrator'].name}: {r['calibrator'].source}")
        choice = calibration["gpu_choice"]
        out += [
            "",
            f"GPU needed: the smallest of {', '.join(f'{s:g}' for s in choice['sizes_gb'])} GB "
            f"that holds the calibrated peak's high end x {choice['margin']:g}.",
            "",
        ]

    def gpu_needed(r):
        if r.get("peak_gb_range") is None:
            return "no calibrator" if r.get("peak_gb") is not None else "not measured"
        return "more than the largest" if r["gpu_gb"] is None else f"{r['gpu_gb']:g} GB"

    out += [
        markdown_table(
            ROW_HEADERS,
            [
                [
                    r["table"],
                    r["name"],
                    "x".join(map(str, r["crop"])),
                    r["batch"],
                    f"{r['gpus']} x {r['images_per_gpu']:g}",
                    r["iters"],
                    r["runs"],
                    "not measured" if r["gpu_step_s"] is None else f"{r['gpu_step_s']:.2f}",
                    "not measured" if r["gpu_hours"] is None else f"{r['gpu_hours']:.0f}",
                    (
                        "not measured"
                        if r["gpu_hours"] is None
                        else _range(r.get("gpu_hours_range"))
                    ),
                    (
                        f"{r['peak_bytes'] / GB:.1f}, " + "x".join(map(str, r["memory_size"]))
                        if r.get("peak_bytes") is not None
                        else "not measured"
                    ),
                    _range(r.get("peak_gb_range"), "{:.1f}") if r.get("peak_bytes") else "-",
                    gpu_needed(r),
                ]
                for r in rows
            ],
        ),
        "",
    ]
    tot = totals(rows)
    out.append(
        markdown_table(
            ["table", "GPU-hours (FP32 peak)", "GPU-hours (calibrated)"],
            [
                [
                    t,
                    "not measured" if v["gpu_hours"] is None else f"{v['gpu_hours']:.0f}",
                    "not measured" if v["gpu_hours"] is None else _range(v["range"]),
                ]
                for t, v in tot.items()
            ],
        )
    )
    return "\n".join(out) + "\n"


def _git_commit() -> Optional[str]:
    import subprocess

    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def load_measurements(path: str) -> Tuple[Dict[str, ModelCost], float]:
    """``(costs, cpu_sgemm_gflops)`` from a ``gpu_hours.json`` this tool wrote."""
    import json

    try:
        with open(path) as f:
            data = json.load(f)
        costs = {
            k: ModelCost(v["name"], v["seconds"], tuple(v["measure_size"]), v["a"], v["b"])
            for k, v in data["models"].items()
        }
        return costs, float(data["cpu_sgemm_gflops"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(
            f"--calibrate-from {path}: not a gpu_hours.json of tools/estimate_gpu_hours.py "
            f"({type(e).__name__}: {e}); run the tool without --calibrate-from to measure"
        ) from None


def calibrate(rows, costs, memories, speedup: float, calibration: Mapping) -> Tuple[list, dict]:
    """``(rows with ranges, {"time", "memory", "gpu_choice"})``: every calibrator's ratio against
    this estimate (:func:`gpu_calibration.calibrator_ratios`) and the rows' calibrated ranges."""
    from .gpu_calibration import calibrated_rows, calibrator_ratios

    def est_time(c):
        cost = costs.get(c.model)
        return None if cost is None else cost.image_seconds(c.size) / speedup

    def est_memory(c):
        mem = memories.get(c.model)
        return None if mem is None else mem.peak_bytes(c.size, c.images_per_gpu)

    ratios = {
        "time": calibrator_ratios(calibration["time"], est_time),
        "memory": calibrator_ratios(calibration["memory"], est_memory),
        "gpu_choice": calibration["gpu_choice"],
    }
    return calibrated_rows(rows, ratios["time"], ratios["memory"], ratios["gpu_choice"]), ratios


def main(argv=None, extra_config: Sequence = ()) -> int:
    """The command line; ``extra_config`` as in :func:`measure_model` (tools/estimate_gpu_hours.py
    passes the transfer keys for Table 5's detector configs)."""
    import argparse
    import sys

    from tqdm import tqdm

    from seethroughnet.utils.atomic import write_json_atomic, write_text_atomic

    from .gpu_calibration import load_calibration

    p = argparse.ArgumentParser(
        description="Estimated GPU-hours and peak GPU memory of the paper's training runs from a "
        "training step measured on one CPU thread, calibrated against published V100 "
        "measurements (REPRODUCE.md).",
    )
    p.add_argument("--cost-file", default="projects/SeeThroughNet/configs/gpu_hours.yaml")
    p.add_argument(
        "--calibration", default="projects/SeeThroughNet/configs/gpu_hours_calibration.yaml"
    )
    p.add_argument("--out", required=True, help="folder for gpu_hours.md and gpu_hours.json")
    p.add_argument("--table", action="append", help="only these tables (repeatable)")
    p.add_argument("--steps", type=int, default=2, help="measured steps per model")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--measure-size", nargs=2, type=int, metavar=("H", "W"))
    p.add_argument("--opts", nargs="*", default=[], help="KEY VALUE overrides for every model")
    p.add_argument(
        "--skip-step-times",
        action="store_true",
        help="measure the step times of the time calibrators' models only: the runs get memory, "
        "the GPU they need and no GPU-hours (a fraction of the full measurement's CPU time)",
    )
    p.add_argument(
        "--calibrate-from",
        metavar="JSON",
        help="reuse the step times (and SGEMM rate) of a gpu_hours.json this tool wrote; measure "
        "only the models it lacks, and the memory",
    )
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    spec = load_cost_file(a.cost_file)
    calibration = load_calibration(a.calibration)
    runs = [r for r in spec["runs"] if not a.table or r["table"] in a.table]
    if not runs:
        raise SystemExit(f"{a.cost_file}: no runs of the tables {a.table}")
    models = {k: {**m, "opts": list(m.get("opts", [])) + a.opts} for k, m in spec["models"].items()}
    runs = [{**r, "opts": list(r.get("opts", [])) + a.opts} for r in runs]
    size = tuple(a.measure_size) if a.measure_size else spec["measure_size"]
    needed = sorted({r["model"] for r in runs})
    if not a.table:  # every table: the calibrators' models too
        for c in calibration["time"] + calibration["memory"]:
            if c.model not in models:
                raise SystemExit(
                    f"{a.calibration}: calibrator {c.name!r} names the model {c.model!r}, which "
                    f"{a.cost_file} does not define (its 'models', a grid's model, or a run)"
                )
            if c.model not in needed:
                needed.append(c.model)
    costs: Dict[str, ModelCost] = {}
    if a.calibrate_from:
        costs, cpu = load_measurements(a.calibrate_from)
        costs = {k: c for k, c in costs.items() if k in needed}
    else:
        cpu = sgemm_gflops()
    timed = [m for m in needed if m not in costs]
    if a.skip_step_times:
        timed = [m for m in timed if m in {c.model for c in calibration["time"]}]
    for name in tqdm(timed, desc="measuring step times"):
        m = models[name]
        costs[name] = measure_model(
            name,
            m["config"],
            m["opts"],
            size,
            warmup=a.warmup,
            steps=a.steps,
            extra_config=extra_config,
        )
    memories: Dict[str, ModelMemory] = {}
    for name in tqdm(needed, desc="measuring memory"):
        m = models[name]
        memories[name] = measure_memory(
            name, m["config"], m["opts"], size, extra_config=extra_config
        )
    speedup = float(spec["gpu"]["peak_tflops"]) * 1000 / cpu
    rows = run_rows(runs, costs, speedup, memories, extra_config)
    rows, ratios = calibrate(rows, costs, memories, speedup, calibration)
    text = markdown(rows, costs, cpu, spec["gpu"], memories, ratios)
    os.makedirs(a.out, exist_ok=True)
    write_text_atomic(os.path.join(a.out, "gpu_hours.md"), text)

    def plain(r):
        return {**r, "calibrator": vars(r["calibrator"])}

    write_json_atomic(
        os.path.join(a.out, "gpu_hours.json"),
        {
            "commit": _git_commit(),
            "calibrate_from": a.calibrate_from,
            "argv": list(argv) if argv is not None else sys.argv[1:],
            "gpu": spec["gpu"],
            "cpu_sgemm_gflops": cpu,
            "models": {k: vars(c) for k, c in costs.items()},
            "memories": {k: vars(m) for k, m in memories.items()},
            "calibration": {
                "time": [plain(r) for r in ratios["time"]],
                "memory": [plain(r) for r in ratios["memory"]],
                "gpu_choice": ratios["gpu_choice"],
            },
            "rows": rows,
        },
        indent=1,
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
