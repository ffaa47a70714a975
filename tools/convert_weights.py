#!/usr/bin/env python
"""Published checkpoints (MMSegmentation; NVIDIA/semantic-segmentation; HRNet-OCR) -> the
project's models: a thin command line over
:func:`seethroughnet.conversion.commands.main` (``--help`` lists the sources and options)."""

import sys

from seethroughnet.conversion.commands import main

if __name__ == "__main__":
    sys.exit(main())
