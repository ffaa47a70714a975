#!/usr/bin/env python
"""Estimated GPU-hours of the paper's training runs (REPRODUCE.md): a thin command line over
:func:`seethroughnet.experiments.gpu_hours.main` (``--help`` lists the options)."""

import sys

from seethroughnet.experiments.gpu_hours import main

if __name__ == "__main__":
    sys.exit(main())
