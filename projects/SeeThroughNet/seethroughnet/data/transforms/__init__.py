"""Data augmentations of the project (detectron2 glue): :mod:`.mmseg_pipeline`, MMSegmentation
1.x's training and test pipelines of the Table 1 models."""
