#!/usr/bin/env python
"""Images per class of a split (SeeThroughNet's Table 3): a thin command line over
:func:`seethroughnet.experiments.class_image_counts.main` (``--help`` lists the options)."""

import sys

from seethroughnet.experiments.class_image_counts import main

if __name__ == "__main__":
    sys.exit(main())
