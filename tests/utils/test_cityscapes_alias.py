"""The alias for upstream detectron2 main's internal cityscapesscripts path
(seethroughnet.cityscapes_alias): same module objects, nothing else resolved. Run in a fresh
interpreter so that the import state of the test session does not matter. The finder is installed
by the modules that call upstream's Cityscapes loaders and evaluator, not by ``import
seethroughnet``."""

import subprocess
import sys

import pytest

SCRIPT = r"""
import sys
import seethroughnet.cityscapes_alias
seethroughnet.cityscapes_alias.install()
from deeplearning.projects.cityscapesApi.cityscapesscripts.helpers.labels import name2label, labels
import cityscapesscripts.helpers.labels as real_labels
assert name2label is real_labels.name2label and len(labels) == len(real_labels.labels)
from deeplearning.projects.cityscapesApi.cityscapesscripts.evaluation import (
    evalPixelLevelSemanticLabeling as alias_eval,
)
import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as real_eval
real_name = "cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling"
assert alias_eval is real_eval and real_eval.__name__ == real_name
for name in ("deeplearning.other", "deeplearning.projects.cityscapesApi.cityscapesscripts.nothere"):
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise AssertionError(name + " should not import")
seethroughnet.cityscapes_alias.install()  # idempotent
assert sum(type(f).__name__ == "_CityscapesScriptsAliasFinder" for f in sys.meta_path) == 1
print("ok")
"""


def test_internal_cityscapesscripts_path_resolves_to_the_real_package():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]


INSTALLED_BY = r"""
import importlib, sys

def installed():
    return sum(type(f).__name__ == "_CityscapesScriptsAliasFinder" for f in sys.meta_path)

for name in ("seethroughnet", "seethroughnet.nn.seethroughnet", "seethroughnet.nn.options"):
    importlib.import_module(name)
    assert installed() == 0, name + " installed the alias"
importlib.import_module(sys.argv[1])
assert installed() == 1, sys.argv[1] + " did not install the alias"
import deeplearning.projects.cityscapesApi.cityscapesscripts.helpers.labels as alias_labels
import cityscapesscripts.helpers.labels as real_labels
assert alias_labels is real_labels
print("ok")
"""


@pytest.mark.parametrize(
    "module", ["seethroughnet.data.datasets.cityscapes", "seethroughnet.evaluation"]
)
def test_alias_is_installed_by_the_cityscapes_glue_only(module):
    pytest.importorskip("detectron2")
    r = subprocess.run(
        [sys.executable, "-c", INSTALLED_BY, module], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]
