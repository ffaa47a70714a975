#!/usr/bin/env python
"""Thin command line; see seethroughnet.visualization.commands.overlay_main and
docs/visualization.md."""

import sys

from seethroughnet.visualization.commands import overlay_main

if __name__ == "__main__":
    sys.exit(overlay_main())
