"""The Table 1 recipe keys of issue 22 (route A; the comparisons with MMSegmentation itself are in
tests/mmseg/test_mmseg_loss_and_schedule.py):

* ``SOLVER.LR_SCHEDULER_NAME "MMEnginePolyLR"`` with ``SOLVER.POLY_LR_MIN``: MMEngine's
  recursive PolyLR update (param_scheduler.py ``PolyParamScheduler._get_value``) written out here
  step by step equals the scheduler's closed form; ``POLY_LR_MIN`` with detectron2's
  ``WarmupPolyLR`` is refused;
* ``MODEL.DECODE_HEAD.LOSS_AVERAGE`` / ``MODEL.CPP_AUX.CE_LOSS_AVERAGE``: ``all_pixels`` divides
  by every label pixel, the default keeps the mean over non-ignored pixels; bad values name the key;
* every Table 1 config sets MMSegmentation's values (weight decay on norms = WEIGHT_DECAY, poly
  floor 1e-4, all-pixel CE) while the defaults (SeeThroughNet) keep theirs;
* Pascal Context: the 60-class files are the default, the 59-class files switch to 59 classes and
  the 59-class datasets and differ in nothing else; one tiny training step on 60 classes.
"""

import glob
import os

import pytest
import torch

pytest.importorskip("detectron2")
from detectron2.modeling import build_model  # noqa: E402

import seethroughnet.modeling.segmentors  # noqa: E402,F401  (registers CPPSegmentor)
from seethroughnet.config import build_config  # noqa: E402
from seethroughnet.lr_schedule import MMEnginePolyLR, build_lr_scheduler  # noqa: E402
from seethroughnet.nn.aux_losses import AuxiliaryLoss, resized_cross_entropy  # noqa: E402
from seethroughnet.utils.safe_load import merge_config_file  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CPP = os.path.join(REPO, "projects/SeeThroughNet/configs/CPP-Plugin")
TINY = os.path.join(REPO, "tests/configs/cpp_plugin_tiny_overrides.yaml")
MODELS = ["ann", "ccnet", "deeplabv3plus", "dmnet", "ocrnet", "pspnet", "upernet"]
TABLE1_FILES = sorted(
    glob.glob(os.path.join(CPP, "*_cityscapes.yaml"))
    + glob.glob(os.path.join(CPP, "VOC", "*.yaml"))
    + glob.glob(os.path.join(CPP, "Context", "*.yaml"))
    + glob.glob(os.path.join(CPP, "NYUv2", "*.yaml"))
)


def _flat(node, prefix=""):
    out = {}
    for k, v in node.items():
        if isinstance(v, dict):
            out.update(_flat(v, prefix + k + "."))
        else:
            out[prefix + k] = tuple(v) if isinstance(v, (list, tuple)) else v
    return out


# ------------------------------------------------------------------------------------ schedule
def mmengine_recursion(base_lr, eta_min, power, max_iters):
    """MMEngine's PolyLR as it updates (lr_t from lr_{t-1}, T = end - begin - 1), step by step."""
    total = max_iters - 1
    lrs, lr = [base_lr], base_lr
    for t in range(1, max_iters):
        lr = (lr - eta_min) * (1 - 1 / (total - t + 1)) ** power + eta_min
        lrs.append(lr)
    return lrs


@pytest.mark.parametrize("max_iters, base_lr", [(40, 0.004), (5, 0.01), (2, 0.02)])
def test_mmengine_poly_lr_closed_form_equals_the_recursion(max_iters, base_lr):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    sched = MMEnginePolyLR(opt, max_iters, eta_min=1e-4, power=0.9)
    got = []
    for _ in range(max_iters):
        got.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    want = mmengine_recursion(base_lr, 1e-4, 0.9, max_iters)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert got[-1] == pytest.approx(1e-4)  # the floor, at the last iteration
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)  # and after it


def test_mmengine_poly_lr_state_is_checkpointed_and_resumes():
    """detectron2's LRScheduler hook saves the scheduler's state (only for ``_LRScheduler``s): a
    resumed run continues the schedule where it stopped."""
    from detectron2.engine.hooks import LRScheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    sched = MMEnginePolyLR(opt, 20, eta_min=1e-4, power=0.9)
    for _ in range(7):
        opt.step()
        sched.step()
    state = LRScheduler(opt, sched).state_dict()
    assert state["last_epoch"] == 7
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    resumed = MMEnginePolyLR(opt2, 20, eta_min=1e-4, power=0.9)
    LRScheduler(opt2, resumed).load_state_dict(state)
    for s, o in ((sched, opt), (resumed, opt2)):
        o.step()
        s.step()
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert opt.param_groups[0]["lr"] == pytest.approx(mmengine_recursion(0.01, 1e-4, 0.9, 20)[8])


def test_scheduler_names_and_the_floor_key():
    from detectron2.projects.deeplab.lr_scheduler import WarmupPolyLR

    cfg = build_config()
    assert cfg.SOLVER.POLY_LR_MIN == 0.0
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupPolyLR"  # the SeeThroughNet configs' schedule
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    assert type(build_lr_scheduler(cfg, opt)) is WarmupPolyLR  # detectron2's, unchanged
    cfg.SOLVER.POLY_LR_MIN = 1e-4
    with pytest.raises(ValueError, match="SOLVER.POLY_LR_MIN .* 'MMEnginePolyLR'"):
        build_lr_scheduler(cfg, opt)
    cfg.SOLVER.LR_SCHEDULER_NAME = "MMEnginePolyLR"
    cfg.SOLVER.MAX_ITER = 10
    assert isinstance(build_lr_scheduler(cfg, opt), MMEnginePolyLR)


# ---------------------------------------------------------------------------------- CE average
def test_all_pixels_average_divides_by_every_label_pixel():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 4, 6, generator=g)
    labels = torch.randint(0, 5, (2, 8, 12), generator=g)
    labels[:, :3] = 255
    up = torch.nn.functional.interpolate(logits, (8, 12), mode="bilinear", align_corners=False)
    per_pixel = torch.nn.functional.cross_entropy(up, labels, ignore_index=255, reduction="none")
    n_valid = int((labels != 255).sum())
    all_pixels = resized_cross_entropy(logits, labels, 255, average="all_pixels")
    assert float(all_pixels) == pytest.approx(float(per_pixel.sum()) / labels.numel(), rel=1e-6)
    assert float(resized_cross_entropy(logits, labels, 255)) == pytest.approx(
        float(per_pixel.sum()) / n_valid, rel=1e-6
    )
    aux = AuxiliaryLoss("upsample_ce", 5, 255, ce_average="all_pixels")
    assert float(aux(logits, labels)) == pytest.approx(float(all_pixels), rel=1e-6)
    none_valid = torch.full_like(labels, 255)
    assert float(resized_cross_entropy(logits, none_valid, average="all_pixels")) == 0.0
    with pytest.raises(ValueError, match="all_pixels"):
        AuxiliaryLoss("upsample_ce", 5, ce_average="mean")


@pytest.mark.parametrize("key", ["MODEL.DECODE_HEAD.LOSS_AVERAGE", "MODEL.CPP_AUX.CE_LOSS_AVERAGE"])
def test_bad_average_names_the_key(key):
    cfg = build_config(os.path.join(CPP, "Context", "pspnet_R101_context60.yaml"), [key, "mean"])
    merge_config_file(cfg, TINY)
    with pytest.raises(ValueError, match=f"{key}: unknown average 'mean'"):
        build_model(cfg)


# ----------------------------------------------------------------------------- config values
def test_defaults_keep_the_seethroughnet_recipe():
    cfg = build_config()
    assert cfg.MODEL.DECODE_HEAD.LOSS_AVERAGE == "non_ignored"
    assert cfg.MODEL.CPP_AUX.CE_LOSS_AVERAGE == "non_ignored"
    assert cfg.SOLVER.WEIGHT_DECAY_NORM == 0.0


@pytest.mark.parametrize("path", TABLE1_FILES, ids=lambda p: os.path.relpath(p, CPP))
def test_table1_configs_set_mmsegmentation_loss_optimizer_and_schedule(path):
    s = build_config(path).SOLVER
    m = build_config(path).MODEL
    assert m.DECODE_HEAD.LOSS_AVERAGE == "all_pixels" and m.CPP_AUX.CE_LOSS_AVERAGE == "all_pixels"
    assert s.WEIGHT_DECAY_NORM == s.WEIGHT_DECAY > 0  # every parameter decayed
    assert s.WEIGHT_DECAY_BIAS is None and s.BIAS_LR_FACTOR == 1.0  # biases: = WEIGHT_DECAY
    assert (s.LR_SCHEDULER_NAME, s.POLY_LR_MIN, s.POLY_LR_POWER) == ("MMEnginePolyLR", 1e-4, 0.9)
    assert s.WARMUP_ITERS == 0 and list(m.CPP_AUX.WEIGHTS) == [0.4]


# ------------------------------------------------------------------------- Context 60 / 59
@pytest.mark.parametrize("model", MODELS)
def test_context60_is_the_default_and_context59_one_switch_away(model):
    stem = "ocrnet_HRW48" if model == "ocrnet" else f"{model}_R101"
    c60 = build_config(os.path.join(CPP, "Context", f"{stem}_context60.yaml"))
    c59 = build_config(os.path.join(CPP, "Context", f"{stem}_context59.yaml"))
    assert c60.MODEL.SEM_SEG_HEAD.NUM_CLASSES == 60
    assert c60.DATASETS.TRAIN == ("pascal_context60_sem_seg_train",)
    assert c60.DATASETS.TEST == ("pascal_context60_sem_seg_val",)
    assert c59.MODEL.SEM_SEG_HEAD.NUM_CLASSES == 59
    assert c59.DATASETS.TRAIN == ("pascal_context59_sem_seg_train",)
    assert c59.DATASETS.TEST == ("pascal_context59_sem_seg_val",)
    a, b = _flat(c60), _flat(c59)
    differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    assert differ == [
        "DATASETS.TEST",
        "DATASETS.TRAIN",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES",
        "OUTPUT_DIR",
    ]
    assert c60.OUTPUT_DIR.endswith("_context60") and c59.OUTPUT_DIR.endswith("_context59")


def test_base_context59_switches_the_base():
    base = build_config(os.path.join(CPP, "Context", "Base-Context.yaml"))
    switch = build_config(os.path.join(CPP, "Context", "Base-Context59.yaml"))
    assert base.MODEL.SEM_SEG_HEAD.NUM_CLASSES == 60
    assert switch.MODEL.SEM_SEG_HEAD.NUM_CLASSES == 59
    assert switch.DATASETS.TRAIN == ("pascal_context59_sem_seg_train",)


def test_one_tiny_training_step_on_context60():
    cfg = build_config(os.path.join(CPP, "Context", "deeplabv3plus_R101_context60.yaml"))
    merge_config_file(cfg, TINY)
    torch.manual_seed(0)
    net = build_model(cfg).train()
    g = torch.Generator().manual_seed(1)
    batch = []
    for _ in range(2):
        sem = torch.randint(0, 60, (40, 40), generator=g)
        sem[0, 0], sem[-1, -1] = 0, 59  # background is a class; the last class too
        img = torch.randint(0, 256, (3, 40, 40), generator=g, dtype=torch.uint8)
        batch.append({"image": img, "sem_seg": sem, "height": 40, "width": 40})
    losses = net(batch)
    total = sum(losses.values())
    assert torch.isfinite(total) and {f"loss_aux_res{i}" for i in (2, 3, 4, 5)} <= set(losses)
    total.backward()
