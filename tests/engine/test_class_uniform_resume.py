"""Exact resume with class-uniform sampling on (DATALOADER.CLASS_UNIFORM, INPUT.PIPELINE
"nvidia"): the data stream restored from a checkpoint's position continues exactly (same images,
same centroids, same augmentation draws, with and without workers, on every rank), and a
training run SIGKILLed mid-step and restarted with ``--resume`` reaches the weights of an
uninterrupted run (the pattern of test_crash_safe_training.py)."""

import os
import subprocess
import sys
from itertools import islice

import numpy as np
import pytest
import torch

from sigkill_run import run_until_killed

pytest.importorskip("detectron2")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_NET = os.path.join(REPO, "projects/SeeThroughNet/train_net.py")
TINY_CONFIG = os.path.join(REPO, "tests/configs/seethroughnet_tiny.yaml")


def _order(num_images=23, num_classes=4, pct=0.5, seed=0):
    from seethroughnet.data.class_uniform import ClassUniformOrder

    rng = np.random.default_rng(seed)
    rows = [
        (c, i, int(rng.integers(0, 60)), int(rng.integers(0, 30)))
        for i in range(num_images)
        for c in range(num_classes)
        if rng.random() < 0.6
    ]
    return ClassUniformOrder(num_images, np.asarray(rows), num_classes, pct)


def _noisy_mapper(d):
    import random

    return (
        d["file_name"],
        d.get("class_uniform_centroid"),
        (random.random(), float(np.random.rand()), float(torch.rand(()))),
    )


def _loader(order, seed=9, workers=0, rank=0, world=1):
    from seethroughnet.resumable import ResumableTrainLoader

    dicts = [{"file_name": f"img{i}.png"} for i in range(order.num_images)]
    loader = ResumableTrainLoader(
        dicts, _noisy_mapper, 3, seed=seed, num_workers=workers, order=order
    )
    loader.rank, loader.world_size = rank, world
    return loader


def _take(loader, n):
    it = iter(loader)
    return [next(it) for _ in range(n)]


def test_class_uniform_stream_continues_exactly_after_a_restart():
    from seethroughnet.resumable import get_rng_state, set_rng_state

    order = _order()
    torch.manual_seed(0)
    first = _loader(order)
    it = iter(first)
    ref = [next(it) for _ in range(3)]
    state, rng = first.state_dict(), get_rng_state()
    ref += [next(it) for _ in range(9)]  # 36 samples: more than one epoch (length 23)
    assert any(c is not None for b in ref for _, c, _ in b), "no class-uniform sample drawn"
    assert any(c is None for b in ref for _, c, _ in b)
    assert "class_uniform" in state["order"]
    torch.manual_seed(1)
    resumed = _loader(order, seed=0)
    resumed.load_state_dict(state)
    set_rng_state(rng)
    assert _take(resumed, 9) == ref[3:]

    # workers: draws seeded per sample; the same for any number of workers and after a restart
    two = _take(_loader(order, workers=2), 8)
    assert [[(f, c) for f, c, _ in b] for b in two] == [[(f, c) for f, c, _ in b] for b in ref[:8]]
    assert _take(_loader(order, workers=3), 8) == two
    started = _loader(order, workers=2)
    _take(started, 3)
    again = _loader(order, seed=0, workers=2)
    again.load_state_dict(started.state_dict())
    assert _take(again, 5) == two[3:]


def test_ranks_share_one_stream_and_a_changed_order_warns(caplog):
    order = _order()
    stream = [(f"img{i}.png", c) for i, c in islice(order.elements(9), 0, 36)]
    ranks = [_take(_loader(order, rank=r, world=2), 6) for r in range(2)]
    # rank r holds elements r, r + 2, ...; consecutive ones form its batches
    for r in range(2):
        assert [(f, c) for b in ranks[r] for f, c, _ in b] == stream[r::2]
    loader = _loader(_order(pct=0.3))
    with caplog.at_level("WARNING"):
        loader.load_state_dict(_loader(order).state_dict())
    assert "DATALOADER.CLASS_UNIFORM" in caplog.text


# ------------------------------------------------------------------- a killed training run
_WRAPPER = r"""
import os, runpy, sys, time
n = int(os.environ["KILL_STEP"]) if os.environ.get("KILL_STEP") else None
if n is not None:
    from seethroughnet.engine import Trainer
    original_step = Trainer.run_step

    def run_step(self):
        if self.iter == n:
            data = next(self.step_loop._data_loader_iter)
            self.step_loop.model(data)
            print("READY-TO-KILL", flush=True)
            time.sleep(600)
        original_step(self)

    Trainer.run_step = run_step
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def dataset_env(make_synthetic_cityscapes):
    # 40 training images: int(40 * 1.0 / 19) = 2 class-uniform samples per class and epoch
    root = make_synthetic_cityscapes(num_images={"train": 40, "val": 2, "test": 1}, register=False)
    return {
        **os.environ,
        "DETECTRON2_DATASETS": str(root),
        "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": "1",
    }


def _train(env, out, cache, *, resume=False, kill_step=None, tmp):
    wrapper = tmp / "wrapper.py"
    wrapper.write_text(_WRAPPER)
    cmd = [sys.executable, str(wrapper), TRAIN_NET, "--config-file", TINY_CONFIG]
    cmd += ["--resume"] if resume else []
    cmd += ["SOLVER.MAX_ITER", "4", "SEED", "5", "OUTPUT_DIR", str(out)]
    cmd += ["INPUT.PIPELINE", "nvidia", "INPUT.COLOR_AUG", "False", "INPUT.CROP.SIZE", "(48, 96)"]
    cmd += ["DATALOADER.CLASS_UNIFORM.ENABLED", "True", "DATALOADER.CLASS_UNIFORM.PCT", "1.0"]
    cmd += ["DATALOADER.CLASS_UNIFORM.TILE", "32", "DATALOADER.CLASS_UNIFORM.CACHE_DIR", str(cache)]
    if kill_step is None:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        return r.stdout + r.stderr
    return run_until_killed(cmd, {**env, "KILL_STEP": str(kill_step)})


@pytest.mark.slow
def test_killed_run_with_class_uniform_sampling_resumes_to_the_uninterrupted_weights(
    dataset_env, tmp_path, assert_same_final_weights
):
    cache = tmp_path / "centroids"
    straight = tmp_path / "straight"
    _train(dataset_env, straight, cache, tmp=tmp_path)
    assert [n for n in os.listdir(cache) if n.endswith(".npz")], "no centroid cache written"
    run = tmp_path / "killed"
    _train(dataset_env, run, cache, kill_step=2, tmp=tmp_path)
    assert (run / "last_checkpoint").read_text() == "model_0000001.pth"
    state = torch.load(run / "model_0000001.pth", map_location="cpu", weights_only=True)
    data = state["trainer"]["data"]  # 2 batches of 2
    assert data["position"] == 4 and "class_uniform" in data["order"]
    _train(dataset_env, run, cache, resume=True, tmp=tmp_path)
    assert_same_final_weights(straight, run)
