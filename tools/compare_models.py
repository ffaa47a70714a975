#!/usr/bin/env python
"""Thin command line; see seethroughnet.visualization.commands.compare_main and
docs/visualization.md."""

import sys

from seethroughnet.visualization.commands import compare_main

if __name__ == "__main__":
    sys.exit(compare_main())
