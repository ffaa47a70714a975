#!/usr/bin/env python
"""Size and speed of SeeThroughNet (Han, Yoo, Oh, CVPR 2022): parameters, FLOPs, training step
time (with / without the CPP auxiliary losses), inference throughput, GPU step time and memory.

A thin command line over :mod:`seethroughnet.experiments.benchmark_cli` (the subcommands and
their flags are described there; ``--help`` on each lists them) and
:mod:`seethroughnet.experiments.benchmark` (the measurements).
"""

import sys

from seethroughnet.experiments.benchmark_cli import main

if __name__ == "__main__":
    sys.exit(main())
