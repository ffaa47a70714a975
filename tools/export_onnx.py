#!/usr/bin/env python
"""Export the inference network of a SeeThroughNet or CPP plug-in (Table 1) config to ONNX,
check it with onnx.checker, run it with onnxruntime and compare its logits with PyTorch's;
``--benchmark HxW`` also times both on CPU (docs/deploy.md).

A thin command line over :func:`seethroughnet.deploy.onnx_export.main`
(``seethroughnet-export-onnx`` once installed)::

    python tools/export_onnx.py --config-file CFG (--weights W.pth | --random-weights) \
        --output model.onnx [--merge-config TINY.yaml] [--benchmark 512x1024] [KEY VALUE ...]
"""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "projects", "SeeThroughNet"))  # without `pip install -e`

from seethroughnet.deploy.onnx_export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
