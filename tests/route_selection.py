"""Which test files can tell two detectron2 installs apart: ``make test-upstream`` (route B) runs
only those, route A (``make test``) runs every file (tests/conftest.py)."""

from __future__ import annotations

import ast
import os

#: files and folders whose import graph is followed (the project's packages, the tests' helpers)
_IMPORT_ROOTS = [
    os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "projects", "SeeThroughNet"
    ),
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    os.path.dirname(os.path.abspath(__file__)),
]
#: a test file that mentions any of these may reach detectron2 by a path the import graph does not
#: show (a subprocess running a tool, a dynamic import, detectron2 itself)
_DYNAMIC_MARKERS = ("detectron2", "subprocess", "importlib", "import_module", "tools/", "train_net")


def _module_file(name: str):
    parts = name.split(".")
    for root in _IMPORT_ROOTS:
        base = os.path.join(root, *parts)
        for path in (base + ".py", os.path.join(base, "__init__.py")):
            if os.path.isfile(path):
                return path
    return None


def _imports_detectron2(path: str, seen: set) -> bool:
    """Whether the file at ``path``, or a project/test-helper module it imports (transitively,
    package ``__init__`` files included), imports detectron2: a static walk of import statements."""
    if path in seen:
        return False
    seen.add(path)
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = _package_of(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")
                pkg = pkg[: len(pkg) - node.level + 1] if node.level > 1 else pkg
                base = ".".join([p for p in pkg if p] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "detectron2":
                return True
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # every package on the way runs its __init__
                dep = _module_file(".".join(parts[:i]))
                if dep is not None and _imports_detectron2(dep, seen):
                    return True
    return False


def _package_of(path: str) -> str:
    """The dotted package that holds ``path`` (for relative imports)."""
    path = os.path.abspath(path)
    for root in _IMPORT_ROOTS:
        rel = os.path.relpath(os.path.dirname(path), root)
        if not rel.startswith(".."):
            return "" if rel == "." else rel.replace(os.sep, ".")
    return ""


def route_independent(test_file: str) -> bool:
    """A test file whose whole import graph (static) holds no detectron2 and that reaches no other
    program: what it tests is the same code on every detectron2 install."""
    with open(test_file, encoding="utf-8") as f:
        text = f.read()
    if any(m in text for m in _DYNAMIC_MARKERS):
        return False
    return not _imports_detectron2(os.path.abspath(test_file), set())
