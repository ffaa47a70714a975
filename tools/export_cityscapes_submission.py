#!/usr/bin/env python
"""Export a SeeThroughNet model's predictions for the Cityscapes benchmark server.

For every image of a split it writes one PNG of Cityscapes *labelIds* (the model predicts
trainIds; they are mapped through cityscapesscripts' label table), named
``<city>_<seq>_<frame>*.png`` as the server and ``evalPixelLevelSemanticLabeling`` find them,
into ``OUTPUT/<city>/``, and packs them into ``OUTPUT.zip``.

    python tools/export_cityscapes_submission.py --config-file CFG --weights MODEL.pth \
        --dataset cityscapes_fine_sem_seg_test --output output/submission [--overwrite] \
        [--allow-unsafe-config] [--trust-weights-file] [KEY VALUE ...]

A thin command line over :func:`seethroughnet.experiments.models.load_model` and
:mod:`seethroughnet.experiments.export`: each PNG is written atomically, the zip likewise; a
folder that already holds PNGs (or an existing OUTPUT.zip) is refused unless --overwrite,
which removes the old zip and then the old results before the first new PNG is written, so an
interrupted export never leaves an earlier model's results under this name. --overwrite removes
only what an export writes (OUTPUT/<city>/<city>_*_pred_labelIds.png and the temporary files of
a killed write); other files in the folder are kept.
"""

import sys

from seethroughnet.experiments.export import main

if __name__ == "__main__":
    sys.exit(main())
