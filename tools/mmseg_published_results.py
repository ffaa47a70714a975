"""MMSegmentation's published single-model results for the seven Table 1 models, read from the
metafiles that the mmsegmentation package ships (``mmseg/.mim/configs/<model>/metafile.yaml``):
what each model reaches with MMSegmentation's own single FCN auxiliary head, the point of
comparison for the paper's baselines (SeeThroughNet, CVPR 2022, Table 1). Facts only, cited by
metafile entry name; nothing is trained here.

    .venv-mmseg/bin/python tools/mmseg_published_results.py [--configs-root DIR] [--output FILE]

(``make test-mmseg`` installs .venv-mmseg; ``--configs-root`` reads another MMSegmentation
checkout's ``configs/`` instead.) Prints a markdown table: one row per model, one column per
dataset and schedule, single-scale val mIoU.
"""

import argparse
import os
import re
import sys

import yaml

# (row label, metafile folder, name prefix of the Table 1 variant)
MODELS = (
    ("OCRNet (HRNetV2-W48)", "ocrnet", "ocrnet_hr48_"),
    ("DeepLabV3+ (R101-D8)", "deeplabv3plus", "deeplabv3plus_r101-d8_"),
    ("UPerNet (R101)", "upernet", "upernet_r101_"),
    ("DMNet (R101-D8)", "dmnet", "dmnet_r101-d8_"),
    ("CCNet (R101-D8)", "ccnet", "ccnet_r101-d8_"),
    ("PSPNet (R101-D8)", "pspnet", "pspnet_r101-d8_"),
    ("ANN (R101-D8)", "ann", "ann_r101-d8_"),
)
# (column label, regular expression on the rest of the entry name after the prefix)
COLUMNS = (
    ("Cityscapes 40k", r"^4xb2-40k_cityscapes-512x1024$"),
    ("Cityscapes 80k", r"^4xb2-80k_cityscapes-512x1024$"),
    ("VOC aug 20k", r"^4xb4-20k_voc12aug-512x512$"),
    ("VOC aug 40k", r"^4xb4-40k_voc12aug-512x512$"),
    ("Context-60 40k", r"^4xb4-40k_pascal-context-480x480$"),
    ("Context-60 80k", r"^4xb4-80k_pascal-context-480x480$"),
    ("Context-59 40k", r"^4xb4-40k_pascal-context-59-480x480$"),
    ("Context-59 80k", r"^4xb4-80k_pascal-context-59-480x480$"),
)


def default_configs_root():
    try:
        import mmseg
    except ImportError:
        sys.exit(
            "mmsegmentation is not installed here: run with .venv-mmseg/bin/python (make "
            "test-mmseg installs it) or pass --configs-root <MMSegmentation checkout>/configs"
        )
    return os.path.join(os.path.dirname(mmseg.__file__), ".mim", "configs")


def published_results(configs_root):
    """``{(row, column): (mIoU, entry name)}`` for every Table 1 model and column found."""
    found = {}
    for row, folder, prefix in MODELS:
        path = os.path.join(configs_root, folder, "metafile.yaml")
        if not os.path.isfile(path):
            sys.exit(f"{path}: no metafile; is {configs_root} MMSegmentation's configs/ folder?")
        with open(path) as f:
            entries = yaml.safe_load(f).get("Models", [])
        for entry in entries:
            name = entry.get("Name", "")
            if not name.startswith(prefix):
                continue
            for column, pattern in COLUMNS:
                if re.match(pattern, name[len(prefix) :]):
                    miou = entry["Results"]["Metrics"]["mIoU"]
                    found[(row, column)] = (float(miou), name)
    return found


def markdown_table(found):
    from seethroughnet.experiments.report import markdown_table as table

    rows = [
        [row] + [f"{found[(row, c)][0]:.2f}" if (row, c) in found else "-" for c, _ in COLUMNS]
        for row, _, _ in MODELS
    ]
    return table(["model"] + [c for c, _ in COLUMNS], rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs-root", default=None, help="MMSegmentation's configs/ folder")
    parser.add_argument("--output", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    root = args.configs_root or default_configs_root()
    table = markdown_table(published_results(root))
    print(table)
    if args.output:
        from seethroughnet.utils.atomic import write_text_atomic

        write_text_atomic(args.output, table + "\n")


if __name__ == "__main__":
    main()
