"""Class Probability Preserving (CPP) pooling of ground-truth label maps.

SeeThroughNet (Han, Yoo, Oh, CVPR 2022), Section 3.1, Eq. 1. Instead of nearest-neighbour
down-sampling of the ground truth, every cell of the down-sampled target keeps the fraction of
pixels of each class inside its ``s x s`` receptive field:

.. math::

    Y^{s}_{c}(i, j) = \\frac{1}{s^2} \\sum_{u=0}^{s-1} \\sum_{v=0}^{s-1}
        \\mathbb{1}\\left[ Y(s i + u,\\, s j + v) = c \\right],
    \\qquad c \\in \\{0, \\dots, K-1\\} \\cup \\{\\text{ignore}\\}.

The ignore label keeps its own channel (channel ``K``), as in the paper, so the ``K + 1``
channels of every cell sum to exactly 1.

Policies (see ``docs/cpp_pooling.md``):

* **Sizes not divisible by s** (``remainder``): ``"pad"`` (default) gives ``ceil(H/s) x ceil(W/s)``
  cells -- the size of a stride-``s`` feature map of a backbone whose stride-2 convolutions use
  ``padding = kernel // 2`` -- and counts the pixels of an edge cell that fall outside the label
  map as ignore, so every cell still sums to 1 and the valid fraction of an edge cell is the
  fraction of its receptive field that holds real, non-ignored pixels. ``"crop"`` gives
  ``floor(H/s) x floor(W/s)`` cells and drops the last ``H mod s`` rows and ``W mod s`` columns
  (they are still validated). ``"error"`` raises ``ValueError`` unless ``s`` divides ``H`` and
  ``W``.
* **Several scales in one call**: counts at scale ``s`` are obtained from counts at any finer
  requested scale ``t`` that divides ``s`` by summing ``(s/t) x (s/t)`` blocks (exact: counts are
  integers), so ``[4, 8, 16, 32]`` costs one pass over the labels plus passes over the (16 times
  smaller) 1/4 result.

Implementation: no full-resolution one-hot tensor is ever built. On CPU a small C++ kernel
(``csrc/cpp_pool.cpp``, a custom operator built on first use by ``torch.utils.cpp_extension.load``
and cached) counts every pixel in a single pass; everywhere else (CUDA tensors, unusual dtypes,
no compiler or ninja) a pure-torch path counts with ``bincount`` over ``class * cells + cell``
indices in bounded-size row bands. Both paths give identical results; the tests check one against
the other and both against a direct reference.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import sysconfig
import threading
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch

__all__ = [
    "REMAINDER_POLICIES",
    "BACKENDS",
    "cpp_targets",
    "cpp_output_size",
    "nearest_downsample",
    "validate_labels",
    "compiled_kernel_available",
]

#: How ``cpp_targets`` treats a label map whose height or width is not a multiple of the scale.
REMAINDER_POLICIES = ("pad", "crop", "error")
#: ``backend`` choices of :func:`cpp_targets`.
BACKENDS = ("auto", "compiled", "torch")

_INTEGER_DTYPES = {
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
}
for _name in ("uint16", "uint32", "uint64"):
    if hasattr(torch, _name):
        _INTEGER_DTYPES.add(getattr(torch, _name))

# label dtypes the compiled kernel takes (and torch.aminmax supports)
_KERNEL_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)

# Pixels per bincount chunk of the pure-torch path: bounds its temporary memory to a few MiB.
_TORCH_CHUNK_PIXELS = 1 << 19


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------


def _check_scale(scale) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int):
        try:
            import numpy as np

            if isinstance(scale, np.integer):
                scale = int(scale)
            else:
                raise TypeError
        except TypeError:
            raise ValueError(f"scale must be a positive integer, got {scale!r}") from None
    if scale <= 0:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    return int(scale)


def _check_num_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return num_classes


def _check_label_dtype(labels: torch.Tensor) -> None:
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dtype not in _INTEGER_DTYPES:
        raise ValueError(
            f"labels must have an integer dtype (uint8, int8, int16, int32, int64), "
            f"got {labels.dtype}"
        )


def _bad_label_message(value: int, num_classes: int, ignore_value: int) -> str:
    return (
        f"label value {value} is outside [0, {num_classes}) "
        f"and is not the ignore value {ignore_value}"
    )


def validate_labels(labels: torch.Tensor, num_classes: int, ignore_value: int = 255) -> None:
    """Raise ``ValueError`` unless every label is in ``[0, num_classes)`` or equals
    ``ignore_value``.

    One pass (``aminmax``) in the common case; a second masked pass only when the maximum is at or
    above ``num_classes`` (which it is whenever the ignore value occurs).
    """
    _check_label_dtype(labels)
    if labels.numel() == 0:
        return
    if labels.dtype not in _KERNEL_DTYPES:  # uint16/32/64: aminmax is not implemented for them
        labels = labels.to(torch.int64)
    lo, hi = torch.aminmax(labels)
    lo, hi = int(lo), int(hi)
    if lo < 0 and lo != ignore_value:
        raise ValueError(_bad_label_message(lo, num_classes, ignore_value))
    if hi >= num_classes or lo < 0:
        wide = labels.to(torch.int64)  # error/ignore path only; avoids out-of-range scalar compares
        bad = ((wide < 0) | (wide >= num_classes)) & (wide != ignore_value)
        if bool(bad.any()):
            raise ValueError(_bad_label_message(int(wide[bad][0]), num_classes, ignore_value))


def cpp_output_size(size: int, scale: int, remainder: str = "pad") -> int:
    """Number of cells along a side of ``size`` pixels at ``scale`` under a remainder policy."""
    scale = _check_scale(scale)
    if remainder == "pad":
        return -(-size // scale)
    if remainder == "crop":
        return size // scale
    if remainder == "error":
        if size % scale:
            raise ValueError(
                f"label size {size} is not divisible by scale {scale} (remainder='error'; "
                f"use remainder='pad' or 'crop')"
            )
        return size // scale
    raise ValueError(f"unknown remainder policy {remainder!r}; valid choices: {REMAINDER_POLICIES}")


# --------------------------------------------------------------------------------------------
# compiled CPU kernel (optional)
# --------------------------------------------------------------------------------------------

_KERNEL_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc", "cpp_pool.cpp")
_KERNEL_CFLAGS = ["-O3"]
_kernel_lock = threading.Lock()
_kernel_op: Optional[Callable] = None
_kernel_error: Optional[str] = None


def _build_dir() -> str:
    env = os.environ.get("SEETHROUGHNET_BUILD_DIR")
    if env:
        return env
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "seethroughnet")


def _scripts_folders() -> List[str]:
    """This interpreter's scripts folder and that of the environment torch is installed in (on a
    shared install, e.g. ``make test-upstream``, an environment sees another's packages but not
    its scripts; ``pip install ninja`` beside torch puts ninja in the latter)."""
    site_packages = os.path.dirname(os.path.dirname(os.path.abspath(torch.__file__)))
    torch_env = os.path.dirname(os.path.dirname(os.path.dirname(site_packages)))
    return [sysconfig.get_path("scripts"), os.path.join(torch_env, "bin")]


def _ninja_on_path() -> bool:
    """True if ``ninja`` (needed by ``torch.utils.cpp_extension.load``) can be run.

    A ``pip install ninja`` puts it in the environment's scripts folder, which is not on ``PATH``
    when the environment's python is run without activating it; the first of
    :func:`_scripts_folders` that holds it is then appended to this process's ``PATH``.
    """
    if shutil.which("ninja"):
        return True
    for folder in filter(None, _scripts_folders()):
        if shutil.which("ninja", path=folder):
            os.environ["PATH"] = os.pathsep.join(filter(None, [os.environ.get("PATH"), folder]))
            return True
    return False


def _load_kernel() -> Optional[Callable]:
    """Build (once per source, torch and python version; cached) and load the C++ kernel.

    Returns ``torch.ops.seethroughnet.cpp_chain``, or ``None`` if it is unavailable (the reason
    is kept for :func:`compiled_kernel_available`). Built by ``torch.utils.cpp_extension.load``
    (ninja and the system C++ compiler, ``$CXX`` or ``c++``) into
    ``$SEETHROUGHNET_BUILD_DIR`` or ``~/.cache/seethroughnet/``. Set
    ``SEETHROUGHNET_DISABLE_KERNEL=1`` to force the pure-torch path.
    """
    global _kernel_op, _kernel_error
    if _kernel_op is not None or _kernel_error is not None:
        return _kernel_op
    with _kernel_lock:
        if _kernel_op is not None or _kernel_error is not None:
            return _kernel_op
        if os.environ.get("SEETHROUGHNET_DISABLE_KERNEL", "") not in ("", "0"):
            _kernel_error = "disabled by SEETHROUGHNET_DISABLE_KERNEL"
            return None
        try:
            if not _ninja_on_path():
                raise RuntimeError(
                    "ninja not found on PATH (torch.utils.cpp_extension needs it: "
                    "`pip install ninja` or the system package ninja-build)"
                )
            with open(_KERNEL_SRC, "rb") as f:
                src = f.read()
            tag = " ".join([torch.__version__, sys.version, *_KERNEL_CFLAGS]).encode()
            key = hashlib.sha256(src + tag).hexdigest()[:16]
            out_dir = os.path.join(_build_dir(), f"cpp_pool_{key}")
            os.makedirs(out_dir, exist_ok=True)
            from torch.utils.cpp_extension import load

            # registers the operator seethroughnet::cpp_chain; concurrent builders wait on a
            # file lock in out_dir, later processes reuse the library (ninja finds it up to date)
            load(
                name="seethroughnet_cpp_pool",
                sources=[_KERNEL_SRC],
                extra_cflags=_KERNEL_CFLAGS,
                build_directory=out_dir,
                is_python_module=False,
            )
            _kernel_op = torch.ops.seethroughnet.cpp_chain
        except Exception as exc:  # no compiler or ninja, build failure, read-only cache, ...
            _kernel_error = f"{type(exc).__name__}: {str(exc)[-2000:]}".strip()
            _kernel_op = None
    return _kernel_op


def compiled_kernel_available() -> Tuple[bool, str]:
    """``(True, "")`` if the compiled CPU kernel loads, else ``(False, reason)``."""
    op = _load_kernel()
    return (op is not None), (_kernel_error or "")


def _kernel_usable(labels: torch.Tensor) -> bool:
    return labels.device.type == "cpu" and labels.dtype in _KERNEL_DTYPES


def _chains(scales: Sequence[int]) -> List[List[int]]:
    """Split scales into divisibility chains (each element divides the next), finest first."""
    chains: List[List[int]] = []
    for s in sorted(set(scales)):
        for chain in chains:
            if s % chain[-1] == 0:
                chain.append(s)
                break
        else:
            chains.append([s])
    return chains


def _chain_compiled(labels, chain, sizes, K, ignore_value) -> dict:
    """All scales of one chain in one pass of the compiled kernel; ``{scale: (N, K+1, h, w)}``.

    A label outside ``[0, K)`` that is not ``ignore_value`` raises ``ValueError`` (from the
    kernel, same message as :func:`validate_labels`).
    """
    op = _load_kernel()
    outs = op(
        labels,
        K,
        int(ignore_value),
        list(chain),
        [sizes[s][0] for s in chain],
        [sizes[s][1] for s in chain],
        torch.get_num_threads(),
    )
    return dict(zip(chain, outs))


# --------------------------------------------------------------------------------------------
# pure-torch path (any device)
# --------------------------------------------------------------------------------------------


def _fine_counts_torch(labels, s, K, ignore_value, Ho, Wo) -> torch.Tensor:
    """Integer counts ``(N, K+1, Ho, Wo)`` (int64) by bincount over class-and-cell indices.

    Works in row bands of whole cells so that temporaries stay bounded (``_TORCH_CHUNK_PIXELS``);
    pixels outside the ``Ho*s x Wo*s`` window (crop policy) are not counted; missing pixels of edge
    cells (pad policy) are added to the ignore channel afterwards.
    """
    N, H, W = labels.shape
    C = K + 1
    dev = labels.device
    counts = torch.zeros((N, C, Ho, Wo), dtype=torch.int64, device=dev)
    Hs, Ws = min(H, Ho * s), min(W, Wo * s)
    cell_cols = torch.arange(Ws, device=dev) // s  # (Ws,)
    rows_per_band = max(s, (_TORCH_CHUNK_PIXELS // max(Ws, 1)) // s * s)
    for n in range(N):
        for y0 in range(0, Hs, rows_per_band):
            y1 = min(Hs, y0 + rows_per_band)
            band = labels[n, y0:y1, :Ws].to(torch.int64)
            cls = torch.where((band >= 0) & (band < K), band, torch.full_like(band, K))
            # index within the band: (c, yo_local, xo) flattened
            yo0 = y0 // s
            hb = -(-(y1 - y0) // s)
            cell_rows = (torch.arange(y1 - y0, device=dev) // s)[:, None]
            idx = (cls * hb + cell_rows) * Wo + cell_cols[None, :]
            bc = torch.bincount(idx.reshape(-1), minlength=C * hb * Wo).view(C, hb, Wo)
            counts[n, :, yo0 : yo0 + hb] += bc
    _add_missing_as_ignore(counts, H, W, s)
    return counts


def _add_missing_as_ignore(counts, H, W, s) -> None:
    """Add the pixels of edge cells that lie outside an ``H x W`` map to the ignore channel."""
    N, C, Ho, Wo = counts.shape
    if Ho * s <= H and Wo * s <= W:
        return
    dev = counts.device
    rows_in = torch.clamp(H - torch.arange(Ho, device=dev) * s, 0, s)
    cols_in = torch.clamp(W - torch.arange(Wo, device=dev) * s, 0, s)
    missing = s * s - rows_in[:, None] * cols_in[None, :]
    counts[:, C - 1] += missing.to(counts.dtype)


def _coarsen_counts_torch(counts: torch.Tensor, H: int, W: int, t: int, r: int, Hc: int, Wc: int):
    """Counts at scale ``s = r t`` from integer counts at scale ``t`` (sum of ``r x r`` blocks)."""
    N, C, Hf, Wf = counts.shape
    Hp, Wp = Hc * r, Wc * r
    if Hp != Hf or Wp != Wf:
        src = counts[:, :, : min(Hf, Hp), : min(Wf, Wp)]
        padded = counts.new_zeros((N, C, Hp, Wp))
        padded[:, :, : src.shape[2], : src.shape[3]] = src
        # missing fine cells are entirely outside the label map: t*t ignore pixels each
        padded[:, C - 1, src.shape[2] :, :] = t * t
        padded[:, C - 1, :, src.shape[3] :] = t * t
        src = padded
    else:
        src = counts
    return src.view(N, C, Hc, r, Wc, r).sum(dim=(3, 5))


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def _plan(scales: List[int]) -> List[Tuple[int, Optional[int]]]:
    """Order of computation: each scale from the largest finer requested scale dividing it."""
    plan = []
    done: List[int] = []
    for s in sorted(set(scales)):
        bases = [t for t in done if s % t == 0 and t < s]
        plan.append((s, max(bases) if bases else None))
        done.append(s)
    return plan


def cpp_targets(
    labels: torch.Tensor,
    scale: Union[int, Sequence[int]],
    num_classes: int,
    ignore_value: int = 255,
    *,
    remainder: str = "pad",
    backend: str = "auto",
) -> Union[torch.Tensor, List[torch.Tensor]]:
    """Class Probability Preserving targets (SeeThroughNet, Eq. 1).

    Args:
        labels: ``(N, H, W)`` or ``(H, W)`` integer label map (any integer dtype, any device).
            Values must lie in ``[0, num_classes)`` or equal ``ignore_value``.
        scale: a positive integer ``s`` (the paper uses 4, 8, 16, 32), or a sequence of them; with
            a sequence the result is a list with one tensor per scale, in the given order, all
            computed from a single pass over the labels where the scales nest.
        num_classes: ``K``, the number of real classes.
        ignore_value: label value of ignored pixels; it gets channel ``K``.
        remainder: ``"pad"`` (default), ``"crop"`` or ``"error"``; see the module docstring.
        backend: ``"auto"`` (compiled CPU kernel when possible, else pure torch), ``"compiled"``
            (raise if unavailable) or ``"torch"``.

    Returns:
        float32 ``(N, K + 1, ceil(H/s), ceil(W/s))`` class fractions (``floor`` sizes for
        ``remainder="crop"``; no batch dimension if ``labels`` had none), ``count / s^2``; the
        channels of every cell sum to 1. A list of such tensors if ``scale`` is a sequence.

    Raises:
        ValueError: float/bool labels, a label outside ``[0, K)`` that is not ``ignore_value``,
            a non-positive scale, an unknown policy/backend, or (``remainder="error"``) a size
            not divisible by the scale.
    """
    single = not isinstance(scale, (list, tuple))
    scales = [_check_scale(scale)] if single else [_check_scale(s) for s in scale]
    if not scales:
        raise ValueError("scale must be a positive integer or a non-empty sequence of them")
    K = _check_num_classes(num_classes)
    _check_label_dtype(labels)
    if remainder not in REMAINDER_POLICIES:
        raise ValueError(
            f"unknown remainder policy {remainder!r}; valid choices: {REMAINDER_POLICIES}"
        )
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid choices: {BACKENDS}")
    if labels.dim() not in (2, 3):
        raise ValueError(f"labels must have shape (N, H, W) or (H, W), got {tuple(labels.shape)}")
    if isinstance(ignore_value, bool) or not isinstance(ignore_value, int):
        raise ValueError(f"ignore_value must be an integer, got {ignore_value!r}")
    if 0 <= ignore_value < K:
        raise ValueError(f"ignore_value {ignore_value} collides with a class index in [0, {K})")
    batched = labels.dim() == 3
    lab = labels if batched else labels.unsqueeze(0)
    if lab.dtype not in _KERNEL_DTYPES:  # uint16/32/64: few torch ops support them
        lab = lab.to(torch.int64)
    N, H, W = lab.shape
    sizes = {
        s: (cpp_output_size(H, s, remainder), cpp_output_size(W, s, remainder)) for s in scales
    }

    use_kernel = False
    if backend in ("auto", "compiled"):
        # the kernel accumulates counts in float32: exact while s^2 <= 2^24
        use_kernel = _kernel_usable(lab) and max(scales) <= 4096 and _load_kernel() is not None
        if backend == "compiled" and not use_kernel:
            reason = _kernel_error or f"not usable for {lab.dtype} on {lab.device}"
            raise RuntimeError(f"compiled CPP kernel unavailable: {reason}")

    if remainder == "crop" and lab.numel():
        # the cropped-away border is not read by the counting pass; validate it here
        s_min = min(scales)
        Hs, Ws = sizes[s_min][0] * s_min, sizes[s_min][1] * s_min
        if Hs < H:
            validate_labels(lab[:, Hs:], K, ignore_value)
        if Ws < W:
            validate_labels(lab[:, :, Ws:], K, ignore_value)

    results = {}
    if use_kernel:
        for chain in _chains(scales):
            results.update(_chain_compiled(lab, chain, sizes, K, ignore_value))
    else:
        validate_labels(lab, K, ignore_value)
        counts = {}
        for s, base in _plan(scales):
            Ho, Wo = sizes[s]
            if base is None:
                counts[s] = _fine_counts_torch(lab, s, K, ignore_value, Ho, Wo)
            else:
                counts[s] = _coarsen_counts_torch(counts[base], H, W, base, s // base, Ho, Wo)
        for s in counts:
            # integer counts are exact in float32 (s^2 < 2^24 for s < 4096); one rounding in the
            # divide
            results[s] = counts[s].to(torch.float32).div_(float(s * s))
    out = [results[s] if batched else results[s][0] for s in scales]
    return out[0] if single else out


def nearest_downsample(labels: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour down-sampling of a label map to ``size = (h, w)``.

    Same sampling as ``F.interpolate(mode="nearest")``: output ``i`` takes input row
    ``floor(i * H / h)``, computed in exact integer arithmetic, keeping the dtype. With
    ``H = s h`` this is ``labels[..., ::s, ::s]``: the top-left pixel of every ``s x s`` cell.
    """
    h, w = size
    H, W = labels.shape[-2:]
    rows = (torch.arange(h, device=labels.device) * H) // h
    cols = (torch.arange(w, device=labels.device) * W) // w
    return labels.index_select(-2, rows).index_select(-1, cols)
