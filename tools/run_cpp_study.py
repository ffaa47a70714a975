#!/usr/bin/env python
"""CPP plug-in study runner (SeeThroughNet, CVPR 2022, Tables 1-2 and Figure 5).

A thin command line over :mod:`seethroughnet.experiments.cpp_study` (the grid file format, the
cells and the tables are described there) and :mod:`seethroughnet.experiments.grid` (one
subprocess per cell, ``<out>/<cell id>/result.json``, resume, ``--retry-failed``).

Commands::

    python tools/run_cpp_study.py run GRID.yaml [--out DIR] [--parallel N] [--retry-failed] [--dry-run]
    python tools/run_cpp_study.py render GRID.yaml [--out DIR] [--md FILE] [--fig FILE]
    python tools/run_cpp_study.py cell --config CFG --out DIR [KEY VALUE ...]   # one training run

``run`` and ``cell`` take ``--allow-unsafe-config`` and ``--trust-weights-file`` (see
``seethroughnet/utils/safe_load.py``; off by default: configs are read with safe YAML only and
weight files without unpickling Python objects). Output folders of the earlier runner (one
``results.json`` per cell) are read as they are; re-run cells write ``result.json``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "projects", "SeeThroughNet"))  # without `pip install -e`

from seethroughnet.experiments import cpp_study  # noqa: E402


def main(argv=None) -> int:
    from seethroughnet.utils.safe_load import add_safety_arguments

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["cell"]:  # one training run: its own parser (KEY VALUE overrides at the end)
        return cpp_study.cell_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run / resume every cell of a grid, then render")
    r.add_argument("grid")
    r.add_argument("--out")
    r.add_argument("--parallel", type=int)
    r.add_argument("--retry-failed", action="store_true", help="run the failed cells again")
    r.add_argument("--dry-run", action="store_true")
    r.add_argument("--md")
    r.add_argument("--fig")
    add_safety_arguments(r)
    g = sub.add_parser("render", help="gather results.jsonl and render the tables and Figure 5")
    g.add_argument("grid")
    g.add_argument("--out")
    g.add_argument("--md")
    g.add_argument("--fig")
    sub.add_parser("cell", help="one training run (used by the grid runner): "
                                "cell --config CFG --out DIR [KEY VALUE ...]")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    grid = cpp_study.load_grid(args.grid, allow_unsafe=getattr(args, "allow_unsafe_config", False))
    out = args.out or grid.get("out_dir") or os.path.join("output", "cpp_study")
    if args.cmd == "run":
        if args.trust_weights_file:  # MODEL.WEIGHTS_TRUSTED True for every cell
            grid = dict(grid, opts=list(grid.get("opts") or []) + ["MODEL.WEIGHTS_TRUSTED", "True"])
        cpp_study.run_grid(grid, out, parallel=args.parallel or int(grid.get("parallel", 1)),
                           retry_failed=args.retry_failed, dry_run=args.dry_run,
                           allow_unsafe_config=args.allow_unsafe_config)
    print(cpp_study.render(grid, out, args.md, args.fig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
