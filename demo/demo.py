#!/usr/bin/env python
"""Thin command line (detectron2's demo/demo.py shape); see
seethroughnet.visualization.demo.main and docs/predictor.md.

    python demo/demo.py --config-file CFG.yaml --weights model_final.pth \
        --input img1.png 'frames/*.jpg' folder/ --output out/ [--opts KEY VALUE ...]
    python demo/demo.py --config-file CFG.yaml --weights model_final.pth \
        --video-input clip.mp4 --output out/clip_overlay.mp4
"""

import sys

from seethroughnet.visualization.demo import main

if __name__ == "__main__":
    sys.exit(main())
