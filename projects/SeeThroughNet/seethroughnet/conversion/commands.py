"""``tools/convert_weights.py``: published checkpoints of other code bases -> the project's models.

    tools/convert_weights.py mmseg --config <project config> <mmseg .pth> <out .pth> [KEY VALUE ...]

``mmseg``: an MMSegmentation 1.x / 0.x checkpoint of a Table 1 model
(:mod:`seethroughnet.conversion.mmseg`), converted for the model the project config builds
(``KEY VALUE`` pairs override the config, e.g. ``MODEL.SEM_SEG_HEAD.NUM_CLASSES 21`` for a VOC
checkpoint); prints what was loaded, dropped (MMSegmentation's auxiliary FCN head) and newly
initialised (the CPP auxiliary heads). Then
``train_net.py --config-file <project config> --eval-only MODEL.WEIGHTS <out .pth>`` evaluates it.

    tools/convert_weights.py nvidia --config <project config> <NVIDIA .pth> <out .pth> [...]
    tools/convert_weights.py hrnet_ocr --config <project config> <HRNet-OCR .pth> <out .pth> [...]

``nvidia``: NVIDIA/semantic-segmentation ``ocrnet.HRNet_Mscale`` (or ``ocrnet.HRNet``)
checkpoints; ``hrnet_ocr``: HRNet-Semantic-Segmentation HRNet-OCR checkpoints
(:mod:`seethroughnet.conversion.ocr_references`). A SeeThroughNet config takes the encoder, the
OCR head and the scale-attention head (the See-Through decoder starts fresh); the OCRNet-HRNet
config (``configs/CPP-Plugin/ocrnet_HRW48_*.yaml``) is the reference OCRNet itself.
"""

from __future__ import annotations

import argparse
import sys

from ..utils.safe_load import UnsafeFileError, add_safety_arguments

__all__ = ["parser", "main"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="convert_weights.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    mm = sub.add_parser(
        "mmseg",
        help="an MMSegmentation checkpoint of a Table 1 model",
        description="Convert an MMSegmentation (1.x or 0.x) checkpoint for the project model of "
        "--config; the auxiliary FCN head is dropped, the CPP auxiliary heads start from their "
        "initialisation.",
    )
    mm.add_argument("--config", required=True, help="the project config of the same model")
    mm.add_argument("checkpoint", help="the MMSegmentation .pth file")
    mm.add_argument("output", help="the converted checkpoint to write (MODEL.WEIGHTS)")
    mm.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    add_safety_arguments(mm)
    from .ocr_references import SOURCES

    for source, what in SOURCES.items():
        ref = sub.add_parser(
            source,
            help=f"a {what} checkpoint",
            description=f"Convert a {what} checkpoint for the project model of --config "
            "(SeeThroughNet: encoder, OCR head, scale attention; the See-Through decoder starts "
            "fresh. OCRNet-HRNet (CPPSegmentor, DECODE_HEAD.NAME ocr): the whole reference "
            "OCRNet).",
        )
        ref.add_argument("--config", required=True, help="the project config to convert for")
        ref.add_argument("checkpoint", help=f"the {source} .pth file")
        ref.add_argument("output", help="the converted checkpoint to write (MODEL.WEIGHTS)")
        ref.add_argument(
            "--new-classifiers",
            action="store_true",
            help="a checkpoint trained on other classes (NVIDIA's Mapillary ones: 65): its "
            "class-count layers (cls_head, aux_head's last conv) keep the project's "
            "initialisation, as NVIDIA's forgiving_state_restore does",
        )
        ref.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
        add_safety_arguments(ref)
    return p


def _convert(args, convert, errors, next_step: str, **options) -> int:
    """Run ``convert(checkpoint, config, output, opts, ...)``; print its report and the next step,
    or one error line (exit 1; 2 for overrides that are not KEY VALUE pairs)."""
    if len(args.opts) % 2:
        print(f"error: config overrides come in KEY VALUE pairs, got {args.opts}", file=sys.stderr)
        return 2
    try:
        report = convert(
            args.checkpoint,
            args.config,
            args.output,
            args.opts,
            trusted=args.trust_weights_file,
            allow_unsafe_config=args.allow_unsafe_config,
            **options,
        )
    except (*errors, UnsafeFileError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(report.summary())
    print(f"{next_step} MODEL.WEIGHTS {args.output} {' '.join(args.opts)}".rstrip())
    return 0


def _mmseg(args) -> int:
    from .mmseg import MMSegConversionError, convert_mmseg_checkpoint

    evaluate = (
        f"evaluate: projects/SeeThroughNet/train_net.py --config-file {args.config} --eval-only"
    )
    return _convert(args, convert_mmseg_checkpoint, (MMSegConversionError,), evaluate)


def _reference(args) -> int:
    from functools import partial

    from .convert import ConversionError
    from .ocr_references import convert_reference_checkpoint

    return _convert(
        args,
        partial(convert_reference_checkpoint, args.source),
        (ConversionError,),
        f"use: --config-file {args.config}",
        new_classifiers=args.new_classifiers,
    )


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.source == "mmseg":
        return _mmseg(args)
    return _reference(args)
