"""MMSegmentation ResNetV1c-101 checkpoints of six Table 1 models -> the project's CPP plug-in
models: the key maps ``KEY_MAPS["mmseg"][name]`` for ``name`` in psp, deeplabv3plus, upernet,
dmnet, ccnet, ann (the project's ``MODEL.DECODE_HEAD.NAME``).

Source names: MMSegmentation 1.2.2's ``ResNetV1c`` (``mmseg/models/backbones/resnet.py``: deep
stem ``stem.{0,3,6}`` convs with norms ``stem.{1,4,7}``, ``layer1..4`` of ``Bottleneck`` blocks
``conv1..3`` / ``bn1..3`` / ``downsample.{0,1}``) and its decode heads (``psp_head.py``,
``sep_aspp_head.py``, ``uper_head.py``, ``dm_head.py``, ``cc_head.py`` with mmcv's
``CrissCrossAttention``, ``ann_head.py``); mmcv ``ConvModule`` parameters are ``<m>.conv.*`` and
``<m>.bn.*`` (the norm's name for BN and SyncBN), ``DepthwiseSeparableConvModule``
``<m>.depthwise_conv.*`` / ``<m>.pointwise_conv.*``.

Project names: detectron2's ``ResNet`` (``stem.conv1..3`` with ``.norm``, ``res2..res5``,
``conv1..3`` with ``.norm``, ``shortcut``) and the heads of ``seethroughnet/nn/decode_heads``
(``ConvNormAct`` = ``Sequential(conv, norm, act)``: ``<m>.0.*`` / ``<m>.1.*``).

A key map only renames: a source key that no rule matches is left out (the converter reports it
as unmapped); shapes are checked by the converter against the project model.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, Iterable, List, Sequence, Tuple

from .key_maps import register_key_map

__all__ = ["mmseg_resnet_v1c_key", "HEAD_RULES"]

_NORM_PARAMS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

# ------------------------------------------------------------------------------ backbone
_STEM_CONV = {"0": "conv1", "3": "conv2", "6": "conv3"}  # stem Sequential: conv, norm, ReLU x 3
_STEM_NORM = {"1": "conv1", "4": "conv2", "7": "conv3"}
_PARAM = r"(?P<p>" + "|".join(_NORM_PARAMS) + r")"
_BACKBONE_RULES: List[Tuple[re.Pattern, Callable[[re.Match], str]]] = [
    (
        re.compile(r"backbone\.stem\.(?P<i>[036])\.weight"),
        lambda m: f"backbone.stem.{_STEM_CONV[m['i']]}.weight",
    ),
    (
        re.compile(r"backbone\.stem\.(?P<i>[147])\." + _PARAM),
        lambda m: f"backbone.stem.{_STEM_NORM[m['i']]}.norm.{m['p']}",
    ),
    (
        re.compile(r"backbone\.layer(?P<s>[1-4])\.(?P<b>\d+)\.conv(?P<c>[123])\.weight"),
        lambda m: f"backbone.res{int(m['s']) + 1}.{m['b']}.conv{m['c']}.weight",
    ),
    (
        re.compile(r"backbone\.layer(?P<s>[1-4])\.(?P<b>\d+)\.bn(?P<c>[123])\." + _PARAM),
        lambda m: f"backbone.res{int(m['s']) + 1}.{m['b']}.conv{m['c']}.norm.{m['p']}",
    ),
    (
        re.compile(r"backbone\.layer(?P<s>[1-4])\.(?P<b>\d+)\.downsample\.0\.weight"),
        lambda m: f"backbone.res{int(m['s']) + 1}.{m['b']}.shortcut.weight",
    ),
    (
        re.compile(r"backbone\.layer(?P<s>[1-4])\.(?P<b>\d+)\.downsample\.1\." + _PARAM),
        lambda m: f"backbone.res{int(m['s']) + 1}.{m['b']}.shortcut.norm.{m['p']}",
    ),
]


def mmseg_resnet_v1c_key(key: str):
    """The project name of an MMSegmentation ``ResNetV1c`` backbone key (``backbone.*``), or
    ``None`` when no rule matches."""
    for pattern, name in _BACKBONE_RULES:
        m = pattern.fullmatch(key)
        if m:
            return name(m)
    return None


# ------------------------------------------------------------------------------ decode heads
# The parameter names inside one source module of each kind -> inside the project's module.
_CONV_MODULE = {"conv.weight": "0.weight", "conv.bias": "0.bias"}
_CONV_MODULE.update({f"bn.{p}": f"1.{p}" for p in _NORM_PARAMS})
_KINDS: Dict[str, Dict[str, str]] = {
    "conv_module": _CONV_MODULE,  # mmcv ConvModule -> ConvNormAct
    "separable": {  # mmcv DepthwiseSeparableConvModule -> Sequential(depthwise, pointwise)
        **{f"depthwise_conv.{k}": f"0.{v}" for k, v in _CONV_MODULE.items()},
        **{f"pointwise_conv.{k}": f"1.{v}" for k, v in _CONV_MODULE.items()},
    },
    "conv": {"weight": "weight", "bias": "bias"},  # a plain nn.Conv2d
    "norm": {p: p for p in _NORM_PARAMS},  # a plain norm layer
}

#: per head: ``(source module, project module, kind)``; module names are relative to
#: ``decode_head.`` and may hold ``{i}`` (an index, the same on both sides)
HEAD_RULES: Dict[str, Sequence[Tuple[str, str, str]]] = {
    # psp_head.py PSPHead: PPM branches (AdaptiveAvgPool2d, ConvModule), 3x3 bottleneck
    "psp": [
        ("psp_modules.{i}.1", "psp.stages.{i}.1", "conv_module"),
        ("bottleneck", "bottleneck", "conv_module"),
    ],
    # sep_aspp_head.py DepthwiseSeparableASPPHead: image pool, ASPP (dilation 1: ConvModule, the
    # others separable), ASPPHead's 3x3 bottleneck, c1 projection, two separable fusion convs
    "deeplabv3plus": [
        ("image_pool.1", "aspp.image_pool.1", "conv_module"),
        ("aspp_modules.0", "aspp.branches.0", "conv_module"),
        ("aspp_modules.{i}", "aspp.branches.{i}", "separable"),
        ("bottleneck", "aspp.project", "conv_module"),
        ("c1_bottleneck", "low_proj", "conv_module"),
        ("sep_bottleneck.{i}", "fuse.{i}", "separable"),
    ],
    # uper_head.py UPerHead: PPM on res5 + its bottleneck, lateral and FPN convs, fusion
    "upernet": [
        ("psp_modules.{i}.1", "psp.stages.{i}.1", "conv_module"),
        ("bottleneck", "psp_bottleneck", "conv_module"),
        ("lateral_convs.{i}", "lateral.{i}", "conv_module"),
        ("fpn_convs.{i}", "fpn.{i}", "conv_module"),
        ("fpn_bottleneck", "fpn_bottleneck", "conv_module"),
    ],
    # dm_head.py DMHead: per filter size a DCM (filter generator conv, input reduction, norm)
    "dmnet": [
        ("dcm_modules.{i}.filter_gen_conv", "dcms.{i}.filter_gen", "conv"),
        ("dcm_modules.{i}.input_redu_conv", "dcms.{i}.input_redu", "conv_module"),
        ("dcm_modules.{i}.norm", "dcms.{i}.post.0", "norm"),
        ("bottleneck", "bottleneck", "conv_module"),
    ],
    # cc_head.py CCHead (FCNHead, num_convs 2, concat_input): convs.0, criss-cross attention,
    # convs.1, conv_cat; mmcv 2.x keeps gamma in a Scale module (``gamma.scale``)
    "ccnet": [
        ("convs.0", "conva", "conv_module"),
        ("convs.1", "convb", "conv_module"),
        ("conv_cat", "bottleneck", "conv_module"),
        ("cca.query_conv", "cca.query", "conv"),
        ("cca.key_conv", "cca.key", "conv"),
        ("cca.value_conv", "cca.value", "conv"),
    ],
    # ann_head.py ANNHead: AFNB (one query scale) on res4/res5, 3x3 bottleneck, APNB
    "ann": [
        ("{part}.stages.0.key_project", "{part}.attention.key", "conv_module"),
        ("{part}.stages.0.query_project", "{part}.attention.query", "conv_module"),
        ("{part}.stages.0.value_project", "{part}.attention.value", "conv"),
        ("{part}.stages.0.out_project", "{part}.attention.out", "conv"),
        ("{part}.bottleneck", "{part}.fuse", "conv_module"),
        ("bottleneck", "bottleneck", "conv_module"),
    ],
}
#: single parameters, ``source key -> project key`` (relative to ``decode_head.``)
_HEAD_PARAMS: Dict[str, Dict[str, str]] = {
    # mmcv's CrissCrossAttention: ``Scale(0.)`` (a 0-d parameter ``gamma.scale``); also accepted:
    # ``gamma``, shape (1,), the original CCNet code's ``nn.Parameter(torch.zeros(1))``
    "ccnet": {"cca.gamma.scale": "cca.gamma", "cca.gamma": "cca.gamma"},
}
_PLACEHOLDERS = {"{i}": r"(?P<i>\d+)", "{part}": r"(?P<part>fusion|context)"}


def _module_pattern(template: str) -> str:
    pattern = re.escape(template)
    for placeholder, group in _PLACEHOLDERS.items():
        pattern = pattern.replace(re.escape(placeholder), group)
    return pattern


def _compile_head(name: str):
    rules = []
    for source, target, kind in HEAD_RULES[name]:
        pattern = re.compile(r"decode_head\." + _module_pattern(source) + r"\.(?P<rest>.+)")
        rules.append((pattern, target, _KINDS[kind]))
    return rules


def _head_key_map(name: str):
    rules = _compile_head(name)
    params = _HEAD_PARAMS.get(name, {})

    def project_key(key: str):
        rel = key[len("decode_head.") :] if key.startswith("decode_head.") else None
        if rel is None:
            return None
        if rel in ("conv_seg.weight", "conv_seg.bias"):  # BaseDecodeHead's classifier
            return key
        if rel in params:
            return "decode_head." + params[rel]
        for pattern, target, inner in rules:  # first matching rule wins (specific ones first)
            m = pattern.fullmatch(key)
            if m and m["rest"] in inner:
                groups = {k: v for k, v in m.groupdict().items() if k != "rest"}
                return f"decode_head.{target.format(**groups)}.{inner[m['rest']]}"
        return None

    def key_map(keys: Iterable[str]) -> Dict[str, str]:
        out = {}
        for key in keys:
            target = mmseg_resnet_v1c_key(key) if key.startswith("backbone.") else None
            target = target or project_key(key)
            if target is not None:
                out[key] = target
        return out

    key_map.__name__ = f"mmseg_{name}_key_map"
    key_map.__doc__ = (
        f"MMSegmentation ResNetV1c + {name} decode-head keys -> the project's (HEAD_RULES)."
    )
    return key_map


for _name in HEAD_RULES:
    register_key_map("mmseg", _name)(_head_key_map(_name))
