"""One way to get a trained model: register the datasets, build the config, build the model,
load the weights, eval mode. Every tool that needs a model goes through :func:`load_model`."""

from __future__ import annotations

import os
from typing import Optional, Sequence

__all__ = ["register_datasets", "load_config", "load_model"]


def register_datasets() -> list:
    """Register every dataset name the project knows (Cityscapes, CamVid, VOC / Context /
    NYUv2); idempotent. Returns the registered names."""
    from seethroughnet.data.datasets import register_all

    return register_all()


def load_config(
    config_file: str,
    opts: Sequence[str] = (),
    device: Optional[str] = None,
    *,
    allow_unsafe_config: bool = False,
    trust_weights: bool = False,
    extra_config: Sequence = (),
):
    """The project config (its keys, the CPP plug-in's) from ``config_file`` + ``KEY VALUE``
    ``opts``, after registering the datasets. The file is read with safe YAML only unless
    ``allow_unsafe_config``; ``trust_weights`` sets ``MODEL.WEIGHTS_TRUSTED True``
    (``--allow-unsafe-config`` / ``--trust-weights-file``). ``device`` overrides
    ``MODEL.DEVICE``. ``extra_config``: functions ``f(cfg)`` adding the keys of a project built on
    this one (``transfer.config.add_transfer_config`` for Table 5's detector configs). Not
    frozen."""
    from seethroughnet.config import build_config

    register_datasets()
    opts = list(opts) + (["MODEL.WEIGHTS_TRUSTED", "True"] if trust_weights else [])
    cfg = build_config(
        config_file, opts, allow_unsafe=allow_unsafe_config, extra=tuple(extra_config)
    )
    if device:
        cfg.MODEL.DEVICE = device
    return cfg


def load_model(
    config,
    weights: Optional[str] = None,
    opts: Sequence[str] = (),
    device: Optional[str] = None,
    *,
    allow_unsafe_config: bool = False,
    trust_weights: bool = False,
    freeze: bool = False,
):
    """``(cfg, model)``: the config and its model in eval mode with ``weights`` loaded.

    ``config`` is a config file (read through :func:`load_config` with ``opts`` / ``device``) or
    an already built ``CfgNode`` (used as it is). ``weights=None``: ``MODEL.WEIGHTS`` if set,
    else random init; ``weights=""``: random init. The weights are loaded strictly by the
    project's checkpointer (``CheckpointMismatchError`` listing missing / unexpected keys if the
    checkpoint belongs to another architecture; ``MODEL.WEIGHTS_ALLOW_PARTIAL True`` to load
    what matches) and without unpickling objects (``UnsafeFileError``) unless
    ``trust_weights``. ``freeze``: also set ``MODEL.WEIGHTS`` to the loaded file and freeze the
    config (for tools that hand it on to data loaders and evaluators)."""
    from seethroughnet.engine import Trainer

    if isinstance(config, (str, os.PathLike)):
        cfg = load_config(
            os.fspath(config),
            opts,
            device,
            allow_unsafe_config=allow_unsafe_config,
            trust_weights=trust_weights,
        )
    else:
        register_datasets()
        cfg = config
    path = weights if weights is not None else cfg.MODEL.WEIGHTS
    if path and "://" not in path and not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if freeze:
        if path:
            cfg.MODEL.WEIGHTS = path
        cfg.freeze()
    model = Trainer.build_model(cfg)
    model.eval()
    if path:
        Trainer.build_checkpointer(cfg, model).load(path)
    return cfg, model
