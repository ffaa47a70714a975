#!/usr/bin/env python
"""Tables 4 and 6 of the paper beside this project's runs (measured, paper, difference; markdown
and JSON): a thin command line over :func:`seethroughnet.experiments.paper_summary.main`
(``table4 --help``, ``table6 --help`` list the options)."""

import sys

from seethroughnet.experiments.paper_summary import main

if __name__ == "__main__":
    sys.exit(main())
