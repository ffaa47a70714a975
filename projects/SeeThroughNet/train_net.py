#!/usr/bin/env python
"""SeeThroughNet training and evaluation script (detectron2 conventions).

    python projects/SeeThroughNet/train_net.py --config-file <yaml> [--num-gpus N] [--resume] \
        [--eval-only [--eval-random-weights]] [--allow-unsafe-config] [--trust-weights-file] \
        [KEY VALUE ...]

A thin command line over :mod:`seethroughnet.cli` (``seethroughnet-train`` once the package is
installed): ``main(args)`` is :func:`seethroughnet.cli.train`, the flags are described there.
"""

import os
import sys

# allow running from a checkout without `pip install -e .`
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from seethroughnet.cli import train as main  # noqa: E402, F401  (train_net.main, as in detectron2)
from seethroughnet.cli import train_main  # noqa: E402

if __name__ == "__main__":
    # no sys.exit: tools run this file in their own process (runpy, e.g. a submitit job) and
    # must get control back, as with detectron2's own train_net.py
    train_main()
