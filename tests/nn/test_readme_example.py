"""The README's "CPP in your own model" block runs as written, and its auxiliary loss is the CPP
+ KL loss of Eqs. 1-2 recomputed here cell by cell."""

import math
import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- this block is executed by tests/nn/test_readme_example.py -->"


def _readme_block() -> str:
    text = README.read_text()
    assert MARKER in text, f"{README} lost the marked example block"
    m = re.search(re.escape(MARKER) + r"\s*```python\n(.*?)```", text, flags=re.S)
    assert m, "the marker is not followed by a ```python block"
    return m.group(1)


def _reference_cpp_kl(aux_logits, labels, K, s, ignore=255):
    """sum over cells of v * KL(q || softmax) / sum v, q = class fractions of the valid pixels
    of the s x s cell, v = the cell's valid fraction (loops, no library code)."""
    n, _, h, w = aux_logits.shape
    logp = torch.log_softmax(aux_logits.double(), dim=1)
    total, weight = 0.0, 0.0
    for b in range(n):
        for i in range(h):
            for j in range(w):
                cell = labels[b, i * s : (i + 1) * s, j * s : (j + 1) * s].reshape(-1).tolist()
                valid = [c for c in cell if c != ignore]
                if not valid:
                    continue
                v = len(valid) / (s * s)
                kl = 0.0
                for c in range(K):
                    q = valid.count(c) / len(valid)
                    if q > 0:
                        kl += q * (math.log(q) - float(logp[b, c, i, j]))
                total += v * kl
                weight += v
    return total / weight


def test_readme_cpp_example_runs_and_computes_eq_2():
    torch.manual_seed(0)
    ns = {}
    exec(compile(_readme_block(), str(README), "exec"), ns)  # noqa: S102 - the README's own code
    model, labels, K = ns["model"], ns["labels"], ns["K"]
    assert torch.isfinite(ns["loss"])
    assert ns["targets"].shape == (2, K + 1, 8, 8)
    # the targets are Eq. 1: per cell, the fraction of each class (+ ignore) among 64 pixels
    cell = labels[0, 8:16, 16:24]
    for c in range(K):
        assert abs(float(ns["targets"][0, c, 1, 2]) - float((cell == c).sum()) / 64) < 1e-6
    ce = torch.nn.functional.cross_entropy(ns["logits"].detach(), labels, ignore_index=255)
    aux = (ns["loss"].detach() - ce) / 0.4
    ref = _reference_cpp_kl(ns["aux_logits"].detach(), labels, K, 8)
    assert abs(float(aux) - ref) < 1e-4, (float(aux), ref)
    # the step trained the auxiliary head
    assert model.aux_head.weight.grad is not None and model.aux_head.weight.grad.abs().sum() > 0
