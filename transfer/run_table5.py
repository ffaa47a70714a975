#!/usr/bin/env python
"""Table 5 of the paper: the HRNetV2 encoder of SeeThroughNet in three detectors.

A thin command line over :func:`transfer.table5.main` (the grid, the encoder checks, the cells'
``transfer/train_net.py`` commands and the table are described there), which runs the cells on
:mod:`seethroughnet.experiments.grid` (one subprocess per cell, ``<cell>/result.json``, resume,
``--retry-failed``).

The paper-scale command and the CPU smoke command are in :mod:`transfer.table5` and
transfer/README.md. Failed cells are not run again unless ``--retry-failed``.
"""

import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from transfer.table5 import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
