"""The alias for upstream detectron2 main's internal cityscapesscripts path
(seethroughnet.cityscapes_alias): same module objects, nothing else resolved. Run in a fresh
interpreter so that the import state of the test session does not matter."""

import subprocess
import sys

SCRIPT = r"""
import sys
import seethroughnet  # installs the alias
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
