"""Crash safety of training (issue #12): a run SIGKILLed mid-step, mid-checkpoint-write and in
the final evaluation, each time restarted with ``--resume``, reaches the weights of an
uninterrupted run; checkpoints hold the optimizer, generators and data position and load with
``weights_only=True``; a bad newest checkpoint is skipped; ``--eval-only`` needs weights; a
non-finite loss writes no results."""

import json
import os
import subprocess
import sys

import pytest
import torch

from sigkill_run import run_until_killed

pytest.importorskip("detectron2")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_NET = os.path.join(REPO, "projects/SeeThroughNet/train_net.py")
TINY_CONFIG = os.path.join(
    REPO, "tests/configs/seethroughnet_tiny.yaml"
)  # the tests' tiny SeeThroughNet
TINY = ["SOLVER.MAX_ITER", "6", "SEED", "5"]  # 3 checkpoints (period 2), a fixed seed

# train_net.py run as a script, with a hook that, at a chosen moment, prints a marker and waits
# for the test to SIGKILL it: "step N" after iteration N's batch and forward pass, "save N" after
# half of the checkpoint of iteration N has reached the disk, "eval N" in the N-th evaluation.
_WRAPPER = r"""
import io, os, runpy, sys, time
point = os.environ.get("KILL_POINT", "")
if point:
    what, n = point.split()
    n = int(n)

    def wait():
        print("READY-TO-KILL", flush=True)
        time.sleep(600)

    if what == "step":
        from seethroughnet.engine import Trainer
        original_step = Trainer.run_step

        def run_step(self):
            if self.iter == n:
                data = next(self.step_loop._data_loader_iter)
                self.step_loop.model(data)
                wait()
            original_step(self)

        Trainer.run_step = run_step
    elif what == "eval":
        from seethroughnet.engine import Trainer
        original_test = Trainer.test.__func__
        calls = []

        def test(cls, *a, **k):
            calls.append(1)
            if len(calls) == n:
                wait()
            return original_test(cls, *a, **k)

        Trainer.test = classmethod(test)
    else:
        import torch
        original_save = torch.save

        def save(obj, f, *a, **k):
            if isinstance(obj, dict) and obj.get("iteration") == n:
                buf = io.BytesIO()
                original_save(obj, buf, *a, **k)
                data = buf.getvalue()[: len(buf.getvalue()) // 2]
                if hasattr(f, "write"):
                    f.write(data)
                    f.flush()
                else:
                    with open(f, "wb") as out:
                        out.write(data)
                wait()
            return original_save(obj, f, *a, **k)

        torch.save = save
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def dataset_env(make_synthetic_cityscapes):
    root = make_synthetic_cityscapes(register=False)  # the runs are subprocesses: registered there
    return {
        **os.environ,
        "DETECTRON2_DATASETS": str(root),
        "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": "1",
    }


def _train(env, out, *opts, flags=(), kill_point=None, tmp):
    wrapper = tmp / "wrapper.py"
    wrapper.write_text(_WRAPPER)
    cmd = [
        sys.executable,
        str(wrapper),
        TRAIN_NET,
        "--config-file",
        TINY_CONFIG,
        *flags,
        *TINY,
        "OUTPUT_DIR",
        str(out),
        *opts,
    ]
    if kill_point is None:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        return r
    return run_until_killed(cmd, {**env, "KILL_POINT": kill_point})


@pytest.mark.slow
def test_killed_mid_step_and_mid_checkpoint_write_resumes_to_the_uninterrupted_weights(
    dataset_env, tmp_path, assert_same_final_weights
):
    evals = (
        "TEST.EVAL_PERIOD",
        "2",
    )  # evaluations right after the checkpoints must not shift the generators
    straight = tmp_path / "straight"
    _train(dataset_env, straight, *evals, tmp=tmp_path)

    run = tmp_path / "killed"
    # 1. killed during iteration 2 (checkpoint of iteration 1 on disk)
    _train(dataset_env, run, *evals, kill_point="step 2", tmp=tmp_path)
    assert (run / "last_checkpoint").read_text() == "model_0000001.pth"
    # 2. resumed, then killed half-way through writing the checkpoint of iteration 3
    _train(dataset_env, run, *evals, flags=["--resume"], kill_point="save 3", tmp=tmp_path)
    assert (run / "last_checkpoint").read_text() == "model_0000001.pth"
    assert not (
        run / "model_0000003.pth"
    ).exists(), "a half-written checkpoint under its final name"
    assert [
        n for n in os.listdir(run) if ".part" in n
    ], "the interrupted write should have left its temporary file"
    # 3. resumed, then killed in the evaluation after the last step (the first is after iteration 3)
    _train(dataset_env, run, *evals, flags=["--resume"], kill_point="eval 2", tmp=tmp_path)
    assert (run / "last_checkpoint").read_text() == "model_final.pth"
    assert not [n for n in os.listdir(run) if ".part" in n]
    # 4. resumed: nothing left to train, the evaluation runs
    _train(dataset_env, run, *evals, flags=["--resume"], tmp=tmp_path)
    rows = [json.loads(line) for line in open(run / "metrics.json")]
    assert any("sem_seg/mIoU" in r for r in rows)

    assert_same_final_weights(straight, run)


def test_checkpoint_holds_optimizer_rng_and_data_position_and_loads_weights_only(
    dataset_env, tmp_path
):
    """Without SGD momentum, generators and data position in the checkpoint, no resume is exact."""
    out = tmp_path / "run"
    _train(dataset_env, out, "SOLVER.MAX_ITER", "2", tmp=tmp_path)
    ckpt = torch.load(out / "model_0000001.pth", map_location="cpu", weights_only=True)
    trainer = ckpt["trainer"]
    assert trainer["iteration"] == 1
    momentum = [s["momentum_buffer"] for s in trainer["_trainer"]["optimizer"]["state"].values()]
    assert momentum and all(m is not None for m in momentum)
    assert {"python", "numpy", "torch"} <= set(trainer["rng"])
    assert (
        isinstance(trainer["data"]["seed"], int) and trainer["data"]["position"] == 4
    )  # 2 batches of 2
    assert trainer["hooks"]["LRScheduler"]["last_epoch"] == 2


def test_resume_skips_a_truncated_newest_checkpoint_with_a_warning(dataset_env, tmp_path):
    out = tmp_path / "run"
    _train(dataset_env, out, "SOLVER.MAX_ITER", "4", tmp=tmp_path)
    final = out / "model_final.pth"
    final.write_bytes(final.read_bytes()[:1000])  # as a kill during an in-place write leaves it
    r = _train(dataset_env, out, "SOLVER.MAX_ITER", "5", flags=["--resume"], tmp=tmp_path)
    log = r.stdout + r.stderr
    assert "cannot resume from" in log and "model_final.pth" in log and "truncated" in log
    assert "resumed from" in log and "model_0000003.pth" in log
    assert torch.load(final, weights_only=True)["iteration"] == 4


def test_resume_with_last_checkpoint_naming_a_missing_file_uses_the_previous_one(
    dataset_env, tmp_path
):
    from seethroughnet.checkpoint import StrictCheckpointer

    out = tmp_path / "run"
    out.mkdir()
    model = torch.nn.Linear(2, 2)
    ck = StrictCheckpointer(model, str(out))
    ck.save("model_0000001")
    (out / "last_checkpoint").write_text("model_0000003.pth")  # missing
    (out / "model_0000002.pth").write_bytes(b"")  # empty
    with torch.no_grad():
        model.weight.zero_()
    ck.resume_or_load("", resume=True)
    assert model.weight.abs().sum() > 0  # loaded model_0000001
    os.remove(out / "model_0000001.pth")
    from seethroughnet.checkpoint import UnreadableCheckpointError

    with pytest.raises(UnreadableCheckpointError, match="no readable checkpoint"):
        ck.resume_or_load("", resume=True)


@pytest.mark.parametrize(
    "junk",
    [b"\xff\xfe\x80 not utf-8 \x00\x9c", bytes(range(256)), b"model_0000001.pth\xff"],
    ids=["binary", "all-bytes", "name-then-junk"],
)
def test_resume_with_undecodable_last_checkpoint_warns_and_uses_the_checkpoints(
    tmp_path, caplog, junk
):
    """``last_checkpoint`` holding bytes that are not text (issue #25): a warning naming the file,
    then the newest readable checkpoint, as for a missing, empty or truncated one."""
    import logging

    from seethroughnet.checkpoint import StrictCheckpointer, UnreadableCheckpointError

    out = tmp_path / "run"
    model = torch.nn.Linear(2, 2)
    ck = StrictCheckpointer(model, str(out))
    ck.save("model_0000001")
    (out / "last_checkpoint").write_bytes(junk)
    with torch.no_grad():
        model.weight.zero_()
    with caplog.at_level(logging.WARNING):
        ck.resume_or_load("", resume=True)
    assert model.weight.abs().sum() > 0  # loaded model_0000001
    assert str(out / "last_checkpoint") in caplog.text
    os.remove(out / "model_0000001.pth")
    with pytest.raises(UnreadableCheckpointError, match="no readable checkpoint") as e:
        ck.resume_or_load("", resume=True)
    assert str(out) in str(e.value)


def test_stale_part_files_of_a_killed_first_checkpoint_are_removed_at_the_next_start(
    tmp_path, caplog
):
    """A kill during the first checkpoint write leaves only a temporary file (no checkpoint, no
    last_checkpoint); the next training start (with or without --resume) removes it, saying so
    (issue #25). An --eval-only start without --resume leaves the folder alone: it may be a
    running training's OUTPUT_DIR."""
    import logging

    from seethroughnet.checkpoint import StrictCheckpointer

    class _TrainerState:  # what the trainer's checkpointer saves beside the model
        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    out = tmp_path / "run"
    out.mkdir()
    model = torch.nn.Linear(2, 2)
    for resume in (True, False):
        stale = out / ".model_0000001.pth.x7k2a9.part.pth"
        stale.write_bytes(b"half a checkpoint")
        eval_only = StrictCheckpointer(model, str(out))
        if not resume:
            eval_only.resume_or_load("", resume=False)
            assert stale.exists()
        ck = StrictCheckpointer(model, str(out), trainer=_TrainerState())
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            ck.resume_or_load("", resume=resume)
        assert not stale.exists(), f"resume={resume}"
        assert str(stale) in caplog.text and "removing" in caplog.text


def test_truncated_weights_file_is_named(tmp_path):
    from seethroughnet.checkpoint import StrictCheckpointer, UnreadableCheckpointError

    model = torch.nn.Linear(2, 2)
    path = tmp_path / "weights.pth"
    torch.save({"model": model.state_dict()}, path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(UnreadableCheckpointError, match=r"weights\.pth is truncated"):
        StrictCheckpointer(model).load(str(path))


def test_eval_only_without_weights_is_an_error_unless_random_weights_are_asked_for(
    dataset_env, tmp_path
):
    cmd = [
        sys.executable,
        TRAIN_NET,
        "--config-file",
        TINY_CONFIG,
        "--eval-only",
        *TINY,
        "OUTPUT_DIR",
        str(tmp_path / "e"),
    ]
    for allow_random_init in ("False", "True"):  # training's opt-out does not cover evaluation
        r = subprocess.run(
            cmd + ["MODEL.ALLOW_RANDOM_INIT", allow_random_init],
            env=dataset_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode != 0
        assert "MODEL.WEIGHTS" in r.stderr and "--eval-random-weights" in r.stderr
    r = subprocess.run(
        cmd[:2] + ["--eval-random-weights"] + cmd[2:],
        env=dataset_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]


def test_eval_only_needs_weights_even_where_training_may_start_from_random_init(tmp_path):
    """MODEL.ALLOW_RANDOM_INIT (the demo config sets it) lets *training* start from random weights;
    it must not let --eval-only evaluate a random model and exit 0 (issue #25). Weights, a
    checkpoint --resume finds, or the evaluation's own opt-in are needed."""
    from seethroughnet.config import build_config
    from seethroughnet.engine import RandomInitError, check_eval_weights

    out = tmp_path / "e"
    out.mkdir()
    cfg = build_config(TINY_CONFIG, ["MODEL.ALLOW_RANDOM_INIT", "True", "OUTPUT_DIR", str(out)])
    for resume in (False, True):  # --resume finds nothing in an empty OUTPUT_DIR
        with pytest.raises(RandomInitError, match=r"--eval-random-weights") as e:
            check_eval_weights(cfg, resume=resume)
        assert "MODEL.WEIGHTS" in str(e.value) and "ALLOW_RANDOM_INIT" in str(e.value)
    check_eval_weights(cfg, allow_random=True)  # the evaluation's opt-in
    torch.save({"model": {}}, out / "model_0000009.pth")  # a checkpoint --resume would find
    check_eval_weights(cfg, resume=True)
    with pytest.raises(RandomInitError):
        check_eval_weights(cfg, resume=False)
    cfg.MODEL.WEIGHTS = str(out / "model_0000009.pth")
    check_eval_weights(cfg)


def test_non_finite_loss_at_the_last_iteration_writes_no_results(
    dataset_env, tmp_path, monkeypatch
):
    """The end-of-training evaluation must not run on the broken model; the error names the
    term, the iteration and the batch's image files."""
    from detectron2.data import DatasetCatalog

    from seethroughnet.config import build_config
    from seethroughnet.data.datasets import register_all
    from seethroughnet.engine import Trainer
    from seethroughnet.nn.seethroughnet import SeeThroughNet

    monkeypatch.setenv("DETECTRON2_DATASETS", dataset_env["DETECTRON2_DATASETS"])
    register_all()
    original = SeeThroughNet.losses
    calls = []

    def poisoned(self, outputs, labels):
        losses = original(self, outputs, labels)
        calls.append(1)
        if len(calls) == 2:  # the last of MAX_ITER 2
            losses["loss_rmi"] = losses["loss_rmi"] * float("inf")
        return losses

    monkeypatch.setattr(SeeThroughNet, "losses", poisoned)
    out = tmp_path / "nan"
    cfg = build_config(
        TINY_CONFIG,
        TINY + ["OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", "2", "SOLVER.CHECKPOINT_PERIOD", "100"],
    )
    cfg.freeze()
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    with pytest.raises(FloatingPointError) as e:
        trainer.train()
    msg = str(e.value)
    assert "iteration 1" in msg and "loss_rmi" in msg
    train_files = {d["file_name"] for d in DatasetCatalog.get(cfg.DATASETS.TRAIN[0])}
    assert any(f in msg for f in train_files), msg
    assert trainer.last_eval_results is None
    rows = (
        [json.loads(line) for line in open(out / "metrics.json")]
        if (out / "metrics.json").exists()
        else []
    )
    assert not any("sem_seg/mIoU" in r for r in rows)
    assert not (out / "model_final.pth").exists()


def _noisy_mapper(d):
    import random

    import numpy as np

    return {**d, "draw": (random.random(), float(np.random.rand()), float(torch.rand(())))}


def _batches(loader, n):
    it = iter(loader)
    return [[(d["file_name"], d["draw"]) for d in next(it)] for _ in range(n)]


def test_data_stream_continues_exactly_after_a_restart_with_and_without_workers():
    """A loader restored from a state (and, without workers, the global generators the trainer
    restores with it) continues the stream exactly: same images, same augmentation draws. With
    workers the draws are seeded per sample: the same for any number of workers, and the
    caller's generators are untouched."""
    from seethroughnet.resumable import ResumableTrainLoader, get_rng_state, set_rng_state

    dicts = [{"file_name": f"img{i}.png"} for i in range(5)]
    # no workers: augmentations draw from the global generators (as detectron2's loader does)
    torch.manual_seed(0)
    first = ResumableTrainLoader(dicts, _noisy_mapper, 2, seed=9)
    it = iter(first)
    ref = [[(d["file_name"], d["draw"]) for d in next(it)] for _ in range(2)]
    state, rng = first.state_dict(), get_rng_state()
    ref += [[(d["file_name"], d["draw"]) for d in next(it)] for _ in range(4)]
    first_epoch = [f for b in ref[:2] for f, _ in b] + [
        ref[2][0][0]
    ]  # a permutation of the 5 images
    assert sorted(first_epoch) == sorted(d["file_name"] for d in dicts)
    torch.manual_seed(
        1
    )  # a new process: other generator states until the checkpoint's are restored
    resumed = ResumableTrainLoader(dicts, _noisy_mapper, 2, seed=0)
    resumed.load_state_dict(state)
    set_rng_state(rng)
    assert _batches(resumed, 4) == ref[2:]

    # workers: per-sample seeds
    torch.manual_seed(123)
    two = _batches(ResumableTrainLoader(dicts, _noisy_mapper, 2, seed=9, num_workers=2), 6)
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after), "the workers' loader moved the global generator"
    assert [[f for f, _ in b] for b in two] == [[f for f, _ in b] for b in ref]  # same order
    assert _batches(ResumableTrainLoader(dicts, _noisy_mapper, 2, seed=9, num_workers=3), 6) == two
    started = ResumableTrainLoader(dicts, _noisy_mapper, 2, seed=9, num_workers=2)
    _batches(started, 2)
    again = ResumableTrainLoader(dicts, _noisy_mapper, 2, seed=0, num_workers=2)
    again.load_state_dict(started.state_dict())
    assert _batches(again, 4) == two[2:]
    assert _batches(ResumableTrainLoader(dicts, _noisy_mapper, 2, seed=10, num_workers=2), 6) != two
