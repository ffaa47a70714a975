"""``make test-upstream`` runs only the test files whose import graph can reach detectron2
(tests/route_selection.py ``route_independent``): the classification on hand-made test files."""

import os

import route_selection


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_file_importing_only_plain_pytorch_project_code_is_route_independent(tmp_path):
    f = _write(
        tmp_path, "test_a.py", "import torch\nfrom seethroughnet.nn.cpp import cpp_targets\n"
    )
    assert route_selection.route_independent(f)


def test_a_file_reaching_detectron2_through_the_project_is_route_dependent(tmp_path):
    # seethroughnet.config imports detectron2 at module level
    f = _write(tmp_path, "test_b.py", "from seethroughnet.config import add_seethroughnet_config\n")
    assert not route_selection.route_independent(f)
    # a package's __init__ counts: importing a submodule runs it
    seen: set = set()
    config = route_selection._module_file("seethroughnet.config")
    assert config is not None and route_selection._imports_detectron2(config, seen)


def test_a_file_that_may_reach_detectron2_another_way_is_route_dependent(tmp_path):
    for body in ("import subprocess\n", "x = 'tools/gpu_check.py'\n", "import importlib\n"):
        assert not route_selection.route_independent(_write(tmp_path, "test_c.py", body))


def test_the_suites_pure_pytorch_files_are_found():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert route_selection.route_independent(os.path.join(here, "nn", "test_cpp_targets.py"))
    assert not route_selection.route_independent(os.path.join(here, "engine", "test_config.py"))


class _Item:
    def __init__(self, path, slow=False, reproduce=False):
        self.fspath, self._markers = path, {"slow": slow, "reproduce": reproduce}

    def get_closest_marker(self, name):
        return object() if self._markers.get(name) else None


def test_route_b_plan_runs_the_listed_files_whole_and_samples_the_others(tmp_path):
    listed = tmp_path / route_selection.ROUTE_B_FILES[0]
    listed.parent.mkdir(parents=True)
    listed.write_text("import detectron2\n")
    other = _write(tmp_path, "test_other.py", "import detectron2\n")
    plain = _write(tmp_path, "test_plain.py", "import torch\n")
    items = [_Item(str(listed)), _Item(str(listed), slow=True)]
    items += [_Item(other, slow=True), _Item(other), _Item(other)]
    items += [_Item(plain), _Item(plain)]
    keep, drop = route_selection.route_b_plan(items, str(tmp_path))
    # the listed file whole (slow included); the first non-slow test of the other; no plain test
    assert keep == [items[0], items[1], items[3]]
    assert drop == [items[2], items[4], items[5], items[6]]


def test_every_route_b_file_exists():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    missing = [
        f for f in route_selection.ROUTE_B_FILES if not os.path.isfile(os.path.join(repo, f))
    ]
    assert not missing


def test_long_files_first_keeps_each_files_order():
    """Files with a reproduce test, then files with a slow test, then the rest; within a rank the
    collection order of files, within a file the order of its tests."""
    a1, a2 = _Item("a.py"), _Item("a.py")
    b1, b2 = _Item("b.py"), _Item("b.py", slow=True)
    c1, c2 = _Item("c.py", reproduce=True), _Item("c.py")
    d1 = _Item("d.py", slow=True)
    items = [a1, a2, b1, b2, c1, c2, d1]
    route_selection.long_files_first(items)
    assert items == [c1, c2, b1, b2, d1, a1, a2]
