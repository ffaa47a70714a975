"""The wheel of the project installs into a fresh virtual environment and every console script
of pyproject.toml's ``[project.scripts]`` answers ``--help`` from that environment's ``bin/``.

The fresh environment (``python -m venv --without-pip``) sees the current environment's installed
packages (torch, detectron2, ...) through a ``.pth`` file appended after its own site-packages,
as the Makefile's route B does (``_route_a_packages.pth``), so nothing big is installed twice;
the wheel is installed by the current pip (``pip --python``) without dependencies. The sources
are copied to a temporary folder before the build (setuptools writes ``build/`` beside them), and
the scripts run from a temporary working directory without PYTHONPATH, so the checkout cannot be
imported by accident; the test checks where ``seethroughnet`` is imported from."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
pytest.importorskip("detectron2")  # the train / export scripts import it at start-up

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "projects/SeeThroughNet/seethroughnet"


def _scripts():
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def _clean_env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONWARNINGS"] = "ignore"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _run(cmd, cwd, timeout=300):
    r = subprocess.run(
        cmd, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(
        PACKAGE,
        src / "projects/SeeThroughNet/seethroughnet",
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"),
    )
    wheels = tmp / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(wheels), str(src)],
        cwd=tmp,
    )
    (wheel,) = wheels.glob("seethroughnet-*.whl")

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    py = venv / "bin/python"
    purelib = Path(
        _run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp
        ).strip()
    )
    (purelib / "_shared_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps"]
        + ["--no-index", str(wheel)],
        cwd=tmp,
    )
    return {"wheel": wheel, "venv": venv, "purelib": purelib, "cwd": tmp}


def test_wheel_holds_the_package_license_and_scripts(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"seethroughnet"}, tops  # no generic top-level name (no `transfer`)
    assert "seethroughnet/cli.py" in names and "seethroughnet/paper_numbers.yaml" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    meta = zipfile.ZipFile(installed["wheel"]).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))
    )
    assert b"License-Expression: Apache-2.0" in meta and b"Requires-Dist: torch" in meta
    assert b"Requires-Dist: detectron2" not in meta  # installed by the project's route


def test_installed_package_is_imported_from_the_new_environment(installed):
    out = _run(
        [
            str(installed["venv"] / "bin/python"),
            "-c",
            "import seethroughnet; print(seethroughnet.__file__)",
        ],
        cwd=installed["cwd"],
    )
    assert Path(out.strip()).resolve().is_relative_to(installed["purelib"].resolve()), out


# Run inside the fresh environment: every console script of the seethroughnet distribution, as
# its wrapper does (load the entry point, call it with sys.argv = [name, "--help"]), in one process
# so that torch and detectron2 are imported once.
HELP_ALL = r"""
import contextlib, io, json, sys
from importlib.metadata import distribution
results = {}
for ep in distribution("seethroughnet").entry_points:
    if ep.group != "console_scripts":
        continue
    out = io.StringIO()
    sys.argv = [ep.name, "--help"]
    try:
        with contextlib.redirect_stdout(out):
            ep.load()()
        code = 0
    except SystemExit as e:
        code = e.code or 0
    except Exception as e:
        code = f"{type(e).__name__}: {e}"
    results[ep.name] = [code, "usage:" in out.getvalue()]
print(json.dumps(results))
"""


def test_every_console_script_answers_help(installed):
    import json

    scripts = _scripts()
    assert {"seethroughnet-train", "seethroughnet-export", "seethroughnet-study"} <= set(scripts)
    for name in scripts:
        assert (installed["venv"] / "bin" / name).is_file(), f"{name} not installed"
    results = json.loads(
        _run([str(installed["venv"] / "bin/python"), "-c", HELP_ALL], cwd=installed["cwd"])
    )
    assert set(results) == set(scripts), (sorted(results), sorted(scripts))
    failed = {name: r for name, r in results.items() if r != [0, True]}
    assert not failed, failed
    # and one installed wrapper file run as a user runs it
    out = _run([str(installed["venv"] / "bin/seethroughnet-train"), "--help"], installed["cwd"])
    assert "usage:" in out
