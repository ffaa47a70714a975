#!/usr/bin/env python
"""Table 5 of the paper: the HRNetV2 encoder of SeeThroughNet in three detectors.

A thin command line over :func:`transfer.table5.main` (the grid, the encoder checks, the cells'
``transfer/train_net.py`` commands and the table are described there), which runs the cells on
:mod:`seethroughnet.experiments.grid` (one subprocess per cell, ``<cell>/result.json``, resume,
``--retry-failed``).

Paper setting (8 GPUs, HRNetV2-W48, the Cityscapes schedule of the configs):

    python -m transfer.run_table5 --out-dir output/table5 --num-gpus 8 --seeds 3 \
        --imagenet-weights weights/hrnetv2_w48_imagenet.pth \
        --stn-weights output/seethroughnet_wo_cpp/model_final.pth \
        --stn-cpp-weights output/seethroughnet_cpp/model_final.pth

CPU smoke run (a few iterations on small images; see transfer/README.md):

    python -m transfer.run_table5 --smoke --iters 4 --variant hrnet_w18_small_v2 ...

Failed cells are not run again unless ``--retry-failed``.
"""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from transfer.table5 import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
