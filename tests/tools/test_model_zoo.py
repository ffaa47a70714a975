"""MODEL_ZOO.md stays runnable and honest: every row's convert command names a source that
``tools/convert_weights.py`` accepts and a project config that exists, its evaluate command uses
the same config and the converted file, and the "measured here" column is empty ("—") until a
result is measured here on the real dataset."""

import argparse
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ZOO = REPO / "MODEL_ZOO.md"
CONVERT = "python tools/convert_weights.py"
EVALUATE = "python projects/SeeThroughNet/train_net.py"
EMPTY = "—"


def converter_sources():
    """The SOURCE names of ``tools/convert_weights.py`` (its argparse sub-commands)."""
    from seethroughnet.conversion.commands import parser

    for action in parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("convert_weights.py's parser has no sub-commands")


def zoo_rows():
    """``[(header cells, row cells)]`` of every markdown table in MODEL_ZOO.md."""
    rows, header = [], None
    for line in ZOO.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif not all(set(c) <= set("-: ") for c in cells):
            rows.append((header, cells))
    return rows


def command(cell, prefix):
    """The command in a cell's inline code, split like a shell does."""
    found = re.findall(r"`([^`]+)`", cell)
    assert len(found) == 1 and found[0].startswith(prefix), cell
    return shlex.split(found[0])


ROWS = zoo_rows()


def test_zoo_has_rows_of_every_source():
    assert len(ROWS) >= 10
    sources = {command(r[h.index("convert")], CONVERT)[2] for h, r in ROWS}
    assert sources == {"mmseg", "nvidia", "hrnet_ocr"}


@pytest.mark.parametrize("header,row", ROWS, ids=[r[0][:60] for _, r in ROWS])
def test_row(header, row):
    assert header[-1] == "measured here", header
    assert row[-1] == EMPTY, f"MODEL_ZOO.md row {row[0]!r}: 'measured here' must stay {EMPTY}"

    conv = command(row[header.index("convert")], CONVERT)
    source = conv[2]
    assert source in converter_sources(), f"{source!r} is not a convert_weights.py source"
    args = conv[3:]
    flags = [a for a in args if a.startswith("--")]
    assert set(flags) <= {"--config", "--new-classifiers"}, flags
    config = args[args.index("--config") + 1]
    assert (REPO / config).is_file(), f"MODEL_ZOO.md: --config {config} does not exist"
    positional = [a for a in args if not a.startswith("--") and a != config]
    checkpoint, output, overrides = positional[0], positional[1], positional[2:]
    assert checkpoint.endswith(".pth") and output.startswith("weights/"), positional
    assert len(overrides) % 2 == 0, overrides
    # the publisher's file name is the one in the row's source cell
    assert f"`{checkpoint}`" in row[header.index("publisher's file (page)")]

    ev = command(row[header.index("evaluate here")], EVALUATE)
    config_file = ev[ev.index("--config-file") + 1]
    assert (REPO / config_file).is_file(), f"MODEL_ZOO.md: --config-file {config_file} missing"
    assert config_file == config
    assert "--eval-only" in ev
    weights = ev.index("MODEL.WEIGHTS")
    assert ev[weights + 1] == output
    assert ev[weights + 2 :] == overrides  # the conversion's overrides apply to evaluation too


def test_readme_links_the_zoo():
    assert "(MODEL_ZOO.md)" in (REPO / "README.md").read_text(encoding="utf-8")
