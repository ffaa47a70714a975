"""The Table 6 chain as configs (issue 13 item 4): Mapillary pre-training
(``configs/Mapillary/seethroughnet_W48_mapillary_pretrain.yaml``) -> Cityscapes fine-tuning on train
and on train+val -> test-set export (``configs/Cityscapes/table6/``):

* every config of the chain builds its model (HRNetV2-W48, 19 classes) on CPU;
* each step's ``MODEL.WEIGHTS`` is the previous step's ``OUTPUT_DIR/model_final.pth``, and the
  fine-tuning configs differ from the paper model's Cityscapes config only where they must;
* the whole chain runs, one iteration a step, with the tests' tiny model on a tiny fake Mapillary
  (``fake_mapillary``, prepared by ``datasets/prepare_mapillary_vistas.py``) and a tiny synthetic
  Cityscapes: pre-train, fine-tune from its weights (strict load), train+val, export the test split.
"""

import importlib
import json
import os
import sys
import zipfile

import pytest
import torch

pytest.importorskip("detectron2")
from detectron2.config import CfgNode  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(REPO, "projects/SeeThroughNet/configs")
PRETRAIN = os.path.join(CONFIGS, "Mapillary/seethroughnet_W48_mapillary_pretrain.yaml")
TRAIN = os.path.join(CONFIGS, "Cityscapes/table6/seethroughnet_W48_table6_finetune_train.yaml")
TRAINVAL = os.path.join(
    CONFIGS, "Cityscapes/table6/seethroughnet_W48_table6_finetune_trainval.yaml"
)
EXPORT = os.path.join(CONFIGS, "Cityscapes/table6/seethroughnet_W48_table6_test_export.yaml")
PAPER = os.path.join(CONFIGS, "Cityscapes/seethroughnet_W48_cityscapes_fine.yaml")
CHAIN = [PRETRAIN, TRAIN, TRAINVAL, EXPORT]
TINY_CONFIG = os.path.join(REPO, "tests/configs/seethroughnet_tiny.yaml")


def _cfg(path, *opts):
    from seethroughnet.config import build_config

    return build_config(path, list(opts))


def _flat(c, prefix=""):
    out = {}
    for k, v in c.items():
        out.update(_flat(v, prefix + k + ".") if isinstance(v, CfgNode) else {prefix + k: v})
    return out


@pytest.mark.parametrize("path", CHAIN, ids=[os.path.basename(p) for p in CHAIN])
def test_every_chain_config_builds_its_model_on_cpu(path):
    from detectron2.data import MetadataCatalog

    from seethroughnet.data.datasets import register_all
    from seethroughnet.modeling.meta_arch.seethroughnet import build_seethroughnet_from_cfg

    register_all()
    cfg = _cfg(path)
    net = build_seethroughnet_from_cfg(cfg)
    assert sum(p.numel() for p in net.encoder.parameters()) > 60e6  # HRNetV2-W48
    assert cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES == 19
    for name in cfg.DATASETS.TRAIN + cfg.DATASETS.TEST:
        assert len(MetadataCatalog.get(name).stuff_classes) == 19, name


def test_each_step_loads_the_previous_steps_final_weights():
    pre, train, trainval, export = (_cfg(p) for p in CHAIN)
    assert pre.DATASETS.TRAIN == ("mapillary_vistas_cityscapes19_sem_seg_train",)
    assert train.MODEL.WEIGHTS == os.path.join(pre.OUTPUT_DIR, "model_final.pth")
    assert trainval.MODEL.WEIGHTS == train.MODEL.WEIGHTS
    assert trainval.DATASETS.TRAIN == (
        "cityscapes_fine_sem_seg_train",
        "cityscapes_fine_sem_seg_val",
    )
    assert export.MODEL.WEIGHTS == os.path.join(trainval.OUTPUT_DIR, "model_final.pth")
    assert export.DATASETS.TEST == ("cityscapes_fine_sem_seg_test",)
    assert len({c.OUTPUT_DIR for c in (pre, train, trainval, export)}) == 4
    # the export command in the config's header names the same weights and split
    with open(EXPORT) as f:
        header = f.read()
    assert f"--weights {export.MODEL.WEIGHTS}" in header
    assert "--dataset cityscapes_fine_sem_seg_test" in header

    paper = _flat(_cfg(PAPER))
    changed = {k for k, v in _flat(train).items() if paper[k] != v}
    assert changed == {"MODEL.WEIGHTS", "OUTPUT_DIR"}  # HRNET.CHECKPOINT stays "" as in the paper
    changed = {k for k, v in _flat(trainval).items() if paper[k] != v}
    assert changed == {"MODEL.WEIGHTS", "OUTPUT_DIR", "DATASETS.TRAIN", "SOLVER.MAX_ITER"} | {
        "TEST.EVAL_PERIOD"
    }


@pytest.fixture(scope="module")
def chain_data(make_synthetic_cityscapes):
    """A tiny synthetic Cityscapes under a fresh ``DETECTRON2_DATASETS``, every name registered
    there (the fake Mapillary is added under it by the test)."""
    return make_synthetic_cityscapes(num_images={"train": 2, "val": 2, "test": 2})


def _train(out, step_cfg, *opts):
    """One iteration of the tiny model with ``step_cfg``'s datasets (and ``opts``)."""
    from seethroughnet.engine import Trainer

    cfg = _cfg(
        TINY_CONFIG,
        "OUTPUT_DIR",
        str(out),
        "DATASETS.TRAIN",
        str(step_cfg.DATASETS.TRAIN),
        "DATASETS.TEST",
        str(step_cfg.DATASETS.TEST),
        "SOLVER.MAX_ITER",
        "1",
        *opts,
    )
    cfg.freeze()
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    return trainer


def test_the_chain_runs_on_tiny_data(chain_data, fake_mapillary, tmp_path):
    from detectron2.data import DatasetCatalog

    from seethroughnet.experiments.export import main as export_main

    fake_mapillary(chain_data / "mapillary_vistas", n=2)
    sys.path.insert(0, os.path.join(REPO, "datasets"))
    try:
        prep = importlib.import_module("prepare_mapillary_vistas")
    finally:
        sys.path.pop(0)
    prep.prepare_mapillary_vistas(str(chain_data), progress=False)
    pre, train, trainval, export = (_cfg(p) for p in CHAIN)
    assert len(DatasetCatalog.get(pre.DATASETS.TRAIN[0])) == 2

    torch.manual_seed(0)
    step1 = _train(tmp_path / "pre", pre)
    step1.train()
    with open(tmp_path / "pre" / "metrics.json") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    miou = [r["sem_seg/mIoU"] for r in rows if "sem_seg/mIoU" in r]
    assert len(miou) == 1 and 0 <= miou[0] <= 100  # evaluated on the mapped Mapillary val
    pre_final = tmp_path / "pre" / "model_final.pth"
    assert pre_final.is_file()

    for step_cfg, name in ((train, "train"), (trainval, "trainval")):
        step = _train(tmp_path / name, step_cfg, "MODEL.WEIGHTS", str(pre_final))
        loaded = step.model.state_dict()
        saved = torch.load(pre_final, map_location="cpu", weights_only=True)["model"]
        assert loaded.keys() == saved.keys()  # strict load: every key, the classifier included
        assert all(torch.equal(loaded[k], saved[k]) for k in saved)
        step.train()
    assert (tmp_path / "trainval" / "model_final.pth").is_file()

    out = tmp_path / "submission"
    weights = str(tmp_path / "trainval" / "model_final.pth")
    rc = export_main(
        ["--config-file", TINY_CONFIG, "--weights", weights]
        + ["--dataset", export.DATASETS.TEST[0], "--output", str(out)]
    )
    assert rc in (None, 0)
    pngs = sorted(p.name for p in out.rglob("*.png"))
    assert len(pngs) == 2 and all(p.endswith("_pred_labelIds.png") for p in pngs)
    with zipfile.ZipFile(str(out) + ".zip") as z:
        assert len(z.namelist()) == 2
