#!/usr/bin/env python
"""What only a CUDA machine can show, in one command (``make gpu-check``; under 8 minutes on one
GPU).

    .venv/bin/python tools/gpu_check.py [--output docs/gpu_results.md]

On a machine without CUDA it says so and exits 0 without writing anything. On a CUDA machine it
measures, and writes to ``--output`` (atomically, with the command, the GPU, the versions and the
date):

1. the CUDA tests of the suite (the checks skipped on CPU: the CPP pooling CUDA path equals the
   CPU path, the auxiliary losses on CUDA), run with pytest;
2. one SeeThroughNet-W48 training step (two resolutions, every loss term) at 1024x2048, batch 1,
   in float32 and with AMP (float16 autocast + GradScaler): median step time and peak memory;
3. 3-scale (0.5, 1.0, 2.0) + flip inference at 1024x2048 with the attention merge;
4. a 1-GPU NCCL process group with a DDP-wrapped model taking one step;
5. one Table 1 model (R101 DeepLabV3+ with four CPP auxiliary heads) at 512x1024, batch 2;
6. one detector (Mask R-CNN with the HRNetV2-W48 encoder, the Table 5 config) at 1024x2048, batch 1.

Models start from random weights (no weights are needed to time them). Single-process runs use
BatchNorm where the configs say SyncBN.

``--tiny --device cpu`` runs every step at toy sizes with small encoders on the CPU (bfloat16
autocast instead of float16 + GradScaler, gloo instead of NCCL); the test suite uses it to check
that the tool itself works. Exit status 1 if any step failed (its error is in the report).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import time
import traceback
from typing import Callable, Dict, List, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "projects", "SeeThroughNet"))
sys.path.insert(0, REPO)

import torch  # noqa: E402

K = 19


class Settings:
    """Sizes of the full check and of the CPU self-test (``--tiny``)."""

    def __init__(self, tiny: bool, device: str):
        self.tiny = tiny
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.stn_variant = "hrnet_w18_small_v2" if tiny else "hrnet_w48"
        self.stn_size = (128, 256) if tiny else (1024, 2048)
        self.stn_heads = dict(attention=16, ocr_mid=32, ocr_key=16) if tiny else {}
        self.table1_size = (64, 64) if tiny else (512, 1024)
        self.det_size = (128, 256) if tiny else (1024, 2048)
        self.warmup, self.steps = (1, 1) if tiny else (2, 5)
        self.amp_dtype = torch.bfloat16 if not self.cuda else torch.float16


def _sync(s: Settings) -> None:
    if s.cuda:
        torch.cuda.synchronize(s.device)


def _reset_peak(s: Settings) -> None:
    if s.cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(s.device)


def _peak_gib(s: Settings) -> str:
    if not s.cuda:
        return "n/a (CPU)"
    return f"{torch.cuda.max_memory_allocated(s.device) / 2**30:.2f} GiB"


def _timed_steps(s: Settings, step: Callable[[], None]) -> Tuple[float, float, str]:
    """Median and min seconds of ``s.steps`` calls after ``s.warmup`` calls, and peak memory."""
    for _ in range(s.warmup):
        step()
    _sync(s)
    _reset_peak(s)
    times = []
    for _ in range(s.steps):
        _sync(s)
        t0 = time.perf_counter()
        step()
        _sync(s)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), _peak_gib(s)  # noqa: E501


def _train_step_fn(s: Settings, model, loss_fn: Callable[[], Dict[str, torch.Tensor]], amp: bool):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=amp and s.cuda)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(s.device.type, dtype=s.amp_dtype, enabled=amp):
            losses = loss_fn()
        total = sum(losses.values())
        if not torch.isfinite(total):
            raise FloatingPointError(
                f"non-finite loss: { {k: float(v) for k, v in losses.items()} }"
            )
        scaler.scale(total).backward()
        scaler.step(opt)
        scaler.update()

    return step


def _labels(s: Settings, n: int, h: int, w: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    blocks = torch.randint(0, K, (n, (h + 31) // 32, (w + 31) // 32), generator=g)
    y = blocks.repeat_interleave(32, 1).repeat_interleave(32, 2)[:, :h, :w].clone()
    y[:, : h // 16] = 255
    return y.to(s.device)


# ---------------------------------------------------------------------------------------------
def check_cuda_tests(s: Settings) -> List[List[str]]:
    if not s.cuda:
        return [["CUDA tests", "skipped: not a CUDA run"]]
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "tests/nn/test_cpp_targets.py",
        "tests/nn/test_aux_losses.py",
        "-q",
        "-k",
        "cuda",
        "-p",
        "no:cacheprovider",
    ]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    summary = (r.stdout.strip().splitlines() or ["(no output)"])[-1]
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:])}: {summary}\n{r.stdout[-2000:]}")
    return [
        [
            "CUDA tests "
            "(`pytest tests/nn/test_cpp_targets.py tests/nn/test_aux_losses.py -k cuda`)",
            summary,
        ]
    ]


def _seethroughnet(s: Settings, checkpointing=()):
    from seethroughnet.nn.options import (
        ActivationCheckpointing,
        DecoderOptions,
        EncoderOptions,
        OCROptions,
        TrainingScales,
    )
    from seethroughnet.nn.seethroughnet import SeeThroughNet

    torch.manual_seed(0)
    h = s.stn_heads
    heads = (
        dict(
            decoder=DecoderOptions(attention_channels=h["attention"]),
            ocr=OCROptions(mid_channels=h["ocr_mid"], key_channels=h["ocr_key"]),
            scales=TrainingScales(attention_channels=h["attention"]),
        )
        if h
        else {}
    )
    model = SeeThroughNet(
        K,
        EncoderOptions(s.stn_variant, norm="BN"),
        head_norm="BN",
        checkpointing=ActivationCheckpointing(checkpointing),
        **heads,
    )
    return model.to(s.device)


def check_seethroughnet_train(s: Settings) -> List[List[str]]:
    """A training step (both resolutions, every loss) in float32 and with AMP, each without and
    with activation checkpointing of the encoder, decoder and OCR head (the 16 GB config is AMP +
    checkpointing): step time and peak memory (CUDA: ``max_memory_allocated``)."""
    rows = []
    h, w = s.stn_size
    every_part = ("encoder", "decoder", "ocr")
    for amp, parts in ((False, ()), (False, every_part), (True, ()), (True, every_part)):
        model = _seethroughnet(s, parts).train()
        images = torch.randn(1, 3, h, w, device=s.device)
        labels = _labels(s, 1, h, w)
        step = _train_step_fn(s, model, lambda: model.losses(model(images), labels), amp)
        med, best, peak = _timed_steps(s, step)
        kind = ("AMP float16 + GradScaler" if s.cuda else "autocast bfloat16") if amp else "float32"
        kind += ", activation checkpointing " + "+".join(parts) if parts else ""
        rows.append(
            [
                f"SeeThroughNet {s.stn_variant} train step {h}x{w} batch 1, {kind}",
                f"median {med:.3f} s (min {best:.3f} s) over {s.steps} steps; peak memory {peak}",
            ]
        )
        model = step = None  # free before the next precision
    return rows


def check_seethroughnet_inference(s: Settings) -> List[List[str]]:
    model = _seethroughnet(s).eval()
    h, w = s.stn_size
    images = torch.randn(1, 3, h, w, device=s.device)

    def step():
        with torch.no_grad():
            model.inference(images, scales=(0.5, 1.0, 2.0), flip=True, merge="attention")

    med, best, peak = _timed_steps(s, step)
    return [
        [
            f"SeeThroughNet {s.stn_variant} inference {h}x{w}, scales 0.5/1.0/2.0 + flip, "
            "attention merge",
            f"median {med:.3f} s (min {best:.3f} s) per image; peak memory {peak}",
        ]
    ]


_DDP_SCRIPT = r"""
import os, sys, torch, torch.distributed as dist
backend, port, device = sys.argv[1], sys.argv[2], sys.argv[3]
dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", world_size=1, rank=0)
model = torch.nn.Sequential(
    torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
    torch.nn.Conv2d(8, 4, 1),
).to(device)
ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[0] if device == "cuda" else None)
opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
x = torch.randn(2, 3, 32, 32, device=device)
loss = ddp(x).square().mean()
loss.backward()
opt.step()
t = torch.ones(1, device=device)
dist.all_reduce(t)
assert dist.get_backend() == backend and float(t) == 1.0
print("ok", dist.get_backend(), float(loss))
dist.destroy_process_group()
"""


def check_ddp_launch(s: Settings) -> List[List[str]]:
    backend = "nccl" if s.cuda else "gloo"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", _DDP_SCRIPT, backend, str(port), s.device.type],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if r.returncode != 0 or not r.stdout.startswith("ok"):
        raise RuntimeError(f"1-process {backend} DDP step failed:\n{r.stderr[-2000:]}")
    return [
        [
            f"1-process {backend.upper()} process group + DDP step + all_reduce",
            f"ok in {time.perf_counter() - t0:.1f} s",
        ]
    ]


def check_table1_model(s: Settings) -> List[List[str]]:
    from detectron2.modeling import build_model

    from seethroughnet.config import build_config

    opts = [
        "MODEL.DEVICE",
        s.device.type,
        "MODEL.ALLOW_RANDOM_INIT",
        "True",
        "MODEL.RESNETS.NORM",
        "BN",
        "MODEL.DECODE_HEAD.NORM",
        "BN",
    ]
    if s.tiny:
        opts += [
            "MODEL.RESNETS.DEPTH",
            "18",
            "MODEL.RESNETS.RES2_OUT_CHANNELS",
            "64",
            "MODEL.RESNETS.RES5_MULTI_GRID",
            "[1, 1]",
            "MODEL.DECODE_HEAD.CHANNELS",
            "16",
            "MODEL.CPP_AUX.HIDDEN_CHANNELS",
            "8",
        ]
    h, w = s.table1_size
    opts += ["INPUT.CROP.SIZE", f"({h}, {w})"]  # the training pad size (MMSegmentation's crop)
    config = "projects/SeeThroughNet/configs/CPP-Plugin/deeplabv3plus_R101_cityscapes.yaml"
    labels = _labels(s, 2, h, w)
    g = torch.Generator().manual_seed(1)
    batch = [
        {
            "image": torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8),
            "sem_seg": labels[i].cpu(),
        }
        for i in range(2)
    ]
    rows = []
    checkpointed = ["backbone", "decode_head"]
    for amp, parts in ((False, []), (True, []), (True, checkpointed)):
        torch.manual_seed(0)
        cfg = build_config(
            os.path.join(REPO, config),
            opts + ["MODEL.CPP_SEGMENTOR.CHECKPOINT_ACTIVATIONS", str(parts)],
        )
        model = build_model(cfg).train()
        step = _train_step_fn(s, model, lambda: model(batch), amp)
        med, best, peak = _timed_steps(s, step)
        model = step = None  # free before the next row
        kind = ("AMP float16" if s.cuda else "autocast bfloat16") if amp else "float32"
        kind += ", activation checkpointing " + "+".join(parts) if parts else ""
        depth = cfg.MODEL.RESNETS.DEPTH
        rows.append(
            [
                f"DeepLabV3+ R{depth} + 4 CPP aux heads, train step {h}x{w} batch 2, {kind}",
                f"median {med:.3f} s (min {best:.3f} s); peak memory {peak}",
            ]
        )
    return rows


def check_detector(s: Settings) -> List[List[str]]:
    from detectron2.modeling import build_model
    from detectron2.structures import BitMasks, Boxes, Instances
    from detectron2.utils.events import EventStorage

    from transfer.config import build_transfer_config  # registers the HRNetV2 detection backbones

    cfg = build_transfer_config(os.path.join(REPO, "transfer/configs/mask_rcnn_hrnetv2_w48.yaml"))
    cfg.MODEL.DEVICE = s.device.type
    cfg.MODEL.TRANSFER.ENCODER_INIT = "random"
    cfg.MODEL.TRANSFER.ENCODER_WEIGHTS = ""
    cfg.MODEL.HRNET.NORM = "BN"
    if s.tiny:
        cfg.MODEL.HRNET.VARIANT = "hrnet_w18_small_v2"
        cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 64
        cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    torch.manual_seed(0)
    model = build_model(cfg).train()
    h, w = s.det_size
    inst = Instances((h, w))
    boxes = torch.tensor(
        [[0.1, 0.2, 0.3, 0.6], [0.5, 0.4, 0.8, 0.9], [0.05, 0.5, 0.15, 0.7]]
    ) * torch.tensor([w, h, w, h])
    inst.gt_boxes = Boxes(boxes)
    inst.gt_classes = torch.tensor([0, 2, 1])
    masks = torch.zeros(3, h, w, dtype=torch.bool)
    for i, (x0, y0, x1, y1) in enumerate(boxes.round().long().tolist()):
        masks[i, y0:y1, x0:x1] = True
    inst.gt_masks = BitMasks(masks)
    batch = [
        {
            "image": torch.randint(0, 256, (3, h, w), dtype=torch.uint8),
            "instances": inst,
            "height": h,
            "width": w,
        }
    ]

    def losses():
        with EventStorage(0):
            return model(batch)

    step = _train_step_fn(s, model, losses, amp=False)
    med, best, peak = _timed_steps(s, step)
    return [
        [
            f"Mask R-CNN, HRNetV2 ({cfg.MODEL.HRNET.VARIANT}) encoder, Table 5 config, train step "
            f"{h}x{w} batch 1, float32",
            f"median {med:.3f} s (min {best:.3f} s); peak memory {peak}",
        ]
    ]


CHECKS = [
    ("CUDA tests", check_cuda_tests),
    ("SeeThroughNet training step", check_seethroughnet_train),
    ("SeeThroughNet multi-scale inference", check_seethroughnet_inference),
    ("DDP launch", check_ddp_launch),
    ("Table 1 model", check_table1_model),
    ("Table 5 detector", check_detector),
]


def environment(s: Settings) -> List[str]:
    lines = [
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- torch {torch.__version__}, CUDA {torch.version.cuda}, Python "
        f"{platform.python_version()}",
    ]
    if s.cuda:
        p = torch.cuda.get_device_properties(s.device)
        lines.append(f"- device: {p.name}, {p.total_memory / 2**30:.0f} GiB")
    else:
        lines.append(f"- device: CPU ({os.cpu_count()} cores), tiny self-test sizes")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        lines.append(f"- code: commit {commit or 'unknown'}")
    except OSError:
        pass
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", default=os.path.join(REPO, "docs", "gpu_results.md"))
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (only with --tiny)")
    p.add_argument(
        "--tiny", action="store_true", help="toy sizes: a self-test of this tool (CPU-friendly)"
    )
    p.add_argument("--only", nargs="*", help="names of checks to run (default: all)")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "gpu-check: no CUDA device on this machine; nothing measured and "
            f"{os.path.relpath(args.output, REPO)} not written. Run `make gpu-check` on a machine "
            "with a GPU."
        )
        return 0
    if args.device == "cpu" and not args.tiny:
        p.error("--device cpu needs --tiny (the full sizes are meant for a GPU)")
    s = Settings(args.tiny, args.device)
    from seethroughnet.experiments.report import markdown_table
    from seethroughnet.utils import atomic_path

    rows: List[List[str]] = []
    failed = []
    t_start = time.perf_counter()
    for name, fn in CHECKS:
        if args.only and name not in args.only:
            continue
        print(f"[gpu-check] {name} ...", flush=True)
        try:
            rows.extend(fn(s))
        except Exception as e:  # record and continue: one failure should not hide the other results
            failed.append(name)
            rows.append(
                [
                    name,
                    f"**FAILED**: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                ]
            )
            traceback.print_exc()
        print(f"[gpu-check]   {rows[-1][1]}", flush=True)
    total = time.perf_counter() - t_start
    command = "python tools/gpu_check.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    text = [
        "# GPU check results",
        "",
        f"Command: `{command.strip()}` (`make gpu-check`), total {total:.0f} s.",
        "",
    ]
    text += environment(s) + ["", markdown_table(["check", "result"], rows)]
    text += [
        "",
        f"{len(failed)} check(s) failed: {', '.join(failed)}" if failed else "All checks passed.",
    ]
    with atomic_path(args.output) as tmp:
        with open(tmp, "w") as f:
            f.write("\n".join(text) + "\n")
    print(f"[gpu-check] wrote {args.output} ({total:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
