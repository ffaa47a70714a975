#!/usr/bin/env python
"""CPP plug-in study runner (SeeThroughNet, CVPR 2022, Tables 1-2 and Figure 5).

A thin command line over :func:`seethroughnet.experiments.cpp_study.main` (the commands, the
grid file format, the cells and the tables are described there) on the grid runner of
:mod:`seethroughnet.experiments.grid` (one subprocess per cell, ``<out>/<cell id>/result.json``,
resume, ``--retry-failed``)::

    python tools/run_cpp_study.py run GRID.yaml [--out DIR] [--parallel N] [--retry-failed] \
        [--dry-run] [--executor local|slurm|submitit-local] [--cpu-gpus N]
    python tools/run_cpp_study.py render GRID.yaml [--out DIR] [--md FILE] [--fig FILE]
    python tools/run_cpp_study.py cell --config CFG --out DIR [--num-gpus N] [KEY VALUE ...]
"""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "projects", "SeeThroughNet"))  # without `pip install -e`

from seethroughnet.experiments.cpp_study import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
