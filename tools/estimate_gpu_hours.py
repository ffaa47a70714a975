#!/usr/bin/env python
"""Estimated GPU-hours of the paper's training runs (REPRODUCE.md): a thin command line over
:func:`seethroughnet.experiments.gpu_hours.main` (``--help`` lists the options). The cost file's
Table 5 rows are detector configs of ``transfer/`` (run from this repository, not installed), so
their keys (``transfer.config.add_transfer_config``) and backbones (``transfer.modeling``) are
added here."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root

import transfer.modeling  # noqa: E402, F401  (registers the detectors' backbones)
from seethroughnet.experiments.gpu_hours import main  # noqa: E402
from transfer.config import add_transfer_config  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(extra_config=(add_transfer_config,)))
