"""The trainer's structure (issue #26 item 1): one ``Trainer(DefaultTrainer)`` that the transfer
trainer subclasses; its checkpointer, train loader and hooks built once, in ``__init__``; no
private attribute of detectron2 assigned (no patched ``EvalHook._func``, sampler ``_seed``,
``_train_loader_from_config``) and no checkpointer swapped into a hook after construction, in
any Python file of projects/, transfer/ and tools/."""

import ast
import os
import re

import pytest

pytest.importorskip("detectron2")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCANNED = ("projects", "transfer", "tools")
TINY_CONFIG = os.path.join(REPO, "tests/configs/seethroughnet_tiny.yaml")


def _python_files(root):
    for top in SCANNED:
        for folder, dirs, files in os.walk(os.path.join(root, top)):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
            yield from (os.path.join(folder, f) for f in files if f.endswith(".py"))


def detectron2_private_attributes():
    """Every ``_name`` (not dunder) that detectron2's own source assigns on an object
    (``self._name = ...``), read from the installed package: the names the project must leave
    alone."""
    import detectron2

    names = set()
    pattern = re.compile(r"\bself\.(_[A-Za-z0-9]\w*)\s*(?::[^=]+)?=(?!=)")
    for folder, _, files in os.walk(os.path.dirname(detectron2.__file__)):
        for f in files:
            if f.endswith(".py"):
                with open(os.path.join(folder, f), encoding="utf-8") as fh:
                    names.update(m.group(1) for m in pattern.finditer(fh.read()))
    return {n for n in names if not n.endswith("__")}


def violations(source, private_names, name="<source>"):
    """``(line, what)`` for each assignment to a detectron2 private attribute name (also through
    ``setattr``), each assignment to an attribute of something imported from detectron2 (a
    patch), each ``.checkpointer = `` outside an ``__init__``, and any use of
    ``_train_loader_from_config``."""
    tree = ast.parse(source, name)
    d2_names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("detectron2"):
            d2_names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("detectron2"):
                    d2_names.add(a.asname or a.name.split(".")[0])
    found = []

    def check_target(target, in_init):
        if not isinstance(target, ast.Attribute):
            if isinstance(target, (ast.Tuple, ast.List)):
                for t in target.elts:
                    check_target(t, in_init)
            return
        if target.attr in private_names:
            found.append((target.lineno, f"assigns .{target.attr}"))
        base = target.value
        while isinstance(base, ast.Attribute):
            base = base.value
        if isinstance(base, ast.Name) and base.id in d2_names:
            found.append((target.lineno, f"patches {base.id}...{target.attr}"))
        if target.attr == "checkpointer" and not in_init:
            found.append((target.lineno, "sets .checkpointer outside __init__"))

    def visit(node, in_init):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_init = node.name == "__init__"
        if isinstance(node, ast.Assign):
            for t in node.targets:
                check_target(t, in_init)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            check_target(node.target, in_init)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "setattr"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in private_names
        ):
            found.append((node.lineno, f"setattr {node.args[1].value}"))
        if isinstance(node, ast.Name) and node.id == "_train_loader_from_config":
            found.append((node.lineno, "uses _train_loader_from_config"))
        if isinstance(node, ast.alias) and node.name == "_train_loader_from_config":
            found.append((0, "imports _train_loader_from_config"))
        for child in ast.iter_child_nodes(node):
            visit(child, in_init)

    visit(tree, False)
    return found


def test_the_checker_finds_the_patches_it_is_meant_to_find():
    private = detectron2_private_attributes()
    # names detectron2 itself assigns: the hook's function, the sampler's seed, the step loop
    assert {"_func", "_seed", "_trainer", "_period"} <= private
    bad = """
from detectron2.engine import hooks
from detectron2.data import build
from detectron2.data.build import _train_loader_from_config

class T:
    def __init__(self):
        self.checkpointer = 1          # fine: construction

    def build_hooks(self, ret):
        for h in ret:
            h._func = wrap(h._func)
        setattr(ret[0], "_seed", 3)
        self.checkpointer = 2
        hooks.EvalHook.after_train = None
        build.x = 1
"""
    found = violations(bad, private)
    assert sorted(what for _, what in found) == sorted(
        [
            "assigns ._func",
            "setattr _seed",
            "sets .checkpointer outside __init__",
            "patches hooks...after_train",
            "patches build...x",
            "imports _train_loader_from_config",
        ]
    )
    assert violations("class A:\n    def __init__(self):\n        self.x = 1\n", private) == []


def test_no_private_detectron2_attribute_is_assigned_anywhere():
    private = detectron2_private_attributes()
    report = []
    for path in _python_files(REPO):
        with open(path, encoding="utf-8") as f:
            source = f.read()
        for line, what in violations(source, private, path):
            report.append(f"{os.path.relpath(path, REPO)}:{line}: {what}")
    assert report == []


def test_one_trainer_class_that_the_transfer_trainer_subclasses():
    from detectron2.engine import DefaultTrainer, TrainerBase

    from seethroughnet.engine import Trainer
    from transfer.train_net import Trainer as TransferTrainer

    assert Trainer.__mro__ == (Trainer, DefaultTrainer, TrainerBase, object)
    assert TransferTrainer.__mro__ == (TransferTrainer,) + Trainer.__mro__
    # the project's trainer modules are one: no other trainer base class is left to climb to
    assert not os.path.exists(
        os.path.join(REPO, "projects/SeeThroughNet/seethroughnet/training.py")
    )


def test_checkpointer_and_train_loader_are_built_once(make_synthetic_cityscapes, tmp_path):
    """Constructing the trainer calls build_checkpointer and build_train_loader once each; the
    periodic checkpointer hook saves with that checkpointer, the step loop reads that loader."""
    from detectron2.engine import hooks

    from seethroughnet.config import build_config
    from seethroughnet.engine import Trainer
    from seethroughnet.resumable import ResumableTrainLoader

    make_synthetic_cityscapes()
    calls = {"checkpointer": [], "loader": []}

    class Counting(Trainer):
        @classmethod
        def build_checkpointer(cls, cfg, model, **kwargs):
            calls["checkpointer"].append(super().build_checkpointer(cfg, model, **kwargs))
            return calls["checkpointer"][-1]

        @classmethod
        def build_train_loader(cls, cfg):
            calls["loader"].append(super().build_train_loader(cfg))
            return calls["loader"][-1]

    cfg = build_config(TINY_CONFIG, ["OUTPUT_DIR", str(tmp_path)])
    cfg.freeze()
    trainer = Counting(cfg)
    assert len(calls["checkpointer"]) == 1 and len(calls["loader"]) == 1
    assert trainer.checkpointer is calls["checkpointer"][0]
    assert trainer.data_loader is calls["loader"][0]
    assert isinstance(trainer.data_loader, ResumableTrainLoader)
    saving = [h for h in trainer._hooks if isinstance(h, hooks.PeriodicCheckpointer)]
    assert len(saving) == 1 and saving[0].checkpointer is trainer.checkpointer
