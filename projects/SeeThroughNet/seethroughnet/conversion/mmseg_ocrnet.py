"""MMSegmentation OCRNet-HRNet checkpoints (``ocrnet_hr48``) -> the project's OCRNet-HR48 of Table 1:
the key map ``KEY_MAPS["mmseg"]["ocr"]`` (seethroughnet.conversion.key_maps)."""
