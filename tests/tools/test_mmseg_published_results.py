"""tools/mmseg_published_results.py reads MMSegmentation metafiles: on a tiny metafile tree written
here, it picks exactly the Table 1 variants (model prefix, dataset, schedule, crop) and no other."""

import os
import subprocess
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "mmseg_published_results.py")
FOLDERS = ("ocrnet", "deeplabv3plus", "upernet", "dmnet", "ccnet", "pspnet", "ann")


def entry(name, miou):
    return {"Name": name, "Results": {"Metrics": {"mIoU": miou, "mIoU(ms+flip)": 99.0}}}


def write_tree(root):
    for folder in FOLDERS:
        os.makedirs(root / folder)
        models = []
        if folder == "pspnet":
            models = [
                entry("pspnet_r101-d8_4xb4-40k_pascal-context-480x480", 46.6),
                entry("pspnet_r101-d8_4xb4-40k_pascal-context-59-480x480", 52.02),
                entry("pspnet_r50-d8_4xb4-40k_pascal-context-480x480", 11.0),  # R50: not Table 1
                entry("pspnet_r101-d8_4xb2-amp-80k_cityscapes-512x1024", 12.0),  # AMP variant
                entry("pspnet_r101-d8_4xb2-80k_cityscapes-769x769", 13.0),  # other crop
                entry("pspnet_r101-d8_4xb2-80k_cityscapes-512x1024", 79.76),
            ]
        with open(root / folder / "metafile.yaml", "w") as f:
            yaml.safe_dump({"Collections": [], "Models": models}, f)


def test_reads_only_the_table1_variants(tmp_path):
    write_tree(tmp_path)
    out = tmp_path / "table.md"
    run = subprocess.run(
        [sys.executable, TOOL, "--configs-root", str(tmp_path), "--output", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    psp = [line for line in run.stdout.splitlines() if line.startswith("| PSPNet")][0]
    cells = [c.strip() for c in psp.strip("|").split("|")][1:]
    # columns: CS 40k, CS 80k, VOC 20k, VOC 40k, C60 40k, C60 80k, C59 40k, C59 80k
    assert cells == ["-", "79.76", "-", "-", "46.60", "-", "52.02", "-"]
    assert out.read_text().strip() == run.stdout.strip()
    ann = [line for line in run.stdout.splitlines() if line.startswith("| ANN")][0]
    assert set(c.strip() for c in ann.strip("|").split("|")[1:]) == {"-"}


def test_missing_metafile_names_the_file(tmp_path):
    run = subprocess.run(
        [sys.executable, TOOL, "--configs-root", str(tmp_path)], capture_output=True, text=True
    )
    assert run.returncode != 0
    assert os.path.join(str(tmp_path), "ocrnet", "metafile.yaml") in run.stderr
