"""Upstream detectron2 main imports cityscapesscripts under an internal path.

On upstream main (commit 02b5c4e2 and later, upstream issue #5436), ``detectron2/data/datasets/
cityscapes.py`` and ``detectron2/evaluation/cityscapes_evaluation.py`` import
``deeplearning.projects.cityscapesApi.cityscapesscripts...``, a path that exists only inside the
company that maintains detectron2; every Cityscapes loader and evaluator then fails with
``ModuleNotFoundError: No module named 'deeplearning'``. detectron2 v0.6 imports
``cityscapesscripts`` by its real name.

:func:`install` adds a meta-path finder that resolves that internal path, and only it, to the
real ``cityscapesscripts`` package installed from the registry (``cityscapesScripts`` in
requirements.txt): importing ``deeplearning.projects.cityscapesApi.cityscapesscripts.X`` gives the
module object ``cityscapesscripts.X``. Nothing is written to disk and no detectron2 file is
changed; where a real ``deeplearning`` package is installed, nothing is done.
With detectron2 v0.6 it is never used.

Where it is installed: upstream imports the internal path inside the functions that read or score
Cityscapes (``load_cityscapes_instances`` / ``load_cityscapes_semantic``, the ``evaluate`` /
``process`` methods of ``CityscapesSemSegEvaluator`` / ``CityscapesInstanceEvaluator``), not when
``detectron2.data`` or ``detectron2.evaluation`` is imported. The project calls them only from
``seethroughnet/data/datasets/cityscapes.py`` (which re-registers detectron2's Cityscapes names
with validating loaders) and ``seethroughnet/evaluation/cityscapes.py``; each installs the finder
when it is imported, before its detectron2 imports. ``import seethroughnet`` (and the plain-PyTorch
:mod:`seethroughnet.nn`) leaves ``sys.meta_path`` alone.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from typing import Optional

__all__ = ["INTERNAL_PREFIX", "install"]

#: the internal import path of upstream detectron2 main
INTERNAL_PREFIX = "deeplearning.projects.cityscapesApi.cityscapesscripts"
_PARENTS = ("deeplearning", "deeplearning.projects", "deeplearning.projects.cityscapesApi")


class _AliasLoader(importlib.abc.Loader):
    """Loads an alias name as the already-imported real module (or an empty parent package)."""

    def __init__(self, real_name: Optional[str]):
        self.real_name = real_name

    def create_module(self, spec):
        return None  # a placeholder; exec_module replaces it in sys.modules

    def exec_module(self, module):
        if self.real_name is None:  # "deeplearning", "deeplearning.projects", ...: empty packages
            module.__path__ = []
            return
        # The import system binds the alias to whatever sys.modules holds after exec_module, so the
        # alias name and the real name share one module object (the real one, left untouched).
        sys.modules[module.__spec__.name] = importlib.import_module(self.real_name)


class _CityscapesScriptsAliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in _PARENTS:
            return importlib.machinery.ModuleSpec(fullname, _AliasLoader(None), is_package=True)
        if fullname == INTERNAL_PREFIX or fullname.startswith(INTERNAL_PREFIX + "."):
            real = "cityscapesscripts" + fullname[len(INTERNAL_PREFIX) :]
            try:
                found = importlib.util.find_spec(real)
            except ModuleNotFoundError:  # a missing parent package
                found = None
            if found is None:
                return None
            return importlib.machinery.ModuleSpec(
                fullname,
                _AliasLoader(real),
                is_package=found.submodule_search_locations is not None,
            )
        return None


def install() -> None:
    """Add the finder once (idempotent); nothing is done where a real ``deeplearning`` package is
    importable. The finder goes first in ``sys.meta_path``: the alias's parent is the real
    ``cityscapesscripts`` package, and the path-based finder would otherwise load its submodules a
    second time under the alias names."""
    if any(isinstance(f, _CityscapesScriptsAliasFinder) for f in sys.meta_path):
        return
    if "deeplearning" not in sys.modules and importlib.util.find_spec("deeplearning") is not None:
        return
    sys.meta_path.insert(0, _CityscapesScriptsAliasFinder())
