"""What ``pip install -e .`` (``make install``) installs: the ``seethroughnet`` package only. The
detection transfer's ``transfer/`` is run from the repository root, so no generic top-level module
named ``transfer`` lands in site-packages. The packages are found by setuptools' own discovery
with pyproject.toml's ``[tool.setuptools.packages.find]`` settings."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from setuptools import find_packages

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parents[2]


def test_distribution_holds_seethroughnet_and_not_transfer():
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"][
        "find"
    ]
    found = []
    for where in find["where"]:
        found += find_packages(str(REPO / where), include=find["include"])
    tops = {p.split(".")[0] for p in found}
    assert tops == {"seethroughnet"}, tops
    assert {"seethroughnet.nn", "seethroughnet.data.datasets"} <= set(found)
    assert (REPO / "transfer" / "__init__.py").is_file()  # the folder stays in the repository


def test_transfer_imports_from_the_repository_root_only(tmp_path):
    """``python -m transfer.X`` works with the repository root as working directory (on sys.path);
    from elsewhere, without the root on PYTHONPATH, there is no ``transfer`` to import unless an
    unrelated package of that name is installed (then it is not this one)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(REPO / "projects/SeeThroughNet")
    code = "import transfer, os; print(os.path.dirname(os.path.abspath(transfer.__file__)))"
    here = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert here.returncode == 0 and Path(here.stdout.strip()) == REPO / "transfer", here.stderr
    away = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert away.returncode != 0 or Path(away.stdout.strip()) != REPO / "transfer"


def test_seethroughnet_never_imports_transfer():
    """The installed package stands alone: no import statement under seethroughnet/ (module level
    or inside a function) names the repository's ``transfer`` package."""
    import ast

    root = REPO / "projects/SeeThroughNet/seethroughnet"
    files = sorted(root.rglob("*.py"))
    assert len(files) > 50
    bad = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            bad += [
                f"{f.relative_to(REPO)}:{node.lineno}: {n}"
                for n in names
                if n and n.split(".")[0] == "transfer"
            ]
    assert bad == []
