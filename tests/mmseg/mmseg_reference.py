"""MMSegmentation 1.2.2 as the reference of the Table 1 recipe (SeeThroughNet, CVPR 2022, Sec. 4.4:
"We used the models from MMSegmentation"): helpers shared by the tests of ``tests/mmseg``.

mmcv-lite ships no compiled extension, and ``import mmcv.ops`` (done by MMSegmentation's model
registry) loads ``mmcv._ext`` at import time. :func:`import_mmseg` registers a stub module first
whose every attribute is a function that raises; the seven Table 1 models' forward passes call
none of them (CCNet's criss-cross attention is plain PyTorch in mmcv 2.x).
"""

import importlib.machinery
import os
import sys
import types

__all__ = [
    "import_mmseg",
    "mmseg_config",
    "build_mmseg_model",
    "randomize_batchnorms_",
    "MMSEG_CONFIGS",
]

#: MMSegmentation 1.2.2 config files (under ``mmseg/.mim/configs``) of the seven Table 1 models
#: at the Cityscapes settings; other class counts override ``num_classes`` in their heads.
MMSEG_CONFIGS = {
    "psp": "pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py",
    "deeplabv3plus": "deeplabv3plus/deeplabv3plus_r101-d8_4xb2-80k_cityscapes-512x1024.py",
    "upernet": "upernet/upernet_r101_4xb2-80k_cityscapes-512x1024.py",
    "dmnet": "dmnet/dmnet_r101-d8_4xb2-80k_cityscapes-512x1024.py",
    "ccnet": "ccnet/ccnet_r101-d8_4xb2-80k_cityscapes-512x1024.py",
    "ann": "ann/ann_r101-d8_4xb2-80k_cityscapes-512x1024.py",
    "ocr": "ocrnet/ocrnet_hr48_4xb2-80k_cityscapes-512x1024.py",
}


def _stub_compiled_ops():
    if "mmcv._ext" in sys.modules:
        return
    ext = types.ModuleType("mmcv._ext")
    ext.__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", None)

    def missing(name):
        if name.startswith("__"):
            raise AttributeError(name)

        def op(*args, **kwargs):
            raise RuntimeError(f"mmcv._ext.{name}: compiled op, not in mmcv-lite")

        return op

    ext.__getattr__ = missing  # PEP 562: any op name resolves to a function that raises
    sys.modules["mmcv._ext"] = ext


def import_mmseg():
    """Import MMSegmentation with the compiled-op stub, register its modules, return ``mmseg``."""
    _stub_compiled_ops()
    import mmseg
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    return mmseg


def mmseg_config(relative_path: str):
    """An MMSegmentation config (``mmengine.Config``) from the installed package's config tree."""
    mmseg = import_mmseg()
    from mmengine.config import Config

    return Config.fromfile(
        os.path.join(os.path.dirname(mmseg.__file__), ".mim", "configs", relative_path)
    )


def build_mmseg_model(head: str, num_classes: int, norm: str = "BN"):
    """MMSegmentation's Table 1 model for decode head ``head`` (a key of :data:`MMSEG_CONFIGS`) with
    ``num_classes`` classes, plain BN (one process), no pretrained file, in eval mode."""
    from mmseg.registry import MODELS

    cfg = mmseg_config(MMSEG_CONFIGS[head]).model
    cfg.pretrained = None
    cfg.data_preprocessor = None

    def retype(node):
        if isinstance(node, dict):
            if node.get("type") == "SyncBN":
                node["type"] = norm
            for v in node.values():
                retype(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                retype(v)

    retype(cfg)
    for key in ("decode_head", "auxiliary_head"):
        heads = cfg.get(key)
        for h in heads if isinstance(heads, (list, tuple)) else [heads] if heads else []:
            h["num_classes"] = num_classes
    model = MODELS.build(cfg)
    model.eval()
    return model


def randomize_batchnorms_(model, seed: int) -> None:
    """Random affine parameters and running statistics in every BatchNorm of ``model`` (eval-mode
    BN is then a random per-channel affine map, as in a trained checkpoint; with the default
    statistics it is near identity and a wrong layer order could pass unnoticed)."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
