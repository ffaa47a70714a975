"""The one registry of decode heads: a class decorator that names a head and the config keys of
its options, next to the head's definition (as MMSegmentation's ``@MODELS.register_module()``).

    @register_decode_head("psp", pool_scales="POOL_SCALES")
    class PSPHead(DecodeHead): ...

registers ``PSPHead`` under ``MODEL.DECODE_HEAD.NAME: psp`` and says that its constructor argument
``pool_scales`` is set from ``MODEL.DECODE_HEAD.POOL_SCALES`` (the detectron2 glue,
:func:`seethroughnet.modeling.segmentors.build_seg_head`, reads them). Plain Python: no detectron2.
"""

from __future__ import annotations

import inspect
from typing import Dict

__all__ = ["DECODE_HEADS", "register_decode_head", "build_decode_head"]

#: name -> head class, the names accepted by ``MODEL.DECODE_HEAD.NAME``
DECODE_HEADS: Dict[str, type] = {}


def register_decode_head(name: str, **config_keys: str):
    """Class decorator: register the head under ``name``; each keyword maps a constructor argument
    of the head to the key under ``MODEL.DECODE_HEAD`` that sets it. The class gets the attributes
    ``head_name`` and ``config_keys``."""

    def register(cls):
        if name in DECODE_HEADS:
            raise KeyError(
                f"decode head {name!r} is registered twice ({DECODE_HEADS[name].__name__}, "
                f"{cls.__name__})"
            )
        params = inspect.signature(cls.__init__).parameters
        unknown = [arg for arg in config_keys if arg not in params]
        if unknown:
            raise TypeError(
                f"{cls.__name__}.__init__ has no argument(s) {unknown} named in "
                "register_decode_head"
            )
        cls.head_name = name
        cls.config_keys = dict(config_keys)
        DECODE_HEADS[name] = cls
        return cls

    return register


def build_decode_head(name: str, *args, **kwargs):
    """``DECODE_HEADS[name](*args, **kwargs)``; an unknown name raises ``ValueError`` listing
    them."""
    if name not in DECODE_HEADS:
        raise ValueError(
            f"unknown decode head {name!r}; valid choices: {', '.join(sorted(DECODE_HEADS))}"
        )
    return DECODE_HEADS[name](*args, **kwargs)
