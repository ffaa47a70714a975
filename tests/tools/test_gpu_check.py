"""tools/gpu_check.py: without CUDA it says so, exits 0 and writes nothing; its --tiny CPU
self-test runs every measurement and writes the report."""

import os
import subprocess
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "gpu_check.py")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_without_cuda_it_says_so_and_writes_nothing(tmp_path):
    out = tmp_path / "gpu_results.md"
    r = subprocess.run(
        [sys.executable, TOOL, "--output", str(out)], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "no CUDA device" in r.stdout and not out.exists()


@pytest.mark.slow
def test_tiny_cpu_self_test_runs_every_check(tmp_path):
    out = tmp_path / "tiny.md"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    r = subprocess.run(
        [sys.executable, TOOL, "--tiny", "--device", "cpu", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    text = out.read_text()
    assert "All checks passed." in text and "FAILED" not in text
    for needle in (
        "train step 128x256 batch 1, float32",
        "autocast bfloat16",
        "autocast bfloat16, activation checkpointing encoder+decoder+ocr",
        "float32, activation checkpointing encoder+decoder+ocr",
        "scales 0.5/1.0/2.0 + flip",
        "GLOO process group + DDP",
        "DeepLabV3+ R18 + 4 CPP aux heads",
        "batch 2, autocast bfloat16, activation checkpointing backbone+decode_head",
        "Mask R-CNN, HRNetV2",
    ):
        assert needle in text, needle
