#!/usr/bin/env python
"""Submit one ``train_net.py`` run (SeeThroughNet, a CPP plug-in model, a Table 5 detector) to
SLURM through submitit, with detectron2's distributed launch set up inside the job, requeue with
``--resume`` on preemption / time-out, and ``<OUTPUT_DIR>/job.json`` (job id, log paths).

A thin command line over :func:`seethroughnet.experiments.slurm.main`; examples in
docs/cluster.md::

    python tools/submit.py --nodes 1 --gpus-per-node 8 --partition gpu --time-min 1440 -- \
        --config-file \
        projects/SeeThroughNet/configs/Cityscapes/seethroughnet_W48_cityscapes_fine.yaml \
        OUTPUT_DIR output/seethroughnet_W48_fine
"""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "projects", "SeeThroughNet"))  # without `pip install -e`
sys.path.insert(1, REPO)

from seethroughnet.experiments.slurm import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
