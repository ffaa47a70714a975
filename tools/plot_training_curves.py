#!/usr/bin/env python
"""Thin command line; see seethroughnet.visualization.commands.curves_main and
docs/visualization.md."""

import sys

from seethroughnet.visualization.commands import curves_main

if __name__ == "__main__":
    sys.exit(curves_main())
