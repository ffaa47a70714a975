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
    for node in _nodes_outside_lazy_getattr(tree):
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


def _nodes_outside_lazy_getattr(tree):
    """Every node of ``tree`` except those inside a module-level ``__getattr__`` (PEP 562: a
    package's lazy attribute, e.g. ``seethroughnet.Predictor``, imports only when it is used)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            lazy = node is tree and isinstance(child, ast.FunctionDef)
            if not (lazy and child.name == "__getattr__"):
                todo.append(child)


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


#: Route B (``make test-upstream``) runs these files whole: what can differ between detectron2
#: v0.6 and upstream main. Every other route-dependent file runs its first test that is not marked
#: ``slow`` (a sample: it imports and calls detectron2 through that file's path); files whose
#: import graph holds no detectron2 do not run on route B at all (:func:`route_independent`).
ROUTE_B_FILES = (
    # the install and the package on that install
    "tests/tools/test_detectron2_install.py",
    "tests/tools/test_packaging.py",
    # Cityscapes loading and evaluation (upstream's internal cityscapesscripts path), the metric
    "tests/utils/test_cityscapes_alias.py",
    "tests/engine/test_sem_seg_miou.py",
    "tests/data/test_dataset_registration.py",
    "tests/data/test_dataset_bad_input.py",
    # instance loading and the detectors of the transfer study
    "tests/transfer/test_transfer_converter.py",
    "tests/transfer/test_transfer_backbone.py",
    "tests/transfer/test_transfer_hrfpn.py",
    "tests/experiments/test_table5.py",
    # checkpoint conversion and loading, safe loading through detectron2's checkpointer
    "tests/conversion/test_reference_conversion.py",
    "tests/tools/test_convert_weights.py",
    "tests/utils/test_safe_loading.py",
    "tests/utils/test_safe_loading_entry_points.py",
    # the trainer on detectron2's engine: config, DDP (gloo), AMP, structure (checkpoint contents
    # and resume are sampled: test_crash_safe_training.py's first fast test writes and reloads a
    # checkpoint through detectron2's checkpointer; the kill-and-resume runs, the same project code
    # on both routes, run on route A)
    "tests/engine/test_config.py",
    "tests/engine/test_seethroughnet_train_net.py",
    "tests/engine/test_amp.py",
    "tests/engine/test_trainer_structure.py",
)


def route_b_plan(items, repo_root: str):
    """``(keep, drop)`` of pytest ``items`` for route B: files of :data:`ROUTE_B_FILES` whole, the
    first non-``slow`` test of every other route-dependent file, nothing of route-independent
    files."""
    whole = {os.path.join(repo_root, f) for f in ROUTE_B_FILES}
    independent: dict = {}
    sampled: set = set()
    keep, drop = [], []
    for item in items:
        path = str(item.fspath)
        if path not in independent:
            independent[path] = route_independent(path)
        if path in whole:
            keep.append(item)
        elif independent[path] or path in sampled or item.get_closest_marker("slow"):
            drop.append(item)
        else:
            sampled.add(path)
            keep.append(item)
    return keep, drop


def long_files_first(items) -> None:
    """Sort ``items`` (stably) so that the files holding ``reproduce`` tests come first, then those
    holding ``slow`` ones, then the rest, each file's tests in their own order. pytest-xdist's
    ``--dist loadfile`` hands out files in this order: the longest start first instead of
    running alone at the end while the other process has nothing left."""

    def rank(item) -> int:
        return (
            2
            if item.get_closest_marker("reproduce")
            else int(bool(item.get_closest_marker("slow")))
        )

    ranks: dict = {}
    for item in items:
        path = str(item.fspath)
        ranks[path] = max(ranks.get(path, 0), rank(item))
    items.sort(key=lambda item: -ranks[str(item.fspath)])
