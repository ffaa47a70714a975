"""Data: the embedded synthetic Cityscapes-format dataset (:mod:`.synthetic`, plain
numpy/OpenCV/Pillow/cityscapesscripts) and, in sub-packages, the detectron2 dataset glue.

This ``__init__`` imports nothing, so that importing :mod:`seethroughnet.data` never pulls in
detectron2.
"""
