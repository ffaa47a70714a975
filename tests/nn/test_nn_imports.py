"""``seethroughnet.nn`` is plain PyTorch: every import statement of every file under
``seethroughnet/nn/`` (module level and inside functions) names the standard library, torch,
numpy, timm (the HRNet implementation the encoder wraps) or ``seethroughnet.nn`` itself; never
detectron2, fvcore or another part of the ``seethroughnet`` package (the glue)."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NN = REPO / "projects/SeeThroughNet/seethroughnet/nn"
ALLOWED_THIRD_PARTY = {"torch", "numpy", "timm"}


def _module_of(path: Path) -> str:
    rel = path.relative_to(NN.parent.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path):
    """``(line, absolute module name)`` of every ``import`` / ``from ... import`` in ``path``,
    relative imports resolved against the file's package."""
    package = _module_of(path)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            out.append((node.lineno, name))
    return out


def allowed(name: str) -> bool:
    top = name.split(".")[0]
    if name == "seethroughnet.nn" or name.startswith("seethroughnet.nn."):
        return True
    return top in ALLOWED_THIRD_PARTY or top in sys.stdlib_module_names


def test_import_walk_resolves_relative_imports(tmp_path):
    """The walker itself: a relative import two levels up from a subpackage is the glue."""
    sub = NN / "decode_heads" / "registry.py"
    names = {n for _, n in imported_modules(sub)}
    assert names and all(n.startswith("seethroughnet.nn") or allowed(n) for n in names)
    assert not allowed("seethroughnet.utils.safe_load") and not allowed("detectron2.config")
    assert not allowed("fvcore.nn") and allowed("seethroughnet.nn.layers") and allowed("typing")


def test_nn_imports_only_torch_numpy_timm_stdlib_and_itself():
    files = sorted(NN.rglob("*.py"))
    assert len(files) > 15
    bad = [
        f"{f.relative_to(REPO)}:{line}: {name}"
        for f in files
        for line, name in imported_modules(f)
        if not allowed(name)
    ]
    assert bad == [], "seethroughnet/nn imports outside torch/numpy/timm/itself:\n" + "\n".join(bad)


@pytest.mark.parametrize("module", ["seethroughnet.nn.seethroughnet", "seethroughnet.nn.options"])
def test_importing_the_models_loads_no_detectron2(module):
    code = (
        f"import sys, {module}\n"
        "glue = sorted(m for m in sys.modules if m.startswith(('detectron2', 'fvcore')) or "
        "(m.startswith('seethroughnet.') and not m.startswith('seethroughnet.nn')))\n"
        "assert not glue, glue\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO / "projects/SeeThroughNet"))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
