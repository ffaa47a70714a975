#!/usr/bin/env python
r"""Converted reference checkpoints give the reference's logits: NVIDIA/semantic-segmentation
(Tao et al., SeeThroughNet's [41]) and HRNet-Semantic-Segmentation's HRNet-OCR.

The references are not part of this project; point the tool at local checkouts:

    git clone https://github.com/NVIDIA/semantic-segmentation /tmp/refs/nvidia
    git clone -b HRNet-OCR https://github.com/HRNet/HRNet-Semantic-Segmentation /tmp/refs/hrnet_ocr
    python tools/compare_with_reference.py \
        --nvidia /tmp/refs/nvidia --hrnet-ocr /tmp/refs/hrnet_ocr \
        [--sizes 64x128 128x192] [--output table.md] [--record-keys DIR]

(docs/checkpoint_conversion.md records a run.) The reference modules (NVIDIA ``network/ocrnet.py``
with ``network/hrnetv2.py``, ``ocr_utils.py``, ``mynn.py``, ``utils.py``, ``config.py``; HRNet-OCR
``lib/models/seg_hrnet_ocr.py`` with ``lib/config``) are imported from those folders unchanged.
What blocks them on a CPU is replaced for the duration of the call only: NVIDIA's ``apex``
(``amp.float_function`` -> identity, ``apex.parallel.SyncBatchNorm`` -> ``nn.BatchNorm2d``) and
``runx.logx`` (messages dropped), its ``cfg.MODEL.BNFUNC`` set to ``nn.BatchNorm2d`` (what its
``assert_and_infer_cfg`` picks without apex); HRNet-OCR's ``bn_helper`` SyncBatchNorm ->
``nn.BatchNorm2d`` and numpy's removed ``np.int`` -> ``int``. Nothing else changes.

For each reference model: random weights *and* random BatchNorm statistics (seeded), saved as a
checkpoint in the reference's own layout (NVIDIA: ``{"arch", "state_dict", ...}`` with
``module.``; HRNet-OCR: ``FullModel``'s ``model.*`` state dict), converted by
``tools/convert_weights.py``'s code for a project config, then both models in eval mode on the
same random input:

* NVIDIA ``ocrnet.HRNet`` (OCRNet) -> ``configs/CPP-Plugin/ocrnet_HRW48_cityscapes.yaml``: the
  whole network (the segmentor's ``encode_decode``, logits at input size);
* NVIDIA ``ocrnet.HRNet_Mscale`` -> ``configs/Cityscapes/seethroughnet_W48_cityscapes_fine.yaml``:
  SeeThroughNet's ``inference`` (single scale, the two-scale attention merge and the 3-scale
  hierarchical inference {0.5, 1.0, 2.0}, against the reference's ``nscale_forward`` with
  ``cfg.MODEL.N_SCALES``), with the reference's soft object regions: SeeThroughNet takes them from
  its See-Through decoder, which the reference does not have, so for this check its decoder is
  replaced by the soft-region branch of the OCRNet-HRNet converted from the same checkpoint
  (everything else is SeeThroughNet's own code on the converted weights). The encoder features
  (HRNetV2 concatenation), the OCR logits and the attention maps of one pass are compared too;
* HRNet-OCR ``seg_hrnet_ocr`` (``experiments/cityscapes/seg_hrnet_ocr_w48_*.yaml``) ->
  the OCRNet-HRNet config with ``MODEL.HRNET.FUSE_ALIGN_CORNERS True`` and
  ``MODEL.DECODE_HEAD.ALIGN_CORNERS True`` (HRNet-OCR's ``ALIGN_CORNERS = True``): the model's
  stride-4 logits (``out`` of its forward; its test code's resizing is not part of the model).

``--record-keys DIR`` writes the reference models' state-dict key and shape lists (gzipped JSON,
facts for ``tests/conversion/test_reference_conversion.py``). Exit status 1 if any max abs logit
difference is not below ``--atol`` (1e-4).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import subprocess
import sys
import tempfile
import types

import numpy as np
import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "projects", "SeeThroughNet"))

from seethroughnet.conversion.ocr_references import convert_reference_checkpoint  # noqa: E402
from seethroughnet.experiments.report import markdown_table  # noqa: E402
from seethroughnet.nn.ocr_head import concat_hrnetv2  # noqa: E402
from seethroughnet.utils import atomic_path  # noqa: E402

CONFIGS = os.path.join(ROOT, "projects", "SeeThroughNet", "configs")
OCRNET_CONFIG = os.path.join(CONFIGS, "CPP-Plugin", "ocrnet_HRW48_cityscapes.yaml")
SEETHROUGHNET_CONFIG = os.path.join(CONFIGS, "Cityscapes", "seethroughnet_W48_cityscapes_fine.yaml")
HRNET_OCR_EXPERIMENT = os.path.join(
    "experiments",
    "cityscapes",
    "seg_hrnet_ocr_w48_train_512x1024_sgd_lr1e-2_wd5e-4_bs_12_epoch484.yaml",
)
#: config overrides for a CPU conversion (single-process BN; no ImageNet file is needed)
CPU_OPTS = ["MODEL.HRNET.NORM", "BN", "MODEL.REQUIRES_PRETRAINED", "False"]
NUM_CLASSES = 19
#: modules the shims import under top-level names that must not leak out of a call
_REFERENCE_TOP_MODULES = ("config", "network", "utils", "loss", "models", "datasets", "transforms")


def _commit(checkout: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", checkout, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "(not a git checkout)"


@contextlib.contextmanager
def _reference_imports(checkout: str, stubs: dict):
    """``checkout`` first on ``sys.path`` and ``stubs`` in ``sys.modules`` for the call; the
    reference's top-level modules are removed again afterwards."""
    saved_path = list(sys.path)
    saved = {k: sys.modules[k] for k in list(sys.modules) if k.split(".")[0] in stubs}
    for name in [k for k in sys.modules if k.split(".")[0] in _REFERENCE_TOP_MODULES]:
        saved[name] = sys.modules.pop(name)
    sys.path.insert(0, checkout)
    sys.modules.update(stubs)
    try:
        yield
    finally:
        sys.path[:] = saved_path
        for name in [
            k for k in sys.modules if k.split(".")[0] in set(stubs) | set(_REFERENCE_TOP_MODULES)
        ]:
            del sys.modules[name]
        sys.modules.update(saved)


@contextlib.contextmanager
def _numpy_int():
    """numpy >= 1.24 removed ``np.int``, which both references call; ``int`` for the call."""
    had = "int" in np.__dict__
    saved = np.__dict__.get("int")
    np.int = int
    try:
        yield
    finally:
        if had:
            np.int = saved
        else:
            del np.int


def _nvidia_stubs():
    apex = types.ModuleType("apex")
    apex.amp = types.SimpleNamespace(float_function=lambda f: f, half_function=lambda f: f)
    apex.parallel = types.ModuleType("apex.parallel")
    apex.parallel.SyncBatchNorm = nn.BatchNorm2d
    runx = types.ModuleType("runx")
    logx_module = types.ModuleType("runx.logx")
    logx_module.logx = types.SimpleNamespace(
        msg=lambda *a, **k: None, add_scalar=lambda *a, **k: None
    )
    runx.logx = logx_module
    return {"apex": apex, "apex.parallel": apex.parallel, "runx": runx, "runx.logx": logx_module}


def build_nvidia(checkout: str, arch: str, scales=None):
    """NVIDIA's ``network.ocrnet.<arch>`` (``HRNet`` or ``HRNet_Mscale``) built as its
    ``network.get_net`` does, with ``cfg.MODEL.N_SCALES = scales`` (its eval multi-scale path)."""
    with _reference_imports(checkout, _nvidia_stubs()), _numpy_int():
        import config as nv_config

        cfg = nv_config.cfg
        cfg.MODEL.BNFUNC = nn.BatchNorm2d
        cfg.OPTIONS.TORCH_VERSION = 2.0
        cfg.DATASET.NUM_CLASSES = NUM_CLASSES
        cfg.MODEL.HRNET_CHECKPOINT = ""
        cfg.MODEL.N_SCALES = list(scales) if scales else None
        from network import ocrnet

        model = getattr(ocrnet, arch)(NUM_CLASSES, criterion=None)
        return model, cfg


def build_hrnet_ocr(checkout: str):
    """HRNet-OCR's ``models.seg_hrnet_ocr.get_seg_model`` with its Cityscapes W48 experiment."""
    lib = os.path.join(checkout, "lib")
    saved_sync = torch.nn.SyncBatchNorm
    torch.nn.SyncBatchNorm = nn.BatchNorm2d
    try:
        with _reference_imports(lib, {}), _numpy_int():
            from config import config as hr_config

            hr_config.defrost()
            hr_config.merge_from_file(os.path.join(checkout, HRNET_OCR_EXPERIMENT))
            hr_config.MODEL.PRETRAINED = ""
            hr_config.DATASET.NUM_CLASSES = NUM_CLASSES
            import models.seg_hrnet_ocr as seg_hrnet_ocr

            return seg_hrnet_ocr.get_seg_model(hr_config)
    finally:
        torch.nn.SyncBatchNorm = saved_sync


def randomize_(model: nn.Module, seed: int) -> nn.Module:
    """Random weights and BatchNorm statistics, scaled to keep activations of order one."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (1.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.weight.copy_(0.1 + 0.4 * torch.rand(c, generator=g))
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
    return model.eval()


def record_keys(model: nn.Module, path: str, what: str, commit: str) -> None:
    """Gzipped JSON ``{"reference", "commit", "keys": [[name, shape], ...]}`` of ``model``."""
    data = {
        "reference": what,
        "commit": commit,
        "num_classes": NUM_CLASSES,
        "keys": [[k, list(v.shape)] for k, v in model.state_dict().items()],
    }
    with atomic_path(path) as tmp:
        with gzip.open(tmp, "wt") as f:
            json.dump(data, f, separators=(",", ":"))


def _convert(source, state, layout_extra, config, opts, tmp):
    ckpt = os.path.join(tmp, f"{source}_reference.pth")
    torch.save(dict(layout_extra, state_dict=state) if layout_extra is not None else state, ckpt)
    out = os.path.join(tmp, f"{source}_converted.pth")
    report = convert_reference_checkpoint(source, ckpt, config, out, opts)
    return torch.load(out, map_location="cpu", weights_only=True)["model"], report


def _project(config, opts, weights):
    from seethroughnet.conversion.convert import build_project_model

    _, model = build_project_model(config, opts)
    model.load_state_dict(weights)
    return model.eval()


class _ReferenceSoftRegions(nn.Module):
    """Stands in for SeeThroughNet's decoder in this check: the soft object regions of the
    converted OCRNet's soft-region branch (the reference's ``aux_head``) on the HRNetV2 features."""

    def __init__(self, soft_region: nn.Module, align_corners: bool = False):
        super().__init__()
        self.soft_region, self.align_corners = soft_region, align_corners

    def forward(self, feats):
        return {
            "soft_regions": self.soft_region(
                concat_hrnetv2(feats, align_corners=self.align_corners)
            )
        }


def _diff(a, b) -> float:
    return float((a - b).abs().max())


def compare_nvidia(checkout, sizes, seed, tmp, record_dir=None):
    rows = []
    commit = _commit(checkout)
    # OCRNet (ocrnet.HRNet) -> the OCRNet-HRNet config: the whole network
    ref, _ = build_nvidia(checkout, "HRNet")
    randomize_(ref, seed)
    if record_dir:
        record_keys(
            ref,
            os.path.join(record_dir, "nvidia_ocrnet_hrnet_w48.json.gz"),
            "NVIDIA ocrnet.HRNet",
            commit,
        )
    state = {"module." + k: v for k, v in ref.state_dict().items()}
    weights, _ = _convert(
        "nvidia", state, {"arch": "network.ocrnet.HRNet", "epoch": 0}, OCRNET_CONFIG, CPU_OPTS, tmp
    )
    ocrnet = _project(OCRNET_CONFIG, CPU_OPTS, weights)
    for h, w in sizes:
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed + h + w))
        with torch.no_grad():
            r = ref({"images": x})["pred"]
            p = ocrnet.encode_decode(x)
        rows.append(
            (
                "NVIDIA ocrnet.HRNet -> OCRNet-HRNet",
                f"{h}x{w}",
                "1.0",
                "logits",
                _diff(r, p),
                float(r.abs().max()),
            )
        )

    # Mscale (ocrnet.HRNet_Mscale) -> SeeThroughNet
    ref, _ = build_nvidia(checkout, "HRNet_Mscale")
    randomize_(ref, seed + 1)
    if record_dir:
        record_keys(
            ref,
            os.path.join(record_dir, "nvidia_hrnet_mscale_w48.json.gz"),
            "NVIDIA ocrnet.HRNet_Mscale",
            commit,
        )
    state = {"module." + k: v for k, v in ref.state_dict().items()}
    extra = {"arch": "network.ocrnet.HRNet_Mscale", "epoch": 0}
    weights, report = _convert("nvidia", state, extra, SEETHROUGHNET_CONFIG, CPU_OPTS, tmp)
    stn = _project(SEETHROUGHNET_CONFIG, CPU_OPTS, weights).net
    ocr_part = {k: v for k, v in state.items() if not k.startswith("module.scale_attn.")}
    ocr_weights, _ = _convert("nvidia", ocr_part, extra, OCRNET_CONFIG, CPU_OPTS, tmp)
    soft = _project(OCRNET_CONFIG, CPU_OPTS, ocr_weights).decode_head.soft_region
    stn.decoder = _ReferenceSoftRegions(soft, stn.align_corners)
    name = "NVIDIA ocrnet.HRNet_Mscale -> SeeThroughNet"
    for h, w in sizes:
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed + 7 * h + w))
        with torch.no_grad():
            _, _, feats_ref = ref.backbone(x)
            cls_ref, aux_ref, ocr_feats_ref = ref.ocr(feats_ref)
            attn_ref = ref.scale_attn(ocr_feats_ref)
            feats = stn.encoder(x)
            feats_cat = concat_hrnetv2(feats, align_corners=stn.align_corners)
            one = stn.forward_single(x, with_scale_attention=True)
        rows.append(
            (
                name,
                f"{h}x{w}",
                "1.0",
                "encoder (HRNetV2 concat)",
                _diff(feats_ref, feats_cat),
                float(feats_ref.abs().max()),
            )
        )
        rows.append(
            (
                name,
                f"{h}x{w}",
                "1.0",
                "OCR logits (stride 4)",
                _diff(cls_ref, one["logits"]),
                float(cls_ref.abs().max()),
            )
        )
        rows.append(
            (
                name,
                f"{h}x{w}",
                "1.0",
                "scale attention (stride 4)",
                _diff(attn_ref, one["scale_attn"]),
                float(attn_ref.abs().max()),
            )
        )
        for scales in ([1.0], [0.5, 1.0], [0.5, 1.0, 2.0]):
            with torch.no_grad():  # the reference's eval path with cfg.MODEL.N_SCALES
                ref_ms = ref.nscale_forward({"images": x}, scales)["pred"]
            with torch.no_grad():
                p = stn.inference(x, scales=scales, merge="attention")
            rows.append(
                (
                    name,
                    f"{h}x{w}",
                    ",".join(map(str, scales)),
                    "inference logits",
                    _diff(ref_ms, p),
                    float(ref_ms.abs().max()),
                )
            )
    return rows, commit, report


def compare_hrnet_ocr(checkout, sizes, seed, tmp, record_dir=None):
    rows = []
    commit = _commit(checkout)
    ref = randomize_(build_hrnet_ocr(checkout), seed + 2)
    if record_dir:
        record_keys(
            ref,
            os.path.join(record_dir, "hrnet_ocr_w48.json.gz"),
            "HRNet-OCR seg_hrnet_ocr",
            commit,
        )
    state = {"model." + k: v for k, v in ref.state_dict().items()}
    state["loss.criterion.weight"] = torch.ones(NUM_CLASSES)  # FullModel's class-weight buffer
    opts = CPU_OPTS + [
        "MODEL.HRNET.FUSE_ALIGN_CORNERS",
        "True",
        "MODEL.DECODE_HEAD.ALIGN_CORNERS",
        "True",
    ]
    weights, report = _convert("hrnet_ocr", state, None, OCRNET_CONFIG, opts, tmp)
    model = _project(OCRNET_CONFIG, opts, weights)
    for h, w in sizes:
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed + 3 * h + w))
        with torch.no_grad():
            aux_ref, out_ref = ref(x)
            logits, extra = model._decode(model.backbone(x))
        regions = extra["loss_soft_region"][0]
        rows.append(
            (
                "HRNet-OCR seg_hrnet_ocr -> OCRNet-HRNet",
                f"{h}x{w}",
                "1.0",
                "soft regions (stride 4)",
                _diff(aux_ref, regions),
                float(aux_ref.abs().max()),
            )
        )
        rows.append(
            (
                "HRNet-OCR seg_hrnet_ocr -> OCRNet-HRNet",
                f"{h}x{w}",
                "1.0",
                "logits (stride 4)",
                _diff(out_ref, logits),
                float(out_ref.abs().max()),
            )
        )
    return rows, commit, report


def _size(text):
    h, _, w = text.partition("x")
    return int(h), int(w)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nvidia", help="a checkout of NVIDIA/semantic-segmentation")
    p.add_argument(
        "--hrnet-ocr", help="a checkout of HRNet-Semantic-Segmentation, branch HRNet-OCR"
    )
    p.add_argument(
        "--sizes",
        nargs="+",
        type=_size,
        default=[(64, 128), (128, 192)],
        help="HxW, multiples of 64",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--output", help="also write the table (Markdown) here")
    p.add_argument(
        "--record-keys", metavar="DIR", help="write the reference models' key lists here"
    )
    args = p.parse_args(argv)
    if not (args.nvidia or args.hrnet_ocr):
        p.error("give --nvidia and/or --hrnet-ocr")
    if args.threads:
        torch.set_num_threads(args.threads)
    for h, w in args.sizes:
        if h % 64 or w % 64:
            p.error(f"size {h}x{w}: use multiples of 64 (the 0.5 scale must be a multiple of 32)")
    rows, header = [], []
    with tempfile.TemporaryDirectory() as tmp:
        if args.nvidia:
            r, commit, report = compare_nvidia(
                args.nvidia, args.sizes, args.seed, tmp, args.record_keys
            )
            rows += r
            header.append(f"NVIDIA/semantic-segmentation {commit}")
            print(report.summary().replace(tmp + os.sep, ""))
        if args.hrnet_ocr:
            r, commit, report = compare_hrnet_ocr(
                args.hrnet_ocr, args.sizes, args.seed, tmp, args.record_keys
            )
            rows += r
            header.append(f"HRNet-Semantic-Segmentation (HRNet-OCR) {commit}")
            print(report.summary().replace(tmp + os.sep, ""))
    lines = [f"references: {'; '.join(header)}; torch {torch.__version__}; float32, CPU", ""]
    headers = ["reference -> project", "input", "scales", "compared", "max abs diff"]
    headers.append("max abs reference")
    cells = []
    failed = 0
    for name, size, scales, what, diff, ref_max in rows:
        ok = diff < args.atol
        failed += not ok
        mark = "" if ok else " FAIL"
        cells.append([name, size, scales, what, f"{diff:.2e}{mark}", f"{ref_max:.3g}"])
    lines.append(markdown_table(headers, cells))
    table = "\n".join(lines)
    print(table)
    if args.output:
        with atomic_path(args.output) as tmp_out:
            with open(tmp_out, "w") as f:
                f.write(table + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
