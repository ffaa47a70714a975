#!/usr/bin/env python
"""Thin command line; see seethroughnet.visualization.commands.iou_main and
docs/visualization.md."""

import sys

from seethroughnet.visualization.commands import iou_main

if __name__ == "__main__":
    sys.exit(iou_main())
