"""Test-session settings: dataset-validation caches go to a temporary folder, not ~/.cache."""

import os
import tempfile

os.environ.setdefault("SEETHROUGHNET_CACHE_DIR", tempfile.mkdtemp(prefix="stn-test-cache-"))
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


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
def fake_mapillary_label(seed: int, h: int = 32, w: int = 64):
    import numpy as np

    rng = np.random.default_rng(seed)
    a = np.full((h, w), 27, np.uint8)  # nature--sky
    a[h // 2 :] = 13  # construction--flat--road
    a[h // 2 :, : w // 4] = 15  # construction--flat--sidewalk
    a[3 * h // 4, w // 4 :] = 24  # marking--general
    a[h // 2 : 3 * h // 4, w // 2 : w // 2 + 8] = 55  # object--vehicle--car
    a[2:5, rng.integers(0, w - 3) :][:, :3] = 0  # animal--bird
    a[rng.integers(0, h)] = 65  # void--unlabeled
    return a


@pytest.fixture
def fake_mapillary(tmp_path):
    """``write(root=tmp_path/"mapillary_vistas", n=2, layout="v1.1")``: a tiny Mapillary Vistas v1.2
    folder (config file with the 66 v1.2 labels, ``n`` JPEG images and native label PNGs of
    :func:`fake_mapillary_label` per split); ``layout="v1.2"`` writes ``config_v1.2.json`` and
    ``<split>/v1.2/labels`` (palette PNGs, as the real ones). Returns the root."""
    import json

    import numpy as np
    from PIL import Image

    from seethroughnet.data.datasets.mapillary_vistas import MAPILLARY_V12_LABELS

    def write(root=None, n: int = 2, layout: str = "v1.1"):
        root = tmp_path / "mapillary_vistas" if root is None else root
        labels = [
            {
                "name": name,
                "readable": name.split("--")[-1].replace("-", " ").title(),
                "color": [(7 * i) % 256, (31 * i) % 256, (97 * i) % 256],
                "instances": name.startswith(("human", "object--vehicle")),
                "evaluate": name != "void--unlabeled",
            }
            for i, name in enumerate(MAPILLARY_V12_LABELS)
        ]
        root.mkdir(parents=True, exist_ok=True)
        config = "config_v1.2.json" if layout == "v1.2" else "config.json"
        (root / config).write_text(json.dumps({"labels": labels}))
        label_dir = "v1.2/labels" if layout == "v1.2" else "labels"
        for s, split in enumerate(("training", "validation")):
            (root / split / "images").mkdir(parents=True, exist_ok=True)
            (root / split / label_dir).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                seed = 10 * s + i
                stem = f"img{seed:04d}"
                rgb = np.random.default_rng(seed).integers(0, 255, (32, 64, 3), dtype=np.uint8)
                Image.fromarray(rgb).save(root / split / "images" / f"{stem}.jpg")
                lab = Image.fromarray(fake_mapillary_label(seed))
                if layout == "v1.2":  # palette PNGs, the colours of the config file
                    lab = lab.convert("P")
                    lab.putpalette([c for entry in labels for c in entry["color"]])
                lab.save(root / split / label_dir / f"{stem}.png")
        return root

    return write
