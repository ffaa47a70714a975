#!/usr/bin/env python
"""Nearest-neighbour vs Class Probability Preserving targets of one label map (SeeThroughNet
Figs. 2-3): a thin command line over
:func:`seethroughnet.experiments.plot_cpp_targets.main` (``--help`` lists the options)."""

import sys

from seethroughnet.experiments.plot_cpp_targets import main

if __name__ == "__main__":
    sys.exit(main())
