"""ONNX export of the inference network of SeeThroughNet and of the CPP plug-in segmentors
(paper Table 1), checked with ``onnx.checker`` and run with onnxruntime (docs/deploy.md).

The graph is one single-scale pass, the part of evaluation that runs per scale:

* input ``image``: ``(N, 3, H, W)`` float32 pixel values 0-255 in the config's ``INPUT.FORMAT``
  channel order (BGR for the Cityscapes configs), any ``H`` x ``W`` (dynamic axes): the graph
  normalises with ``MODEL.PIXEL_MEAN`` / ``MODEL.PIXEL_STD``, zero-pads to the size divisibility,
  and crops back;
* output ``logits``: ``(N, K, H, W)`` at the input's size (SeeThroughNet: the OCR logits of
  :meth:`SeeThroughNet._padded_pass`, Eq. 6's X; CPP segmentor: ``encode_decode``);
* SeeThroughNet models with the scale-attention head (two training resolutions) also output
  ``attn``, ``(N, 1, H, W)``: Tao et al.'s alpha (Eq. 4) of this pass, which the multi-scale
  merge needs.

Multi-scale + flip is the caller's loop, as :meth:`SeeThroughNet.inference` does it: for each
scale ``s`` run the graph on the image resized to ``round(s*H) x round(s*W)`` (and on its
horizontal flip), then merge with :func:`seethroughnet.nn.scale_attention.hierarchical_merge`
(``logits`` and ``attn`` of each scale; ``weighted = attn * logits``) or
:func:`~seethroughnet.nn.scale_attention.average_merge`, un-flip and average. Sliding-window
inference is likewise a loop over windows (:mod:`seethroughnet.nn.sliding_window`).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "OnnxExportError",
    "InferenceGraph",
    "inference_graph",
    "export_onnx",
    "check_onnx",
    "run_onnxruntime",
    "compare_with_pytorch",
    "benchmark",
    "calibrate_batch_norm",
    "main",
]


class OnnxExportError(RuntimeError):
    """A model or config that this exporter cannot turn into an ONNX graph."""


def _ceil_to(x, div: int):
    return (x + div - 1) // div * div


class InferenceGraph(nn.Module):
    """``image -> logits`` (and ``attn``): one single-scale inference pass of ``model`` (a
    ``SeeThroughNetSegmentor`` or a ``CPPSegmentor`` in eval mode), including normalisation,
    padding and cropping, written with shape arithmetic that stays symbolic under export."""

    def __init__(self, model: nn.Module, with_attention: Optional[bool] = None):
        super().__init__()
        name = type(model).__name__
        self.register_buffer("pixel_mean", model.pixel_mean.detach().clone().view(1, -1, 1, 1))
        self.register_buffer("pixel_std", model.pixel_std.detach().clone().view(1, -1, 1, 1))
        if name == "SeeThroughNetSegmentor":
            self.kind = "seethroughnet"
            self.net = model.net
            has_head = getattr(self.net, "scale_attention", None) is not None
            self.with_attention = has_head if with_attention is None else bool(with_attention)
            if self.with_attention and not has_head:
                raise OnnxExportError(
                    "attn output asked for, but the model has no scale-attention head "
                    "(MODEL.SEE_THROUGH training resolutions (1.0,)); export without it"
                )
            self.div = int(self.net.encoder.size_divisibility)
            self.align_corners = bool(self.net.align_corners)
        elif name == "CPPSegmentor":
            self.kind = "cpp_segmentor"
            self.net = model
            self.with_attention = False
            self.div = int(model.test_size_divisibility)
            self.align_corners = False
        else:
            raise OnnxExportError(
                f"MODEL.META_ARCHITECTURE {name}: the ONNX exporter handles SeeThroughNetSegmentor "
                "and CPPSegmentor (the project's configs under projects/SeeThroughNet/configs); "
                "use one of those configs"
            )
        self.output_names = ["logits", "attn"] if self.with_attention else ["logits"]

    def forward(self, image: torch.Tensor):
        x = (image - self.pixel_mean) / self.pixel_std
        h, w = x.shape[-2], x.shape[-1]
        ph, pw = _ceil_to(h, self.div), _ceil_to(w, self.div)
        x = F.pad(x, (0, pw - w, 0, ph - h))
        size = (ph, pw)
        if self.kind == "seethroughnet":
            o = self.net.forward_single(x, with_scale_attention=self.with_attention)
            logits = F.interpolate(
                o["logits"], size, mode="bilinear", align_corners=self.align_corners
            )
            logits = logits[..., :h, :w]
            if self.with_attention:
                a = F.interpolate(
                    o["scale_attn"], size, mode="bilinear", align_corners=self.align_corners
                )
                return logits, a[..., :h, :w]
            return logits
        logits, _ = self.net._decode(self.net.backbone(x))
        logits = F.interpolate(logits, size, mode="bilinear", align_corners=False)
        return logits[..., :h, :w]


def calibrate_batch_norm(graph: InferenceGraph, size=(64, 128), batches: int = 4, seed: int = 0):
    """Re-estimate every BatchNorm's running statistics of a randomly initialised ``graph`` on
    random images (train-mode passes without gradients, cumulative average), so that its
    activations and logits have the magnitudes of a trained network's (random-init logits reach
    hundreds, where float32 rounding alone differs by 1e-3). For ``--random-weights`` runs only."""
    bns = [m for m in graph.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    g = torch.Generator().manual_seed(seed)
    graph.train()
    with torch.no_grad():
        for _ in range(batches):
            graph(torch.rand(2, 3, *size, generator=g) * 255)
    graph.eval()
    return graph


def inference_graph(model: nn.Module, with_attention: Optional[bool] = None) -> InferenceGraph:
    """:class:`InferenceGraph` of ``model`` on CPU, eval mode."""
    return InferenceGraph(model.cpu().eval(), with_attention).eval()


def export_onnx(
    graph: InferenceGraph,
    path: str,
    example_size: Sequence[int] = (64, 128),
    dynamic: bool = True,
    opset: int = 18,
) -> str:
    """Export ``graph`` to ``path`` with torch.onnx's exporter (``torch.export`` based); batch,
    height and width are dynamic where the graph allows it (:func:`check_onnx` lists the result)
    unless ``dynamic=False`` (all static, ``example_size``). Returns ``path``. Any failure of the
    exporter becomes one :class:`OnnxExportError` naming the model and what to do."""
    h, w = example_size
    example = torch.rand(1, 3, h, w) * 255
    dyn = None
    if dynamic:
        # AUTO: dynamic where the graph allows it, specialised (static) where it does not
        dyn = {"image": {i: torch.export.Dim.AUTO for i in (0, 2, 3)}}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        with torch.no_grad():
            prog = torch.onnx.export(
                graph,
                (example,),
                input_names=["image"],
                output_names=graph.output_names,
                dynamic_shapes=dyn,
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        prog.save(path, external_data=False)
    except Exception as e:  # the exporter raises many types; one message for the user
        raise OnnxExportError(
            f"could not export {graph.kind} ({type(graph.net).__name__}) to ONNX: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. The graph must be "
            "traceable by torch.export (no data-dependent Python control flow in forward); "
            "try --static to fix the input size, or a config whose heads are in docs/deploy.md's "
            "list of exported models"
        ) from e
    return path


def check_onnx(path: str) -> Dict[str, List]:
    """``onnx.checker.check_model`` (full check) and the graph's input / output shapes
    (a dimension is a name when it is dynamic)."""
    import onnx

    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)

    def dims(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    return {
        "inputs": [(v.name, dims(v)) for v in model.graph.input],
        "outputs": [(v.name, dims(v)) for v in model.graph.output],
    }


def _session(path: str, threads: Optional[int] = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def run_onnxruntime(path: str, image: torch.Tensor, session=None) -> List[torch.Tensor]:
    """The graph's outputs for ``image`` ``(N, 3, H, W)`` float32, as tensors."""
    sess = session or _session(path)
    outs = sess.run(None, {"image": image.detach().cpu().float().numpy()})
    return [torch.from_numpy(o) for o in outs]


def compare_with_pytorch(
    graph: InferenceGraph, path: str, sizes: Sequence[Sequence[int]], seed: int = 0
) -> List[Dict]:
    """For each ``(H, W)`` in ``sizes``: max abs difference of every output between onnxruntime
    and PyTorch on a random image."""
    g = torch.Generator().manual_seed(seed)
    sess = _session(path)
    rows = []
    for h, w in sizes:
        image = torch.rand(1, 3, h, w, generator=g) * 255
        with torch.no_grad():
            ref = graph(image)
        ref = list(ref) if isinstance(ref, tuple) else [ref]
        got = run_onnxruntime(path, image, sess)
        rows.append(
            {
                "size": (h, w),
                "shapes": [tuple(o.shape) for o in got],
                "max_abs_diff": {
                    n: float((a - b).abs().max()) for n, a, b in zip(graph.output_names, ref, got)
                },
            }
        )
    return rows


def benchmark(
    graph: InferenceGraph, path: str, size: Sequence[int], runs: int = 5, threads: int = 2
) -> Dict[str, float]:
    """Median seconds per image of PyTorch (``graph`` under ``torch.no_grad``) and onnxruntime
    (CPU execution provider) at ``size``, both on ``threads`` threads, after one warm-up run."""
    import statistics

    h, w = size
    image = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)) * 255
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        times = {"pytorch": [], "onnxruntime": []}
        sess = _session(path, threads)
        feed = {"image": image.numpy()}
        with torch.no_grad():
            for i in range(runs + 1):
                t = time.perf_counter()
                graph(image)
                if i:
                    times["pytorch"].append(time.perf_counter() - t)
                t = time.perf_counter()
                sess.run(None, feed)
                if i:
                    times["onnxruntime"].append(time.perf_counter() - t)
    finally:
        torch.set_num_threads(old)
    return {k: statistics.median(v) for k, v in times.items()}


USAGE = """Export the inference network of a SeeThroughNet or CPP plug-in config to ONNX, check it
with onnx.checker, run it with onnxruntime and compare its outputs with PyTorch's:

    python tools/export_onnx.py --config-file CFG (--weights W.pth | --random-weights) \
        --output model.onnx [--merge-config TINY.yaml] [--check-sizes 64x128 70x100] \
        [--benchmark 512x1024 [--runs 5] [--threads 2]] [KEY VALUE ...]

The graph: image (N, 3, H, W) float32 0-255 in INPUT.FORMAT order -> logits (N, K, H, W)
[+ attn (N, 1, H, W) for SeeThroughNet with the scale-attention head]; multi-scale + flip is the
caller's loop (docs/deploy.md)."""


def _size(text: str):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected HxW, e.g. 512x1024") from None
    return h, w


def main(argv=None) -> int:
    from seethroughnet.experiments.models import load_model
    from seethroughnet.utils.safe_load import add_safety_arguments, merge_config_file

    ap = argparse.ArgumentParser(
        description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config-file", required=True)
    w = ap.add_mutually_exclusive_group(required=True)
    w.add_argument("--weights", help="a checkpoint of this config (train_net.py's model_final.pth)")
    w.add_argument(
        "--random-weights",
        action="store_true",
        help="random initialisation with BatchNorm statistics re-estimated on random images "
        "(to try the export and measure speed without a trained model)",
    )
    ap.add_argument("--output", required=True, help="the .onnx file to write")
    ap.add_argument(
        "--merge-config",
        action="append",
        default=[],
        help="a YAML merged after --config-file "
        "(e.g. tests/configs/cpp_plugin_tiny_overrides.yaml)",
    )
    ap.add_argument(
        "--example-size", type=_size, default=(64, 128), help="HxW of the tracing input"
    )
    ap.add_argument("--static", action="store_true", help="fix N=1 and H x W to --example-size")
    ap.add_argument("--no-attention", action="store_true", help="SeeThroughNet: logits only")
    ap.add_argument(
        "--check-sizes",
        type=_size,
        nargs="*",
        default=None,
        help="HxW sizes on which onnxruntime's outputs are compared with PyTorch's "
        "(default: the example size and one that is not a multiple of 32)",
    )
    ap.add_argument(
        "--benchmark",
        type=_size,
        default=None,
        metavar="HxW",
        help="also time PyTorch and onnxruntime on CPU at this size",
    )
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    add_safety_arguments(ap)
    args = ap.parse_args(argv)

    from seethroughnet.experiments.models import load_config

    cfg = load_config(
        args.config_file,
        device="cpu",
        allow_unsafe_config=args.allow_unsafe_config,
        trust_weights=args.trust_weights_file,
    )
    for extra in args.merge_config:
        merge_config_file(cfg, extra)
    cfg.merge_from_list(args.opts)
    cfg.MODEL.DEVICE = "cpu"
    _, model = load_model(cfg, weights="" if args.random_weights else args.weights)
    try:
        graph = inference_graph(model, False if args.no_attention else None)
        if args.random_weights:
            calibrate_batch_norm(graph, args.example_size)
        t = time.perf_counter()
        export_onnx(graph, args.output, args.example_size, dynamic=not args.static)
    except OnnxExportError as e:
        raise SystemExit(f"error: {args.config_file}: {e}") from None
    print(f"exported {args.output} in {time.perf_counter() - t:.1f} s")
    info = check_onnx(args.output)
    print(f"onnx.checker: ok; inputs {info['inputs']}; outputs {info['outputs']}")
    sizes = args.check_sizes
    if sizes is None:
        eh, ew = args.example_size
        sizes = [(eh, ew)] if args.static else [(eh, ew), (eh + 6, ew - 28)]
    worst = 0.0
    try:
        rows = compare_with_pytorch(graph, args.output, sizes)
    except Exception as e:  # onnxruntime's errors: one message and what to do
        raise SystemExit(
            f"error: {args.config_file}: the exported graph fails in onnxruntime at one of the "
            f"sizes {sizes} ({type(e).__name__}: {str(e).splitlines()[0][:200]}). A graph with "
            "an adaptive pooling to a fixed grid (PSPNet's pyramid pooling, DMNet's) is valid "
            "only at the traced size: re-export with --static --example-size HxW"
        ) from None
    for row in rows:
        worst = max([worst, *row["max_abs_diff"].values()])
        print(
            f"onnxruntime vs PyTorch at {row['size'][0]}x{row['size'][1]}: "
            f"shapes {row['shapes']}, max abs diff {row['max_abs_diff']}"
        )
    if args.benchmark:
        b = benchmark(graph, args.output, args.benchmark, args.runs, args.threads)
        h, w = args.benchmark
        print(
            f"CPU latency at {h}x{w}, batch 1, {args.threads} threads, median of {args.runs} runs: "
            f"PyTorch {b['pytorch'] * 1000:.1f} ms, onnxruntime {b['onnxruntime'] * 1000:.1f} ms "
            f"(torch {torch.__version__}, onnxruntime {_ort_version()})"
        )
    return 0 if worst < 1e-3 else 1


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
