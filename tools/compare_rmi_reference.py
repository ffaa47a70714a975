#!/usr/bin/env python
r"""Compare ``seethroughnet.nn.rmi_loss.RMILoss`` with the RMI reference code, value and gradient.

The reference implementations are not part of this project; point the tool at local checkouts:

    git clone https://github.com/ZJULearning/RMI /tmp/RMI
    git clone https://github.com/NVIDIA/semantic-segmentation /tmp/nvidia-semseg
    python tools/compare_rmi_reference.py --zju /tmp/RMI --nvidia /tmp/nvidia-semseg \
        [--output table.md]

(docs/rmi_reference_check.md records a run.)

The reference modules are imported from those folders as they are. Their CUDA-only and
training-framework imports are satisfied at run time, for the duration of the call only: the
double-precision cast ``.type(torch.cuda.DoubleTensor)`` is mapped to ``torch.float64`` on the CPU,
``torch.cholesky`` (removed from recent torch) to ``torch.linalg.cholesky``, and NVIDIA's
``config.cfg`` / ``apex.amp`` get stand-ins with ``cfg.TRAIN.FP16 = False``. Nothing else changes.

Each case draws logits and labels (with ignored pixels), evaluates both losses and their gradients
w.r.t. the logits in float32, as the references run, and reports the relative differences.
Exit status 1 if any relative difference exceeds ``--rtol`` (default 1e-4).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import types

import torch

sys.path.insert(
    0,
    os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "projects", "SeeThroughNet"
    ),
)

from seethroughnet.experiments.report import markdown_table  # noqa: E402
from seethroughnet.nn.rmi_loss import RMILoss  # noqa: E402
from seethroughnet.utils import atomic_path  # noqa: E402

# (name, num_classes, batch, height, width, ignore fraction, seed)
CASES = [
    ("19 classes, 2x96x128, 10% ignored", 19, 2, 96, 128, 0.10, 0),
    ("19 classes, 1x130x257 (odd sizes), 30% ignored", 19, 1, 130, 257, 0.30, 1),
    ("5 classes, 3x64x64, 0% ignored", 5, 3, 64, 64, 0.0, 2),
    ("21 classes, 2x80x120, absent classes, 5% ignored", 21, 2, 80, 120, 0.05, 3),
]
# (name, our kwargs, reference kwargs)
SETTINGS = [
    (
        "NVIDIA defaults (avg pool, stride 4, radius 3)",
        dict(pool="avg", pool_stride=4, radius=3),
        dict(rmi_pool_way=1, rmi_pool_size=4, rmi_pool_stride=4, rmi_radius=3),
    ),
    (
        "ZJU defaults (max pool, stride 3, radius 3)",
        dict(pool="max", pool_stride=3, radius=3),
        dict(rmi_pool_way=0, rmi_pool_size=3, rmi_pool_stride=3, rmi_radius=3),
    ),
    (
        "avg pool, stride 2, radius 2",
        dict(pool="avg", pool_stride=2, radius=2),
        dict(rmi_pool_way=1, rmi_pool_size=2, rmi_pool_stride=2, rmi_radius=2),
    ),
    (
        "max pool, stride 4, radius 5",
        dict(pool="max", pool_stride=4, radius=5),
        dict(rmi_pool_way=0, rmi_pool_size=4, rmi_pool_stride=4, rmi_radius=5),
    ),
]


def _load(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_references(zju_root: str, nvidia_root: str):
    """The two reference ``RMILoss`` classes, imported from the checkouts."""
    for root, rel in ((zju_root, "losses/rmi/rmi.py"), (nvidia_root, "loss/rmi.py")):
        if not os.path.isfile(os.path.join(root, rel)):
            raise SystemExit(
                f"{os.path.join(root, rel)} not found: pass the root of a checkout of the "
                "reference repository"
            )
    # ZJU: `from RMI.losses.rmi import rmi_utils`
    zju_utils = _load("RMI.losses.rmi.rmi_utils", os.path.join(zju_root, "losses/rmi/rmi_utils.py"))
    for pkg in ("RMI", "RMI.losses", "RMI.losses.rmi"):
        sys.modules.setdefault(pkg, types.ModuleType(pkg))
    sys.modules["RMI.losses.rmi"].rmi_utils = zju_utils
    zju = _load("zju_rmi", os.path.join(zju_root, "losses/rmi/rmi.py"))
    # NVIDIA: `from loss import rmi_utils`, `from config import cfg`, `from apex import amp`
    nv_utils = _load("loss.rmi_utils", os.path.join(nvidia_root, "loss/rmi_utils.py"))
    loss_pkg = sys.modules.setdefault("loss", types.ModuleType("loss"))
    loss_pkg.rmi_utils = nv_utils
    config = types.ModuleType("config")
    config.cfg = types.SimpleNamespace(TRAIN=types.SimpleNamespace(FP16=False))
    sys.modules["config"] = config
    apex = types.ModuleType("apex")
    apex.amp = types.SimpleNamespace(disable_casts=contextlib.nullcontext)
    sys.modules["apex"] = apex
    nvidia = _load("nvidia_rmi", os.path.join(nvidia_root, "loss/rmi.py"))
    return zju.RMILoss, nvidia.RMILoss


@contextlib.contextmanager
def reference_on_cpu():
    """Map the references' CUDA double cast and ``torch.cholesky`` to CPU equivalents."""
    saved_double = torch.cuda.DoubleTensor
    saved_chol = getattr(torch, "cholesky", None)
    torch.cuda.DoubleTensor = torch.DoubleTensor
    torch.cholesky = lambda a, upper=False: torch.linalg.cholesky(a, upper=upper)
    try:
        yield
    finally:
        torch.cuda.DoubleTensor = saved_double
        if saved_chol is None:
            del torch.cholesky
        else:
            torch.cholesky = saved_chol


def draw(num_classes, n, h, w, ignore, seed):
    g = torch.Generator().manual_seed(seed)
    # piecewise-constant labels (blocks) with noise, so that pooled windows mix classes
    blocks = torch.randint(0, num_classes, (n, (h + 15) // 16, (w + 15) // 16), generator=g)
    labels = blocks.repeat_interleave(16, 1).repeat_interleave(16, 2)[:, :h, :w].clone()
    noise = torch.rand(n, h, w, generator=g) < 0.05
    labels[noise] = torch.randint(0, num_classes, (int(noise.sum()),), generator=g)
    if num_classes > 19:  # leave the last classes absent
        labels = labels.clamp(max=num_classes - 4)
    labels[torch.rand(n, h, w, generator=g) < ignore] = 255
    logits = 3.0 * torch.randn(n, num_classes, h, w, generator=g)
    return logits, labels


def value_and_grad(loss_fn, logits, labels):
    x = logits.clone().requires_grad_(True)
    v = loss_fn(x, labels)
    v.backward()
    return float(v.detach()), x.grad.double()


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--zju", required=True, help="root of a ZJULearning/RMI checkout")
    p.add_argument(
        "--nvidia", required=True, help="root of a NVIDIA/semantic-segmentation checkout"
    )
    p.add_argument("--rtol", type=float, default=1e-4)
    p.add_argument("--output", help="also write the table to this markdown file")
    args = p.parse_args(argv)
    zju_cls, nvidia_cls = load_references(args.zju, args.nvidia)
    headers = ["reference", "setting", "case", "ours", "reference", "value rel. diff"]
    headers.append("gradient max rel. diff")
    rows = []
    worst = 0.0
    for ref_name, ref_cls in (
        ("ZJULearning/RMI", zju_cls),
        ("NVIDIA/semantic-segmentation", nvidia_cls),
    ):
        for set_name, ours_kw, ref_kw in SETTINGS:
            for case_name, k, n, h, w, ign, seed in CASES:
                logits, labels = draw(k, n, h, w, ign, seed)
                ours = RMILoss(k, lambda_weight=0.5, class_reduction="sum", **ours_kw)
                ref = ref_cls(num_classes=k, loss_weight_lambda=0.5, lambda_way=1, **ref_kw)
                v_ours, g_ours = value_and_grad(ours, logits, labels)
                with reference_on_cpu():
                    v_ref, g_ref = value_and_grad(ref, logits, labels)
                dv = rel(v_ours, v_ref)
                dg = float((g_ours - g_ref).abs().max() / g_ref.abs().max().clamp_min(1e-30))
                worst = max(worst, dv, dg)
                values = [f"{v_ours:.6f}", f"{v_ref:.6f}", f"{dv:.1e}", f"{dg:.1e}"]
                rows.append([ref_name, set_name, case_name, *values])
                print(f"{ref_name}, {set_name}, {case_name}: {', '.join(values)}", flush=True)
    align = ["left"] * 3 + ["right"] * 4
    lines = [markdown_table(headers, rows, colalign=align), ""]
    lines.append(f"largest relative difference: {worst:.1e} (tolerance {args.rtol:g})")
    print("\n".join(lines))
    if args.output:
        with atomic_path(args.output) as tmp:
            with open(tmp, "w") as f:
                f.write("\n".join(lines) + "\n")
    return 0 if worst <= args.rtol else 1


if __name__ == "__main__":
    sys.exit(main())
