"""seethroughnet.experiments.models.load_model: the one way the tools get a model (config from a
file or a CfgNode, datasets registered, eval mode, weights loaded strictly and safely)."""

from pathlib import Path

import pytest
import torch

from seethroughnet.experiments.models import load_config, load_model

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = str(REPO / "tests/configs/seethroughnet_tiny.yaml")  # the tests' tiny SeeThroughNet


def test_load_model_weights_eval_and_freeze(tmp_path):
    from detectron2.data import DatasetCatalog

    torch.manual_seed(0)
    cfg, model = load_model(TINY_CONFIG)  # random init: MODEL.WEIGHTS is empty
    assert not model.training and not cfg.is_frozen()
    assert "cityscapes_fine_sem_seg_val" in DatasetCatalog.list()
    ckpt = tmp_path / "m.pth"
    torch.save({"model": model.state_dict()}, ckpt)
    torch.manual_seed(1)
    cfg2, again = load_model(TINY_CONFIG, str(ckpt), (), "cpu", freeze=True)
    assert cfg2.is_frozen() and cfg2.MODEL.WEIGHTS == str(ckpt) and cfg2.MODEL.DEVICE == "cpu"
    for k, v in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v)
    # an already built config is used as it is
    cfg3 = load_config(TINY_CONFIG)
    assert load_model(cfg3, str(ckpt))[0] is cfg3
    with pytest.raises(FileNotFoundError, match="nope.pth does not exist"):
        load_model(TINY_CONFIG, str(tmp_path / "nope.pth"))


def test_load_model_refuses_a_pickled_checkpoint_unless_trusted(tmp_path):
    """A checkpoint holding a Python object is not unpickled (safe loading)."""
    from argparse import Namespace

    from seethroughnet.utils.safe_load import UnsafeFileError

    path = tmp_path / "obj.pth"
    torch.save({"model": {}, "args": Namespace(x=1)}, path)
    with pytest.raises(UnsafeFileError):
        load_model(TINY_CONFIG, str(path))
