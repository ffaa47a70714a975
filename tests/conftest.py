"""Test-session settings: dataset-validation caches go to a temporary folder, not ~/.cache."""

import os
import sys
import tempfile

os.environ.setdefault("SEETHROUGHNET_CACHE_DIR", tempfile.mkdtemp(prefix="stn-test-cache-"))
os.environ.setdefault("MPLBACKEND", "Agg")
# datasets/ (the prepare scripts and their _split_sizes helper) importable in every process of the
# session: pytest-xdist's controller re-imports the class of a warning a worker reports (e.g.
# _split_sizes.SplitSizeWarning), which fails unless its module can be found there too
sys.path.append(
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "datasets")
)

import pytest  # noqa: E402

from official_releases import write_fake_mapillary  # noqa: E402  tests/official_releases.py


@pytest.fixture(scope="module")
def make_synthetic_cityscapes(tmp_path_factory, request):
    """Factory for the end-to-end tests: ``make(seed=3, num_images=..., register=True)`` generates a
    64x128 synthetic Cityscapes under a fresh ``DETECTRON2_DATASETS`` root and returns that root;
    with ``register`` it also points ``DETECTRON2_DATASETS`` at it and registers the builtin dataset
    names, both restored when the test module ends."""

    def make(seed=3, num_images=None, register=True):
        from seethroughnet.data.synthetic import generate_synthetic_cityscapes

        root = tmp_path_factory.mktemp("d2datasets")
        generate_synthetic_cityscapes(
            str(root / "cityscapes"),
            seed=seed,
            height=64,
            width=128,
            num_images=num_images or {"train": 4, "val": 3, "test": 2},
            progress=False,
        )
        if register:
            from seethroughnet.data.datasets import register_all

            old = os.environ.get("DETECTRON2_DATASETS")
            os.environ["DETECTRON2_DATASETS"] = str(root)
            register_all()

            def restore():
                if old is None:
                    os.environ.pop("DETECTRON2_DATASETS", None)
                else:
                    os.environ["DETECTRON2_DATASETS"] = old
                register_all()

            request.addfinalizer(restore)
        return root

    return make


@pytest.fixture
def assert_same_final_weights():
    """``check(run_a, run_b)``: the ``model_final.pth`` of two runs hold the same tensors (floats
    within 1e-6 of each tensor's largest magnitude, others equal): the exact-resume check."""
    import torch

    def load(run):
        path = os.path.join(run, "model_final.pth")
        return torch.load(path, map_location="cpu", weights_only=True)["model"]

    def check(run_a, run_b):
        a, b = load(run_a), load(run_b)
        assert a.keys() == b.keys()
        for k in a:
            if a[k].is_floating_point():
                scale = a[k].abs().max().clamp_min(1e-12)
                assert ((a[k] - b[k]).abs().max() / scale) <= 1e-6, k
            else:
                assert torch.equal(a[k], b[k]), k

    return check


#: A tiny Mapillary Vistas sample's native labels (65 = "void--unlabeled"), 32x64 (H x W): road
#: (13), sidewalk (15), lane marking (24, mapped to road), sky (27), car (55), bird (0, unmapped),
#: and an unlabeled row.
@pytest.fixture
def fake_mapillary(tmp_path):
    """``write(root=tmp_path/"mapillary_vistas", n=2, layout="v1.1")``:
    :func:`official_releases.write_fake_mapillary`. Returns the root."""

    def write(root=None, n: int = 2, layout: str = "v1.1"):
        return write_fake_mapillary(
            tmp_path / "mapillary_vistas" if root is None else root, n, layout
        )

    return write


def pytest_collection_modifyitems(config, items):
    """The long files first (``route_selection.long_files_first``).
    ``SEETHROUGHNET_ROUTE_DEPENDENT_ONLY=1`` (make test-upstream: route A already ran every test):
    the files that can differ between detectron2 installs whole, a one-test sample of the other
    files that reach detectron2, nothing of the files that cannot (tests/route_selection.py)."""
    from route_selection import long_files_first

    long_files_first(items)
    if os.environ.get("SEETHROUGHNET_ROUTE_DEPENDENT_ONLY") != "1":
        return
    from route_selection import route_b_plan

    keep, drop = route_b_plan(items, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
        files = len({str(i.fspath) for i in keep})
        print(f"\nroute B: {len(keep)} tests from {files} files kept, {len(drop)} deselected")
