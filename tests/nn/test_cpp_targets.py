"""Tests of Class Probability Preserving pooling (SeeThroughNet Eq. 1): seethroughnet.nn.cpp.

Every result is checked against ``reference_cpp`` below: a direct numpy count of the labels of
each ``s x s`` cell (no code shared with the implementation).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from seethroughnet.nn import cpp
from seethroughnet.nn.cpp import (
    compiled_kernel_available,
    cpp_output_size,
    cpp_targets,
    nearest_downsample,
    validate_labels,
)

IGNORE = 255
KERNEL_OK, KERNEL_REASON = compiled_kernel_available()
needs_kernel = pytest.mark.skipif(
    not KERNEL_OK, reason=f"compiled CPP kernel unavailable: {KERNEL_REASON}"
)
BACKENDS = ["torch"] + (["compiled"] if KERNEL_OK else [])
DTYPES = [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]


def reference_cpp(labels, s, K, ignore=IGNORE, remainder="pad"):
    """Direct Eq. 1: per cell, count each class (ignore -> channel K; pixels outside -> ignore)."""
    lab = np.asarray(labels, dtype=np.int64)
    N, H, W = lab.shape
    if remainder == "pad":
        Ho, Wo = -(-H // s), -(-W // s)
    else:
        Ho, Wo = H // s, W // s
    out = np.zeros((N, K + 1, Ho, Wo), dtype=np.float64)
    for n in range(N):
        for i in range(Ho):
            for j in range(Wo):
                block = lab[n, i * s : (i + 1) * s, j * s : (j + 1) * s].ravel()
                out[n, :, i, j] = np.bincount(np.where(block == ignore, K, block), minlength=K + 1)
                out[n, K, i, j] += s * s - block.size  # pixels outside the map count as ignore
    return torch.from_numpy(out / (s * s)).to(torch.float32)


@st.composite
def label_maps(draw, max_side=24, max_n=2):
    K = draw(st.integers(1, 6))
    n = draw(st.integers(1, max_n))
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, K + 1, (n, h, w), generator=g)
    lab[lab == K] = IGNORE
    # make it piecewise constant sometimes (the kernel's uniform-segment fast path)
    if draw(st.booleans()):
        lab = (
            lab[:, : (h + 3) // 4, : (w + 3) // 4]
            .repeat_interleave(4, 1)
            .repeat_interleave(4, 2)[:, :h, :w]
        )
    dtype = draw(st.sampled_from(DTYPES))
    if dtype == torch.int8:
        lab = torch.where(lab == IGNORE, torch.full_like(lab, -1), lab)
        return lab.to(dtype), K, -1
    return lab.to(dtype), K, IGNORE


def _ref_ignore(lab, ign):
    """Reference input with the ignore value mapped to IGNORE (int8 maps cannot hold 255)."""
    l64 = lab.to(torch.int64)
    return torch.where(l64 == ign, torch.full_like(l64, IGNORE), l64)


@settings(max_examples=60, deadline=None)
@given(label_maps(), st.integers(1, 9), st.sampled_from(BACKENDS))
def test_matches_direct_reference(data, s, backend):
    lab, K, ign = data
    out = cpp_targets(lab, s, K, ign, backend=backend)
    ref = reference_cpp(_ref_ignore(lab, ign), s, K)
    assert out.dtype == torch.float32
    assert out.shape == ref.shape
    assert torch.equal(out, ref)


@settings(max_examples=40, deadline=None)
@given(label_maps(), st.integers(1, 9), st.sampled_from(BACKENDS))
def test_channels_sum_to_one(data, s, backend):
    lab, K, ign = data
    out = cpp_targets(lab, s, K, ign, backend=backend)
    total = out.double().sum(dim=1)
    if s & (s - 1) == 0:  # power of two: every fraction k / s^2 is exact in float32
        assert torch.equal(total, torch.ones_like(total))
    else:
        assert torch.allclose(total, torch.ones_like(total), atol=1e-6, rtol=0)


@settings(max_examples=30, deadline=None)
@given(label_maps(), st.sampled_from(BACKENDS))
def test_scale_one_is_one_hot(data, backend):
    lab, K, ign = data
    out = cpp_targets(lab, 1, K, ign, backend=backend)
    l64 = lab.to(torch.int64)
    cls = torch.where(l64 == ign, torch.full_like(l64, K), l64)
    one_hot = F.one_hot(cls, K + 1).permute(0, 3, 1, 2).to(torch.float32)
    assert torch.equal(out, one_hot)


@settings(max_examples=30, deadline=None)
@given(label_maps(), st.integers(1, 6), st.sampled_from(BACKENDS))
def test_cell_is_mean_of_block_one_hots(data, s, backend):
    lab, K, ign = data
    l64 = lab.to(torch.int64)
    N, H, W = l64.shape
    Ho, Wo = -(-H // s), -(-W // s)
    padded = torch.full(
        (N, Ho * s, Wo * s), K, dtype=torch.int64
    )  # outside pixels -> ignore channel
    padded[:, :H, :W] = torch.where(l64 == ign, torch.full_like(l64, K), l64)
    one_hot = F.one_hot(padded, K + 1).permute(0, 3, 1, 2).double()
    mean = one_hot.view(N, K + 1, Ho, s, Wo, s).mean(dim=(3, 5)).float()
    assert torch.allclose(cpp_targets(lab, s, K, ign, backend=backend), mean, atol=1e-7, rtol=0)


@settings(max_examples=30, deadline=None)
@given(
    label_maps(max_side=70),
    st.sampled_from(["pad", "crop"]),
    st.sampled_from(BACKENDS),
    st.sampled_from(
        [[1, 2, 4, 8], [2, 4, 8, 16, 32], [4, 8, 16, 32], [2, 6, 12], [3, 4, 8, 9], [8, 2]]
    ),
)
def test_hierarchical_equals_direct(data, remainder, backend, scales):
    lab, K, ign = data
    H, W = lab.shape[-2:]
    scales = [s for s in scales if cpp_output_size(min(H, W), s, remainder) > 0] or [1]
    together = cpp_targets(lab, scales, K, ign, remainder=remainder, backend=backend)
    assert isinstance(together, list) and len(together) == len(scales)
    for s, t in zip(scales, together):
        direct = cpp_targets(lab, s, K, ign, remainder=remainder, backend=backend)
        assert torch.equal(t, direct), s
        ref = reference_cpp(_ref_ignore(lab, ign), s, K, remainder=remainder)
        assert torch.equal(t, ref), s


@needs_kernel
@settings(max_examples=40, deadline=None)
@given(
    label_maps(max_side=80),
    st.sampled_from(["pad", "crop"]),
    st.sampled_from([[1], [3], [4], [2, 4, 8], [4, 8, 16, 32], [5, 10, 20], [8, 16, 32]]),
)
def test_compiled_kernel_equals_torch_path(data, remainder, scales):
    lab, K, ign = data
    H, W = lab.shape[-2:]
    scales = [s for s in scales if cpp_output_size(min(H, W), s, remainder) > 0] or [1]
    a = cpp_targets(lab, scales, K, ign, remainder=remainder, backend="compiled")
    b = cpp_targets(lab, scales, K, ign, remainder=remainder, backend="torch")
    for x, y in zip(a, b):
        assert torch.equal(x, y)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cityscapes_and_crop_sizes(backend):
    g = torch.Generator().manual_seed(0)
    lab = torch.randint(0, 20, (1, 1024, 2048), generator=g)
    lab[lab == 19] = IGNORE
    outs = cpp_targets(lab, [4, 8, 16, 32], 19, backend=backend)
    assert [tuple(o.shape) for o in outs] == [(1, 20, 1024 // s, 2048 // s) for s in (4, 8, 16, 32)]
    # 713 x 713 crop: ceil sizes under the default "pad" policy, floor under "crop"
    crop = lab[:, :713, :713]
    outs = cpp_targets(crop, [4, 8, 16, 32], 19, backend=backend)
    assert [o.shape[-1] for o in outs] == [179, 90, 45, 23]
    assert torch.equal(outs[1], reference_cpp(crop, 8, 19))
    last = outs[3][0, :, -1, -1]  # cell covering rows/cols 704..735: 9 x 9 real pixels of 1024
    real = reference_cpp(crop[:, 704:, 704:], 9, 19)[0, :, 0, 0] * 81 / 1024
    assert torch.allclose(last[:19], real[:19], atol=1e-7)
    assert torch.isclose(last[19], real[19] + (1024 - 81) / 1024, atol=1e-7)
    cropped = cpp_targets(crop, [4, 8, 16, 32], 19, remainder="crop", backend=backend)
    assert [o.shape[-1] for o in cropped] == [178, 89, 44, 22]
    assert torch.equal(cropped[1], reference_cpp(crop, 8, 19, remainder="crop"))
    with pytest.raises(ValueError, match="not divisible"):
        cpp_targets(crop, 8, 19, remainder="error", backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unbatched_input_and_list_order(backend):
    lab = torch.tensor(
        [[0, 1, 1, 255], [2, 2, 0, 0], [1, 1, 1, 1], [0, 0, 0, 2]], dtype=torch.uint8
    )
    out = cpp_targets(lab, 2, 3, backend=backend)
    assert out.shape == (4, 2, 2)
    assert torch.equal(out, reference_cpp(lab[None], 2, 3)[0])
    a, b = cpp_targets(lab, [4, 2], 3, backend=backend)
    assert a.shape == (4, 1, 1) and b.shape == (4, 2, 2)
    assert torch.allclose(a[:, 0, 0], torch.tensor([6, 6, 3, 1]) / 16.0)


def test_auto_falls_back_to_torch_without_kernel(monkeypatch):
    lab = torch.randint(0, 4, (2, 17, 23))
    expected = reference_cpp(lab, 4, 4)
    monkeypatch.setattr(cpp, "_load_kernel", lambda: None)
    monkeypatch.setattr(cpp, "_kernel_error", "simulated: no compiler")
    assert torch.equal(cpp_targets(lab, 4, 4), expected)
    with pytest.raises(RuntimeError, match="simulated: no compiler"):
        cpp_targets(lab, 4, 4, backend="compiled")


def test_ninja_found_beside_the_interpreter(monkeypatch, tmp_path):
    """``pip install ninja`` puts it in the environment's scripts folder, not always on PATH."""
    scripts = tmp_path / "bin"
    scripts.mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    torch_env_bin = tmp_path / "torch_env_bin"  # the environment torch is installed in
    torch_env_bin.mkdir()
    monkeypatch.setattr(cpp, "_scripts_folders", lambda: [str(scripts), str(torch_env_bin)])
    assert not cpp._ninja_on_path()
    for folder in (torch_env_bin, scripts):  # either folder holding ninja is enough; scripts first
        ninja = folder / "ninja"
        ninja.write_text("#!/bin/sh\n")
        ninja.chmod(0o755)
        monkeypatch.setenv("PATH", str(empty))
        assert cpp._ninja_on_path()
        assert cpp.os.environ["PATH"].split(cpp.os.pathsep) == [str(empty), str(folder)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device in this environment")
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.int64])
def test_cuda_agrees_with_cpu(dtype):
    g = torch.Generator().manual_seed(1)
    lab = torch.randint(0, 20, (2, 131, 257), generator=g)
    lab[lab == 19] = IGNORE
    lab = lab.to(dtype)
    cpu_out = cpp_targets(lab, [4, 8, 16, 32], 19)
    gpu_out = cpp_targets(lab.cuda(), [4, 8, 16, 32], 19)
    for a, b in zip(cpu_out, gpu_out):
        assert b.is_cuda
        assert torch.equal(a, b.cpu())


@pytest.mark.parametrize("name", ["uint16", "uint32", "uint64"])
def test_wide_unsigned_dtypes(name):
    if not hasattr(torch, name):
        pytest.skip(f"torch {torch.__version__} has no {name}")
    lab = torch.randint(0, 5, (2, 13, 9))
    lab[lab == 4] = IGNORE
    assert torch.equal(
        cpp_targets(lab.to(getattr(torch, name)), [2, 4], 4)[1], reference_cpp(lab, 4, 4)
    )


def test_nearest_downsample_matches_interpolate():
    g = torch.Generator().manual_seed(2)
    lab = torch.randint(0, 19, (2, 713, 301), generator=g)
    for size in [(90, 38), (179, 76), (23, 10), (713, 301)]:
        ours = nearest_downsample(lab, size)
        ref = F.interpolate(lab[:, None].double(), size=size, mode="nearest")[:, 0].long()
        assert torch.equal(ours, ref)
    assert torch.equal(nearest_downsample(lab[:, :704, :296], (88, 37)), lab[:, :704:8, :296:8])


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("backend", BACKENDS)
def test_label_out_of_range(backend):
    lab = torch.zeros(1, 16, 16, dtype=torch.int64)
    lab[0, 5, 7] = 37
    msg = "label value 37 is outside \\[0, 19\\) and is not the ignore value 255"
    with pytest.raises(ValueError, match=msg):
        cpp_targets(lab, 4, 19, backend=backend)
    with pytest.raises(ValueError, match=msg):
        cpp_targets(lab, [4, 8], 19, backend=backend)
    with pytest.raises(ValueError, match=msg):
        validate_labels(lab, 19)
    lab[0, 5, 7] = 19  # == K is also out of range
    with pytest.raises(ValueError, match="label value 19 is outside"):
        cpp_targets(lab, 4, 19, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.int64])
def test_negative_label(backend, dtype):
    lab = torch.zeros(2, 9, 9, dtype=dtype)
    lab[1, 8, 8] = -3  # in a padded edge cell
    with pytest.raises(
        ValueError, match="label value -3 is outside \\[0, 4\\) and is not the ignore value 255"
    ):
        cpp_targets(lab, 4, 4, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_label_in_cropped_border_is_reported(backend):
    lab = torch.zeros(1, 10, 10, dtype=torch.int64)
    lab[0, 9, 2] = 50
    with pytest.raises(ValueError, match="label value 50"):
        cpp_targets(lab, 4, 19, remainder="crop", backend=backend)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bool])
def test_non_integer_labels(dtype):
    with pytest.raises(ValueError, match="integer dtype"):
        cpp_targets(torch.zeros(1, 8, 8, dtype=dtype), 4, 19)


@pytest.mark.parametrize("scale", [0, -4, 2.5, "4", True, [4, 0]])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match="scale must be a positive integer"):
        cpp_targets(torch.zeros(1, 8, 8, dtype=torch.int64), scale, 19)


def test_bad_options():
    lab = torch.zeros(1, 8, 8, dtype=torch.int64)
    with pytest.raises(ValueError, match="remainder policy"):
        cpp_targets(lab, 4, 19, remainder="wrap")
    with pytest.raises(ValueError, match="backend"):
        cpp_targets(lab, 4, 19, backend="numba")
    with pytest.raises(ValueError, match="num_classes"):
        cpp_targets(lab, 4, 0)
    with pytest.raises(ValueError, match="collides"):
        cpp_targets(lab, 4, 19, ignore_value=3)
    with pytest.raises(ValueError, match="shape"):
        cpp_targets(torch.zeros(1, 1, 8, 8, dtype=torch.int64), 4, 19)
