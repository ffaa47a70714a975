"""MMSegmentation OCRNet-HRNet checkpoints (``ocrnet_hr48``) -> the project's OCRNet-HR48 of
Table 1: the key map ``KEY_MAPS["mmseg"]["ocr"]`` (seethroughnet.conversion.key_maps).

MMSegmentation's model (``configs/ocrnet/ocrnet_hr48_4xb2-80k_cityscapes-512x1024.py``, a
``CascadeEncoderDecoder``) and the project's (``configs/CPP-Plugin/ocrnet_HRW48_*.yaml``, a
``CPPSegmentor`` with ``MODEL.DECODE_HEAD.NAME: ocr``) correspond part by part:

* ``backbone.*`` (MMSegmentation's ``HRNet``) -> ``backbone.encoder.body.*`` (timm's HRNet inside
  :class:`seethroughnet.nn.hrnet.HRNetV2Encoder`): both name every tensor alike (``conv1``,
  ``bn1``, ``layer1``, ``transition1..3``, ``stage2..4`` with ``branches`` and ``fuse_layers``);
  the fuse up-sampling, which has no tensor, is ``MODEL.HRNET.FUSE_UPSAMPLE: bilinear``.
* ``decode_head.0`` -- the ``FCNHead`` that predicts the soft object regions (one 1x1
  ConvModule 720 -> 720, then ``conv_seg`` to K; trained with loss weight 0.4). It is a stage of
  the cascade, not an auxiliary head: its counterpart is the OCR head's own soft-region branch,
  ``decode_head.soft_region`` (:class:`seethroughnet.nn.decode_heads.ocr.OCRNetHead`).
* ``decode_head.1`` -- the ``OCRHead``: ``bottleneck`` (3x3 ConvModule 720 -> 512, the pixel
  representations), ``object_context_block`` (``query_project`` / ``key_project``: two 1x1
  ConvModules each, ``value_project`` / ``out_project``: one each, ``bottleneck``: the 1x1
  ConvModule 1024 -> 512 on [context; pixels]) and ``conv_seg`` -> ``decode_head.ocr.*``
  (:class:`seethroughnet.nn.ocr_head.OCRHead`: ``pixel_conv``, ``query``, ``key``, ``value``,
  ``out_transform``, ``fuse.0``, ``classifier``).

An mmcv ``ConvModule`` names its parts ``conv`` and ``bn`` (BN and SyncBN alike); the project's
:class:`~seethroughnet.nn.layers.ConvNormAct` is an ``nn.Sequential`` (``0`` conv, ``1`` norm).
``auxiliary_head.*`` does not exist in OCRNet's config; keys this map does not know (any other
prefix or module) are left out of the result, for the converter to report.
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional

from .key_maps import register_key_map

__all__ = ["mmseg_ocrnet_key_map"]

#: MMSegmentation backbone prefix -> the project's (timm HRNet inside HRNetV2Encoder)
BACKBONE_PREFIXES = ("backbone.", "backbone.encoder.body.")

#: mmcv ``ConvModule``s of the two heads -> the project's ``ConvNormAct`` modules
CONV_MODULES = {
    # FCNHead (soft object regions): convs.0 = 1x1 conv 720 -> 720 + norm + ReLU
    "decode_head.0.convs.0": "decode_head.soft_region.0",
    # OCRHead: pixel representations, 3x3 conv 720 -> 512
    "decode_head.1.bottleneck": "decode_head.ocr.pixel_conv",
    # ObjectAttentionBlock (mmseg SelfAttentionBlock): query (pixels) and key (regions), 2 each
    "decode_head.1.object_context_block.query_project.0": "decode_head.ocr.query.0",
    "decode_head.1.object_context_block.query_project.1": "decode_head.ocr.query.1",
    "decode_head.1.object_context_block.key_project.0": "decode_head.ocr.key.0",
    "decode_head.1.object_context_block.key_project.1": "decode_head.ocr.key.1",
    "decode_head.1.object_context_block.value_project": "decode_head.ocr.value",
    "decode_head.1.object_context_block.out_project": "decode_head.ocr.out_transform",
    # 1x1 conv on [object context; pixels] (1024 -> 512)
    "decode_head.1.object_context_block.bottleneck": "decode_head.ocr.fuse.0",
}
#: parts of an mmcv ``ConvModule`` -> indices in ``ConvNormAct``
CONV_MODULE_PARTS = {"conv": "0", "bn": "1"}

#: the heads' classifiers (``conv_seg``, 1x1 conv with bias)
CLASSIFIERS = {
    "decode_head.0.conv_seg": "decode_head.soft_region.1",
    "decode_head.1.conv_seg": "decode_head.ocr.classifier",
}


def _project_key(key: str) -> Optional[str]:
    source, target = BACKBONE_PREFIXES
    if key.startswith(source):
        return target + key[len(source) :]
    for module, project in CLASSIFIERS.items():
        if key.startswith(module + "."):
            return project + key[len(module) :]
    for module, project in CONV_MODULES.items():
        if key.startswith(module + "."):
            part, _, tensor = key[len(module) + 1 :].partition(".")
            if part in CONV_MODULE_PARTS and tensor:
                return f"{project}.{CONV_MODULE_PARTS[part]}.{tensor}"
    return None


@register_key_map("mmseg", "ocr")
def mmseg_ocrnet_key_map(keys: Iterable[str]) -> Dict[str, str]:
    """``{mmseg_key: project_key}`` for every key of an MMSegmentation OCRNet-HRNet state dict
    that has a counterpart in the project's OCRNet (module docstring); unknown keys are omitted."""
    mapping = {}
    for key in keys:
        target = _project_key(key)
        if target is not None:
            mapping[key] = target
    return mapping
