"""Deployment: the inference network of a trained model as an ONNX graph
(:mod:`seethroughnet.deploy.onnx_export`, ``tools/export_onnx.py``, docs/deploy.md)."""
