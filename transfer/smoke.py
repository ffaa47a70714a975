#!/usr/bin/env python
"""End-to-end CPU smoke run of the Table 5 pipeline on the embedded synthetic Cityscapes.

    python -m transfer.smoke --out output/transfer_smoke [--iters 4] [--stn-iters 6]

1. ``datasets/prepare_synthetic_cityscapes.py``: a small synthetic Cityscapes (128x256 images).
2. ``transfer/convert_cityscapes_to_coco.py``: its instances as COCO JSON (train as polygons,
   val as RLE).
3. ``projects/SeeThroughNet/train_net.py`` twice, a few iterations each, on the same data:
   with CPP (``MODEL.SEE_THROUGH.AUX_LOSS cpp_kl``) and without (``upsample_ce``), giving the
   two SeeThroughNet encoder checkpoints.
4. A stand-in "ImageNet" checkpoint: timm's randomly initialised ``hrnet_w18_small_v2``
   classifier (BatchNorm statistics calibrated on noise) saved in timm's layout; nothing can be
   downloaded here, so it exercises the loading path only.
5. ``transfer/run_table5.py --smoke``: the 18 cells (HRFPN neck; the ImageNet rows with BN
   statistics re-estimated on 2 batches), a few iterations each, evaluated with COCOEvaluator,
   then table5.md / table5.png.

Every step is skipped when its output exists, so an interrupted run resumes. The numbers are
a smoke test of the plumbing, not comparable to the paper.
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
VARIANT = "hrnet_w18_small_v2"
STN_CONFIG = os.path.join(
    REPO,
    "projects",
    "SeeThroughNet",
    "configs",
    "Cityscapes-Synthetic",
    "seethroughnet_W18small_demo.yaml",
)


def _run(cmd, env=None, log=None):
    print("$", " ".join(cmd), flush=True)
    t0 = time.time()
    if log:
        with open(log, "w") as f:
            rc = subprocess.run(
                cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT
            ).returncode
    else:
        rc = subprocess.run(cmd, cwd=REPO, env=env).returncode
    print(
        f"  -> exit {rc} in {time.time() - t0:.0f} s" + (f" (log {log})" if log else ""), flush=True
    )
    if rc != 0:
        if log:
            with open(log, errors="replace") as f:
                sys.stderr.write("".join(f.readlines()[-30:]))
        raise SystemExit(f"step failed: {' '.join(cmd)}")


def make_standin_imagenet_checkpoint(path: str, variant: str = VARIANT, seed: int = 0) -> str:
    import timm
    import torch

    torch.manual_seed(seed)
    model = timm.create_model(variant, pretrained=False)
    # Give the BatchNorms the statistics of their (random-weight) activations on N(0, 1) input,
    # as a trained checkpoint has: with the default mean 0 / var 1 an eval-mode (frozen) random
    # HRNet overflows within a few layers.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(4, 3, 128, 256))
    torch.save(model.state_dict(), path)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="output/transfer_smoke")
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--num-train", type=int, default=8)
    p.add_argument("--num-val", type=int, default=4)
    p.add_argument(
        "--stn-iters", type=int, default=30, help="SeeThroughNet iterations per checkpoint"
    )
    p.add_argument("--iters", type=int, default=4, help="detector iterations per Table 5 cell")
    p.add_argument("--seeds", type=int, default=1, help="repeats per Table 5 cell")
    p.add_argument(
        "--recompute-bn-imagenet",
        type=int,
        default=2,
        metavar="ITERS",
        help="re-estimate the stand-in ImageNet encoder's BN statistics on ITERS batches (0: off)",
    )
    p.add_argument("--detectors", nargs="+", default=None)
    p.add_argument("--inits", nargs="+", default=None)
    p.add_argument("--modes", nargs="+", default=None)
    args = p.parse_args(argv)

    out = os.path.abspath(args.out)
    root = os.path.join(out, "cityscapes")
    os.makedirs(out, exist_ok=True)
    py = sys.executable
    env = dict(os.environ, DETECTRON2_DATASETS=out, PYTHONWARNINGS="ignore")

    # 1-2: data
    _run(
        [
            py,
            "datasets/prepare_synthetic_cityscapes.py",
            "--output",
            root,
            "--height",
            str(args.height),
            "--width",
            str(args.width),
            "--num-train",
            str(args.num_train),
            "--num-val",
            str(args.num_val),
            "--num-test",
            "0",
            "--no-progress",
        ],
        env=env,
    )
    # train as polygons (INPUT.MASK_FORMAT polygon, detectron2's Cityscapes recipe), val as
    # lossless RLE (the evaluation ground truth)
    _run(
        [
            py,
            "-m",
            "transfer.convert_cityscapes_to_coco",
            "--root",
            root,
            "--splits",
            "train",
            "--segmentation",
            "polygon",
        ],
        env=env,
    )
    _run(
        [py, "-m", "transfer.convert_cityscapes_to_coco", "--root", root, "--splits", "val"],
        env=env,
    )

    # 3: SeeThroughNet encoders, with and without CPP
    weights = {}
    for name, aux in (("stn_cpp", "cpp_kl"), ("stn_wo_cpp", "upsample_ce")):
        stn_dir = os.path.join(out, name)
        ckpt = os.path.join(stn_dir, "model_final.pth")
        if not os.path.isfile(ckpt):
            _run(
                [
                    py,
                    os.path.join("projects", "SeeThroughNet", "train_net.py"),
                    "--config-file",
                    STN_CONFIG,
                    "MODEL.SEE_THROUGH.AUX_LOSS",
                    aux,
                    "SOLVER.MAX_ITER",
                    str(args.stn_iters),
                    "SOLVER.WARMUP_ITERS",
                    "0",
                    "SOLVER.IMS_PER_BATCH",
                    "2",
                    "INPUT.MIN_SIZE_TRAIN",
                    f"({args.height},)",
                    "INPUT.CROP.SIZE",
                    f"({args.height},{args.width})",
                    "DATALOADER.NUM_WORKERS",
                    "0",
                    "DATASETS.TEST",
                    "()",
                    "OUTPUT_DIR",
                    stn_dir,
                ],
                env=env,
                log=os.path.join(out, f"{name}.log"),
            )
        weights[name] = ckpt

    # 4: stand-in ImageNet checkpoint (random weights in timm's layout)
    imagenet = os.path.join(out, f"{VARIANT}_imagenet_standin.pth")
    if not os.path.isfile(imagenet):
        make_standin_imagenet_checkpoint(imagenet)
        print(
            f"wrote stand-in ImageNet checkpoint {imagenet} (random timm weights, calibrated BN "
            "statistics)"
        )

    # 5: the grid
    cmd = [
        py,
        "-m",
        "transfer.run_table5",
        "--smoke",
        "--out-dir",
        os.path.join(out, "table5"),
        "--variant",
        VARIANT,
        "--iters",
        str(args.iters),
        "--dataset-root",
        root,
        "--seeds",
        str(args.seeds),
        "--recompute-bn-imagenet",
        str(args.recompute_bn_imagenet),
        "--imagenet-weights",
        imagenet,
        "--stn-weights",
        weights["stn_wo_cpp"],
        "--stn-cpp-weights",
        weights["stn_cpp"],
        "--title",
        f"CPU smoke run on synthetic Cityscapes ({args.height}x{args.width}, {args.num_train} "
        "train / "
        f"{args.num_val} val images, {VARIANT}, {args.iters} iterations per cell) - NOT comparable "
        "to the paper",
    ]
    for opt, val in (
        ("--detectors", args.detectors),
        ("--inits", args.inits),
        ("--modes", args.modes),
    ):
        if val:
            cmd += [opt, *val]
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=REPO, env=env).returncode


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, REPO)
    sys.exit(main())
