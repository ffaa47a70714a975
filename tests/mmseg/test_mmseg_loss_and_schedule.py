"""The Table 1 loss, optimiser and LR schedule against MMSegmentation 1.2.2 / MMEngine 0.10.7 run
side by side (SeeThroughNet, CVPR 2022, Sec. 4.4: "We used the models from MMSegmentation"):

* the project's cross entropy (``average="all_pixels"``) equals MMSegmentation's
  ``CrossEntropyLoss`` (avg_non_ignore=False, its default) on logits and labels with ignored
  pixels and crop padding, directly and after the resize to the label size its decode heads'
  ``loss_by_feat`` does; the up-sampled auxiliary baseline equals its auxiliary FCN head's loss;
* a tiny Table 1 model built from the Context-60 configs (PSPNet, and OCRNet with its soft-region
  term) gives the decode / auxiliary losses MMSegmentation's heads compute on the same logits;
* the LR of ``MMEnginePolyLR`` at every iteration equals MMEngine's ``PolyLR`` (eta_min 1e-4,
  power 0.9, MMSegmentation's schedule_40k.py) driven through MMEngine on a torch optimizer;
* the optimizer built from a Table 1 config decays norm and bias parameters as MMSegmentation's
  default optim wrapper does (no paramwise_cfg: every parameter);
* the Context class lists and the 59-class reduction equal MMSegmentation's datasets.
"""

import os
import sys

import numpy as np
import pytest
import torch

from mmseg_reference import MMSEG_CONFIGS, import_mmseg, mmseg_config

pytest.importorskip("detectron2")
from detectron2.modeling import build_model  # noqa: E402

import seethroughnet.modeling.segmentors  # noqa: E402,F401  (registers CPPSegmentor)
from seethroughnet.config import build_config  # noqa: E402
from seethroughnet.lr_schedule import MMEnginePolyLR, build_lr_scheduler  # noqa: E402
from seethroughnet.nn.aux_losses import AuxiliaryLoss, resized_cross_entropy  # noqa: E402
from seethroughnet.utils.safe_load import merge_config_file  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTEXT = os.path.join(REPO, "projects/SeeThroughNet/configs/CPP-Plugin/Context")
TINY = os.path.join(REPO, "tests/configs/cpp_plugin_tiny_overrides.yaml")
#: MMSegmentation's Pascal Context (60 classes) config the Context base transfers its values from
MMSEG_CONTEXT = "pspnet/pspnet_r101-d8_4xb4-40k_pascal-context-480x480.py"
K = 60
IGNORE = 255


def mmseg_head(which: str, num_classes: int = K, config: str = MMSEG_CONFIGS["psp"]):
    """MMSegmentation's ``decode_head`` / ``auxiliary_head`` of ``config`` (loss settings from its
    config file), ``num_classes`` outputs; only its ``loss_by_feat`` is used."""
    from mmseg.registry import MODELS

    cfg = mmseg_config(config).model[which]
    heads = cfg if isinstance(cfg, list) else [cfg]
    built = []
    for head in heads:
        head = head.copy()
        head.num_classes = num_classes
        head.norm_cfg = dict(type="BN", requires_grad=True)
        built.append(MODELS.build(head))
    return built if isinstance(cfg, list) else built[0]


def data_samples(labels):
    """MMSegmentation's ``SegDataSample`` list holding ``labels`` (N, H, W) as ``gt_sem_seg``."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    out = []
    for lab in labels:
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=lab[None].long())
        out.append(s)
    return out


def labels_with_ignore_and_padding(n=2, h=48, w=64, pad_rows=8, pad_cols=16, seed=0):
    """Random labels 0..K-1 with an ignored patch and a 255 band at the bottom and right (the
    crop padding of a smaller image: MMSegmentation pads the label with seg_pad_val=255)."""
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, K, (n, h, w), generator=g)
    lab[:, 5:12, 7:20] = IGNORE
    lab[:, h - pad_rows :] = IGNORE
    lab[:, :, w - pad_cols :] = IGNORE
    lab[1, :, :] = torch.where(torch.rand(h, w, generator=g) < 0.3, IGNORE, lab[1])
    return lab


# ------------------------------------------------------------------------ cross entropy itself
def test_cross_entropy_equals_mmseg_cross_entropy_loss_with_ignore_and_padding():
    import_mmseg()
    from mmseg.models.losses import CrossEntropyLoss

    lab = labels_with_ignore_and_padding()
    logits = torch.randn(2, K, 48, 64, generator=torch.Generator().manual_seed(1))
    valid = float((lab != IGNORE).sum()) / lab.numel()
    assert 0.2 < valid < 0.8  # ignored pixels and padding matter here
    for weight in (1.0, 0.4):
        ref = CrossEntropyLoss(loss_weight=weight)(logits, lab, ignore_index=IGNORE)
        ours = weight * resized_cross_entropy(logits, lab, IGNORE, average="all_pixels")
        assert abs(float(ours) - float(ref)) < 1e-6
    # the PyTorch mean (the project's default) is MMSegmentation's avg_non_ignore=True: larger by
    # 1 / (valid fraction), so the comparison above can fail
    ref_non_ignored = CrossEntropyLoss(avg_non_ignore=True)(logits, lab, ignore_index=IGNORE)
    ours_non_ignored = resized_cross_entropy(logits, lab, IGNORE)
    assert abs(float(ours_non_ignored) - float(ref_non_ignored)) < 1e-6
    all_pixels = float(resized_cross_entropy(logits, lab, IGNORE, average="all_pixels"))
    assert float(ours_non_ignored) == pytest.approx(all_pixels / valid, rel=1e-5)


def test_resized_cross_entropy_equals_mmseg_decode_head_loss_by_feat():
    """Logits at 1/8 of the label size: MMSegmentation's decode head resizes them bilinearly
    (align_corners False) to the label size, then its CrossEntropyLoss (loss_weight 1.0, ignore
    255, avg_non_ignore False); the project's resized_cross_entropy does the same."""
    import_mmseg()
    head = mmseg_head("decode_head")
    assert head.ignore_index == IGNORE and head.align_corners is False
    assert head.loss_decode.loss_weight == 1.0 and head.loss_decode.avg_non_ignore is False
    lab = labels_with_ignore_and_padding()
    logits = torch.randn(2, K, 6, 8, generator=torch.Generator().manual_seed(2))
    ref = head.loss_by_feat(logits, data_samples(lab))["loss_ce"]
    ours = resized_cross_entropy(logits, lab, IGNORE, average="all_pixels")
    assert abs(float(ours) - float(ref)) < 1e-6


def test_upsample_ce_baseline_equals_mmseg_auxiliary_fcn_head_loss():
    import_mmseg()
    head = mmseg_head("auxiliary_head")
    assert head.loss_decode.loss_weight == 0.4  # MMSegmentation's auxiliary weight (the key's)
    lab = labels_with_ignore_and_padding()
    logits = torch.randn(2, K, 3, 4, generator=torch.Generator().manual_seed(3))  # stride 16
    ref = head.loss_by_feat(logits, data_samples(lab))["loss_ce"]
    loss = AuxiliaryLoss("upsample_ce", K, IGNORE, ce_average="all_pixels")
    assert abs(0.4 * float(loss(logits, lab)) - float(ref)) < 1e-6


# ------------------------------------------------------------- the losses of a Table 1 model
def tiny_context60(model_file, *opts):
    cfg = build_config(os.path.join(CONTEXT, model_file))
    merge_config_file(cfg, TINY)
    cfg.merge_from_list(list(opts))
    return cfg


def captured_training_losses(cfg):
    """The training losses of the tiny model of ``cfg`` on two 40x56 images (labels with an
    ignored patch; the batch is padded with label 255 to 64x64, and to the crop size under
    INPUT.PAD.MODE normalized), with the decode head's output and
    the res4 auxiliary head's logits captured by forward hooks, and the padded labels."""
    torch.manual_seed(0)
    net = build_model(cfg).train()
    seen = {}
    net.decode_head.register_forward_hook(lambda m, i, o: seen.__setitem__("decode", o))
    net.aux_heads.heads["res4"].register_forward_hook(lambda m, i, o: seen.__setitem__("aux", o))
    g = torch.Generator().manual_seed(4)
    batch = []
    for _ in range(2):
        sem = torch.randint(0, K, (40, 56), generator=g)
        sem[3:9, 10:30] = IGNORE
        img = torch.randint(0, 256, (3, 40, 56), generator=g, dtype=torch.uint8)
        batch.append({"image": img, "sem_seg": sem, "height": 40, "width": 56})
    losses = net(batch)
    # the batch is padded to a multiple of 32; with INPUT.PAD.MODE "normalized" (the Table 1
    # configs) further to the crop size, as MMSegmentation's SegDataPreProcessor(size=crop_size)
    h, w = 64, 64
    if cfg.INPUT.PAD.MODE == "normalized":
        h, w = max(h, cfg.INPUT.CROP.SIZE[0]), max(w, cfg.INPUT.CROP.SIZE[1])
    labels = torch.full((2, h, w), IGNORE, dtype=torch.long)
    for i, x in enumerate(batch):
        labels[i, :40, :56] = x["sem_seg"]
    return losses, seen, labels


def test_table1_context60_pspnet_losses_equal_mmseg_heads_on_the_same_logits():
    import_mmseg()
    cfg = tiny_context60("pspnet_R101_context60.yaml", "MODEL.CPP_AUX.LOSS", "upsample_ce")
    assert cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES == K
    assert cfg.MODEL.DECODE_HEAD.LOSS_AVERAGE == "all_pixels"
    assert cfg.MODEL.CPP_AUX.CE_LOSS_AVERAGE == "all_pixels"
    losses, seen, labels = captured_training_losses(cfg)
    decode = mmseg_head("decode_head").loss_by_feat(seen["decode"], data_samples(labels))
    assert abs(float(losses["loss_sem_seg"]) - float(decode["loss_ce"])) < 1e-6
    aux = mmseg_head("auxiliary_head").loss_by_feat(seen["aux"], data_samples(labels))
    assert float(cfg.MODEL.CPP_AUX.WEIGHTS[0]) == 0.4
    assert abs(float(losses["loss_aux_res4"]) - float(aux["loss_ce"])) < 1e-6


def test_table1_context60_ocrnet_soft_region_term_equals_mmseg_cascade_heads():
    """OCRNet: MMSegmentation's cascade of an FCNHead (soft regions, loss_weight 0.4) and the
    OCRHead (loss_weight 1.0), both CrossEntropyLoss avg_non_ignore=False."""
    import_mmseg()
    cfg = tiny_context60("ocrnet_HRW48_context60.yaml")
    losses, seen, labels = captured_training_losses(cfg)
    out = seen["decode"]
    ((name, (soft_logits, weight)),) = out["extra"].items()
    soft_head, ocr_head = mmseg_head("decode_head", config=MMSEG_CONFIGS["ocr"])
    assert weight == soft_head.loss_decode.loss_weight == 0.4
    ref_soft = soft_head.loss_by_feat(soft_logits, data_samples(labels))["loss_ce"]
    ref_ocr = ocr_head.loss_by_feat(out["logits"], data_samples(labels))["loss_ce"]
    assert abs(float(losses[name]) - float(ref_soft)) < 1e-6
    assert abs(float(losses["loss_sem_seg"]) - float(ref_ocr)) < 1e-6


# -------------------------------------------------------------------------------- LR schedule
@pytest.mark.parametrize("max_iters", [50, 7])
def test_lr_equals_mmengine_polylr_at_every_iteration(max_iters):
    import_mmseg()
    from mmengine.registry import PARAM_SCHEDULERS

    schedule = dict(mmseg_config("_base_/schedules/schedule_40k.py").param_scheduler[0])
    assert (schedule["type"], schedule["eta_min"], schedule["power"]) == ("PolyLR", 1e-4, 0.9)
    cfg = build_config(os.path.join(CONTEXT, "Base-Context.yaml"))
    optimizer_cfg = mmseg_config(MMSEG_CONTEXT).optim_wrapper.optimizer
    assert cfg.SOLVER.LR_SCHEDULER_NAME == "MMEnginePolyLR"
    assert cfg.SOLVER.POLY_LR_MIN == schedule["eta_min"]
    assert cfg.SOLVER.POLY_LR_POWER == schedule["power"]
    assert cfg.SOLVER.BASE_LR == optimizer_cfg["lr"] and cfg.SOLVER.MAX_ITER == schedule["end"]
    cfg.SOLVER.MAX_ITER = max_iters  # the same horizon on both sides

    def lrs(optimizer, scheduler):
        out = []
        for _ in range(max_iters):
            out.append(optimizer.param_groups[0]["lr"])  # the LR this iteration trains with
            optimizer.step()
            scheduler.step()
        return out

    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.SOLVER.BASE_LR)
    schedule.update(end=max_iters, optimizer=ref_opt)
    ref = lrs(ref_opt, PARAM_SCHEDULERS.build(schedule))
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.SOLVER.BASE_LR)
    sched = build_lr_scheduler(cfg, opt)
    assert isinstance(sched, MMEnginePolyLR)
    ours = lrs(opt, sched)
    assert np.allclose(ours, ref, rtol=1e-9, atol=1e-12)
    assert ours[0] == cfg.SOLVER.BASE_LR and ours[-1] == pytest.approx(1e-4)


# ---------------------------------------------------------------------------------- optimizer
def test_optimizer_decays_norm_and_bias_like_mmseg_default_optim_wrapper():
    """MMSegmentation's optim_wrapper (pspnet_r101-d8_4xb4-40k_pascal-context-480x480.py: SGD
    lr 0.004, momentum 0.9, weight_decay 1e-4, no paramwise_cfg) on the project's model, against
    the optimizer the project's trainer builds from the Table 1 Context config."""
    import_mmseg()
    from mmengine.optim import build_optim_wrapper

    from seethroughnet.engine import Trainer

    cfg = tiny_context60("pspnet_R101_context60.yaml")
    torch.manual_seed(0)
    model = build_model(cfg)
    ours = Trainer.build_optimizer(cfg, model)
    wrapper_cfg = mmseg_config(MMSEG_CONTEXT).optim_wrapper
    assert "paramwise_cfg" not in wrapper_cfg
    ref = build_optim_wrapper(model, wrapper_cfg).optimizer
    assert type(ours) is type(ref) is torch.optim.SGD

    def settings(optimizer):
        out = {}
        for group in optimizer.param_groups:
            for p in group["params"]:
                out[id(p)] = (group["lr"], group["momentum"], group["weight_decay"])
        return out

    norms = {
        id(p)
        for m in model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        for p in m.parameters()
    }
    biases = {id(p) for n, p in model.named_parameters() if n.endswith(".bias")}
    assert norms and biases - norms  # the check covers both kinds
    a, b = settings(ours), settings(ref)
    assert set(a) == set(b) == {id(p) for p in model.parameters() if p.requires_grad}
    assert a == b
    assert {b[i][2] for i in norms | biases} == {1e-4}
    # detectron2's default (WEIGHT_DECAY_NORM 0) would not: the comparison can fail
    cfg.defrost()
    cfg.SOLVER.WEIGHT_DECAY_NORM = 0.0
    assert settings(Trainer.build_optimizer(cfg, model)) != b


# ------------------------------------------------------------------------------ Context labels
def test_context_class_lists_and_59_reduction_equal_mmseg_datasets(tmp_path):
    import_mmseg()
    from mmseg.datasets import PascalContextDataset, PascalContextDataset59
    from mmseg.datasets.transforms import LoadAnnotations
    from PIL import Image

    from seethroughnet.data.datasets.pascal_context import CONTEXT59_CLASSES, CONTEXT60_CLASSES

    assert tuple(CONTEXT60_CLASSES) == PascalContextDataset.METAINFO["classes"]
    assert tuple(CONTEXT59_CLASSES) == PascalContextDataset59.METAINFO["classes"]
    sys.path.insert(0, os.path.join(REPO, "datasets"))
    try:
        from _prepare_common import reduce_zero_label
    finally:
        sys.path.pop(0)
    full = np.random.default_rng(0).integers(0, 60, (6, 8)).astype(np.uint8)
    full[0, :3] = 0
    (tmp_path / "60").mkdir()
    Image.fromarray(full).save(tmp_path / "60/x.png")
    reduce_zero_label(str(tmp_path / "60"), str(tmp_path / "59"))

    def mmseg_reads(reduce):  # LoadAnnotations as the two datasets' pipelines configure it
        results = {"seg_map_path": str(tmp_path / "60/x.png"), "reduce_zero_label": reduce}
        return LoadAnnotations(reduce_zero_label=reduce)({**results, "seg_fields": []})[
            "gt_seg_map"
        ]

    assert np.array_equal(mmseg_reads(False), full)  # PascalContextDataset: the map as it is
    prepared59 = np.asarray(Image.open(tmp_path / "59/x.png"))  # SegmentationClassContext59
    assert np.array_equal(prepared59, mmseg_reads(True))  # PascalContextDataset59
    assert (prepared59 == IGNORE).any()
