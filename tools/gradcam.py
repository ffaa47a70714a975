#!/usr/bin/env python
"""Thin command line; see seethroughnet.visualization.commands.gradcam_main and
docs/visualization.md."""

import sys

from seethroughnet.visualization.commands import gradcam_main

if __name__ == "__main__":
    sys.exit(gradcam_main())
